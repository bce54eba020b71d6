package wal

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A receiver's .partial grows and is replaced; gbc-wal-restore serves it
// for the missing segment; and PostgreSQL's own .partial of the segment,
// archived at a promotion, replaces it instead of failing as a conflict,
// while a .partial that the receiver did not write still does.
func TestStorePartial(t *testing.T) {
	st := newTestStore(t)
	s := st.store(t)
	ctx := context.Background()
	const name = "000000010000000000000007"
	dir := t.TempDir()
	full := segContent(t, name, 1<<20, 7)
	path := filepath.Join(dir, name)
	zst := codec(t, "zstd")
	opts := PartialOptions{Codec: zst, ReceivedTo: "0/7000100"}

	var last []byte
	for _, n := range []int{4096, 65536} {
		data := make([]byte, len(full))
		copy(data, full[:n]) // the rest reads as zeros, as in the spool file
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := StorePartial(ctx, s, testLayout, path, mustName(t, name), opts); err != nil {
			t.Fatal(err)
		}
		last = data
	}
	if keys := st.keys(t); len(keys) != 1 || keys[0] != "main/wals/0000000100000000/"+name+".partial.zst" {
		t.Fatalf("keys %v, want the one .partial", keys)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	res, err := restoreTo(t, st, name, dest, RestoreOptions{})
	if err != nil || !res.FromPartial {
		t.Fatalf("restore of %s: %+v, %v; want it served from the .partial", name, res, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, last) {
		t.Fatalf("restored %d bytes, not the last .partial stored", len(got))
	}
	if _, err := restoreTo(t, st, name, dest, RestoreOptions{NoPartial: true}); !errors.Is(err, ErrNotArchived) {
		t.Fatalf("restore with NoPartial: %v, want ErrNotArchived", err)
	}

	// PostgreSQL's .partial at a promotion: other content, same name.
	pgDir := pgWAL(t)
	pgPartial := filepath.Join(pgDir, name+".partial")
	if err := os.WriteFile(pgPartial, full, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Archive(ctx, st.open, testLayout, pgPartial, archiveOpts(codec(t, "lz4"))); err != nil {
		t.Fatalf("archiving PostgreSQL's .partial over the receiver's: %v", err)
	}
	if keys := st.keys(t); len(keys) != 1 || keys[0] != "main/wals/0000000100000000/"+name+".partial.lz4" {
		t.Fatalf("keys %v, want PostgreSQL's .partial alone", keys)
	}
	// Now the stored .partial is not the receiver's: other content is a
	// conflict again.
	other := segContent(t, name, 1<<20, 8)
	if err := os.WriteFile(pgPartial, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Archive(ctx, st.open, testLayout, pgPartial, archiveOpts(zst)); !errors.Is(err, ErrConflict) {
		t.Fatalf("a different .partial over PostgreSQL's: %v, want ErrConflict", err)
	}
}
