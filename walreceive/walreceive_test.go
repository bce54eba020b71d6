package walreceive

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/pg"
)

// The spool file is the full segment size from the start, takes data at
// the expected position only, and stops at the segment's end.
func TestSpool(t *testing.T) {
	const size = 1 << 20
	start := pg.LSN(5 * size)
	sp, err := openSpool(t.TempDir(), 1, start, size)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.remove()
	if sp.name.String() != "000000010000000000000005" {
		t.Fatalf("spool named %s", sp.name)
	}
	if fi, err := os.Stat(sp.path); err != nil || fi.Size() != size {
		t.Fatalf("spool file: %v, %v; want %d bytes", fi, err, size)
	}
	if _, err := sp.write(start+8, []byte("x")); err == nil {
		t.Fatal("data at a gap was taken")
	}
	rest, err := sp.write(start, bytes.Repeat([]byte{1}, size-10))
	if err != nil || len(rest) != 0 || sp.full() {
		t.Fatalf("first write: rest %d, %v, full %v", len(rest), err, sp.full())
	}
	rest, err = sp.write(sp.written, bytes.Repeat([]byte{2}, 25))
	if err != nil || len(rest) != 15 || !sp.full() || sp.written != start+size {
		t.Fatalf("write across the segment's end: rest %d, %v, full %v, at %s", len(rest), err, sp.full(), sp.written)
	}
	b, _ := os.ReadFile(sp.path)
	if b[size-1] != 2 || b[size-11] != 1 {
		t.Fatal("spool content is not what was written")
	}
}

// Active finds a fresh, streaming receiver of the same system only.
func TestActive(t *testing.T) {
	s := cloud.NewMem()
	l := catalog.Layout{Server: "main"}
	ctx := context.Background()
	now := time.Now()
	put := func(slot string, st Status) {
		st.Slot = slot
		b, _ := json.Marshal(st)
		if err := s.Put(ctx, StatusKey(l, slot), cloud.BytesBody(b), cloud.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("old", Status{State: StateStreaming, SystemID: "42", Time: now.Add(-time.Hour)})
	put("other", Status{State: StateStreaming, SystemID: "43", Time: now})
	put("stopped", Status{State: StateStopped, SystemID: "42", Time: now})
	if _, ok, err := Active(ctx, s, l, "42", time.Minute, now); err != nil || ok {
		t.Fatalf("Active with no fresh receiver of system 42: %v, %v", ok, err)
	}
	put("live", Status{State: StateStreaming, SystemID: "42", Time: now.Add(-10 * time.Second)})
	st, ok, err := Active(ctx, s, l, "42", time.Minute, now)
	if err != nil || !ok || st.Slot != "live" {
		t.Fatalf("Active: %+v, %v, %v; want slot live", st, ok, err)
	}
}
