package blockmap

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	mt := time.Unix(1_800_000_000, 123456789)
	var want []*Entry
	for i := range 300 {
		e := &Entry{Path: fmt.Sprintf("base/5/%d", 16384+i), Size: int64(i) * BlockSize, MTime: mt.Add(time.Duration(i))}
		for b := range i {
			e.Hashes = append(e.Hashes, uint64(i*1000+b))
		}
		want = append(want, e)
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ix, err := Load(bytes.NewReader(buf.Bytes()), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.Len() != len(want) {
		t.Fatalf("Len %d, want %d", ix.Len(), len(want))
	}
	for _, e := range want {
		got, err := ix.Lookup(e.Path)
		if err != nil || got == nil {
			t.Fatalf("Lookup(%s) = %v, %v", e.Path, got, err)
		}
		if got.Size != e.Size || !got.MTime.Equal(e.MTime) || len(got.Hashes) != len(e.Hashes) {
			t.Fatalf("Lookup(%s) = %+v, want %+v", e.Path, got, e)
		}
		for i := range e.Hashes {
			if got.Hashes[i] != e.Hashes[i] {
				t.Fatalf("%s block %d: hash %x, want %x", e.Path, i, got.Hashes[i], e.Hashes[i])
			}
		}
	}
	if got, err := ix.Lookup("base/5/1"); got != nil || err != nil {
		t.Fatalf("a missing path was found: %v, %v", got, err)
	}
	// A map cut anywhere is refused, never read as a shorter one.
	for _, n := range []int{len(buf.Bytes()) - 1, len(buf.Bytes()) / 2, 9} {
		if _, err := Load(bytes.NewReader(buf.Bytes()[:n]), t.TempDir()); err == nil {
			t.Fatalf("a map cut to %d bytes was accepted", n)
		}
	}
}

func TestUnchanged(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	e := &Entry{Size: 2 * BlockSize, MTime: start.Add(-time.Hour), Hashes: []uint64{1, 2}}
	if !e.Unchanged(2*BlockSize, e.MTime, start) {
		t.Fatal("an old, same-size, same-time file was taken as changed")
	}
	if e.Unchanged(3*BlockSize, e.MTime, start) {
		t.Fatal("a file that grew was taken as unchanged")
	}
	if e.Unchanged(2*BlockSize, e.MTime.Add(1), start) {
		t.Fatal("a file written since was taken as unchanged")
	}
	recent := &Entry{Size: BlockSize, MTime: start.Add(-time.Second), Hashes: []uint64{1}}
	if recent.Unchanged(BlockSize, recent.MTime, start) {
		t.Fatal("a file written a second before the parent's start was taken as unchanged")
	}
}
