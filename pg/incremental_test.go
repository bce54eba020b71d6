package pg

import (
	"bytes"
	"testing"
)

func TestIncrementalHeader(t *testing.T) {
	for _, h := range []IncrementalHeader{
		{TruncationBlockLength: 10},
		{Blocks: []uint32{0, 3, 9}, TruncationBlockLength: 8},
		{Blocks: make([]uint32, 2045), TruncationBlockLength: 2045}, // header exactly one block
	} {
		if len(h.Blocks) == 2045 {
			for i := range h.Blocks {
				h.Blocks[i] = uint32(i)
			}
		}
		b := h.Encode()
		if int64(len(b)) != h.HeaderSize() {
			t.Fatalf("%d blocks: encoded %d bytes, HeaderSize %d", len(h.Blocks), len(b), h.HeaderSize())
		}
		if len(h.Blocks) > 0 && len(b)%BlockSize != 0 {
			t.Fatalf("%d blocks: header of %d bytes is not padded to a block", len(h.Blocks), len(b))
		}
		if len(h.Blocks) == 0 && len(b) != 12 {
			t.Fatalf("empty header is %d bytes, want 12", len(b))
		}
		r := bytes.NewReader(append(b, 0xAB))
		got, err := ReadIncrementalHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		if got.TruncationBlockLength != h.TruncationBlockLength || len(got.Blocks) != len(h.Blocks) {
			t.Fatalf("read %+v, want %+v", got, h)
		}
		if c, _ := r.ReadByte(); c != 0xAB {
			t.Fatal("the reader is not left at the first block")
		}
	}
	h := IncrementalHeader{Blocks: []uint32{2, 20}, TruncationBlockLength: 5}
	if h.Length() != 21 || h.FileSize() != BlockSize+2*BlockSize {
		t.Fatalf("Length %d FileSize %d", h.Length(), h.FileSize())
	}
	bad := (&IncrementalHeader{Blocks: []uint32{4, 2}}).Encode()
	if _, err := ReadIncrementalHeader(bytes.NewReader(bad)); err == nil {
		t.Fatal("descending block numbers were accepted")
	}
	if _, err := ReadIncrementalHeader(bytes.NewReader([]byte("not a header"))); err == nil {
		t.Fatal("a wrong magic was accepted")
	}
}

func TestIncrementalName(t *testing.T) {
	if got := IncrementalName("base/5/16384.1"); got != "base/5/INCREMENTAL.16384.1" {
		t.Fatal(got)
	}
	if rel, ok := FromIncrementalName("base/5/INCREMENTAL.16384_vm"); !ok || rel != "base/5/16384_vm" {
		t.Fatal(rel, ok)
	}
	if _, ok := FromIncrementalName("base/5/16384"); ok {
		t.Fatal("a plain relation file was taken for an incremental one")
	}
}
