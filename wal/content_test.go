package wal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

func TestCheckSegmentHeader(t *testing.T) {
	const size = 16 << 20
	stamped := func(tli uint32, addr uint64) []byte {
		b := make([]byte, SegmentHeaderSize)
		stampHeader(b, tli, addr, size)
		return b
	}
	n60 := mustName(t, "000000010000000000000060")
	n60tli2 := mustName(t, "000000020000000000000060")
	tests := []struct {
		what string
		name Name
		head []byte
		size int64
		ok   bool
	}{
		{"the segment itself", n60, stamped(1, 0x60*size), size, true},
		{"its .partial", mustName(t, "000000010000000000000060.partial"), stamped(1, 0x60*size), size, true},
		{"the next segment's content", n60, stamped(1, 0x61*size), size, false},
		{"a newer timeline's content", n60, stamped(2, 0x60*size), size, false},
		{"the first segment of a timeline, which starts with its parent's WAL", n60tli2, stamped(1, 0x60*size), size, true},
		{"a size that is not the header's", n60, stamped(1, 0x60*size), size / 2, false},
		{"not WAL at all", n60, make([]byte, SegmentHeaderSize), size, false},
		{"too short", n60, stamped(1, 0x60*size)[:20], size, false},
		{"a high log id", mustName(t, "0000000100000003000000A0"), stamped(1, 3<<32|0xA0*size), size, true},
		{"a segment size that is not a power of two", n60, func() []byte { b := stamped(1, 0x60*size); b[32] = 1; return b }(), size, false},
	}
	for _, tt := range tests {
		err := CheckSegmentHeader(tt.name, tt.head, tt.size)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.what, err)
		}
		if !tt.ok && !errors.Is(err, ErrWrongFile) {
			t.Errorf("%s: got %v, want ErrWrongFile", tt.what, err)
		}
	}
}

func TestCheckHistoryAndBackupFile(t *testing.T) {
	h2 := mustName(t, "00000002.history")
	if err := CheckHistory(h2, []byte("1\t0/3000158\tno recovery target specified\n")); err != nil {
		t.Errorf("a good history file: %v", err)
	}
	h3 := []byte("1\t0/3000158\tno recovery target specified\n2\t0/5000000\tbefore 2026-12-01\n")
	if err := CheckHistory(mustName(t, "00000003.history"), h3); err != nil {
		t.Errorf("a good history file of timeline 3: %v", err)
	}
	for what, content := range map[string][]byte{
		"timeline 3's history": h3,
		"an empty file":        nil,
		"not a history file":   []byte("hello\n"),
	} {
		if err := CheckHistory(h2, content); !errors.Is(err, ErrWrongFile) {
			t.Errorf("%s under %s: got %v, want ErrWrongFile", what, h2, err)
		}
	}
	b := mustName(t, "000000010000000000000002.00000028.backup")
	if err := CheckBackupFile(b, []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n")); err != nil {
		t.Errorf("a good backup history file: %v", err)
	}
	if err := CheckBackupFile(b, []byte("START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\n")); !errors.Is(err, ErrWrongFile) {
		t.Errorf("another backup's history file: got %v, want ErrWrongFile", err)
	}
}

// TestRestoreRefusesAnotherSegmentsObject reproduces the reliability
// issue's case: segment 61's object copied on the server side to segment
// 60's name, metadata and all, so that its checksum matches. Restore must
// refuse it and write nothing, or PostgreSQL ends recovery at 60 and
// promotes although the archive goes on.
func TestRestoreRefusesAnotherSegmentsObject(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	src := pgWAL(t)
	writeSegment(t, src, "000000010000000000000061", testSegSize, 61)
	_, err := Archive(ctx, st.open, testLayout, filepath.Join(src, "000000010000000000000061"), archiveOpts(codec(t, "zstd")))
	if err != nil {
		t.Fatal(err)
	}
	store, err := st.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	key, err := Find(ctx, store, testLayout, "000000010000000000000061")
	if err != nil || key == "" {
		t.Fatalf("archived segment not found: %q, %v", key, err)
	}
	attrs, err := store.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	copyKey := testLayout.WALKey("000000010000000000000060", codec(t, "zstd").Ext())
	err = store.Put(ctx, copyKey, cloud.OneShotBody(rc), cloud.PutOptions{Metadata: attrs.Metadata})
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}

	dest := t.TempDir()
	to := filepath.Join(dest, "RECOVERYXLOG")
	_, err = restoreTo(t, st, "000000010000000000000060", to, RestoreOptions{})
	if !errors.Is(err, ErrWrongFile) {
		t.Fatalf("restoring segment 61's bytes as 60: got %v, want ErrWrongFile", err)
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Errorf("%s was written although the content was refused", to)
	}
	onlyFiles(t, dest)

	// The segment under its own name still restores.
	if _, err := restoreTo(t, st, "000000010000000000000061", to, RestoreOptions{}); err != nil {
		t.Fatalf("restore of the segment under its own name: %v", err)
	}
}

// FuzzCheckSegmentHeader: no input makes the check panic, and whatever it
// accepts is a long header addressed at the named segment's start.
func FuzzCheckSegmentHeader(f *testing.F) {
	good := make([]byte, SegmentHeaderSize)
	stampHeader(good, 1, 0x60*16<<20, 16<<20)
	f.Add(good, "000000010000000000000060", int64(16<<20))
	f.Add(good, "000000010000000000000061.partial", int64(16<<20))
	f.Add(make([]byte, 8), "00000001000000000000000A", int64(1<<20))
	f.Fuzz(func(t *testing.T, head []byte, name string, size int64) {
		n, err := ParseName(name)
		if err != nil || (n.Kind != Segment && n.Kind != Partial) {
			return
		}
		if CheckSegmentHeader(n, head, size) != nil {
			return
		}
		h, err := ParseSegmentHeader(head)
		if err != nil {
			t.Fatalf("accepted a header that does not parse: %v", err)
		}
		start, err := n.StartLSN(h.SegSize)
		if err != nil || start != h.PageAddr || h.SegSize != size || h.TLI > n.TLI {
			t.Fatalf("accepted %+v for %s (size %d)", h, n, size)
		}
	})
}
