package compress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// walLike is 4 MiB of half compressible, half random bytes, so that the
// stream spans many zstd blocks.
func walLike() []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var b bytes.Buffer
	for b.Len() < 4<<20 {
		if rng.IntN(2) == 0 {
			b.WriteString(strings.Repeat("INSERT heap tuple ", 40))
			continue
		}
		r := make([]byte, 512)
		for i := range r {
			r[i] = byte(rng.Uint32())
		}
		b.Write(r)
	}
	return b.Bytes()
}

// ForWAL's zstd writes frames with a 1 MiB window and no checksum, which
// the codec's reader (and any zstd reader) reads; frames with a checksum
// and a 4 MiB window, as releases before it wrote WAL, still read. Other
// codecs are left alone.
func TestForWAL(t *testing.T) {
	src := walLike()
	z, _ := Lookup("zstd")
	walZ := ForWAL(z)
	if walZ.Name() != "zstd" || walZ.Ext() != "zst" {
		t.Fatalf("ForWAL(zstd) is %s/.%s, want zstd/.zst", walZ.Name(), walZ.Ext())
	}
	for _, name := range []string{"lz4", "gzip", "snappy", "none"} {
		c, _ := Lookup(name)
		if ForWAL(c) != c {
			t.Errorf("ForWAL(%s) changed the codec", name)
		}
	}
	for _, tc := range []struct {
		name     string
		codec    Codec
		window   uint64
		checksum bool
	}{
		{"wal", walZ, 1 << 20, false},
		{"backup and older WAL", z, 4 << 20, true},
	} {
		for _, level := range []int{0, 3} {
			var stored bytes.Buffer
			w, err := tc.codec.NewWriter(&stored, level)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(src); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var h zstd.Header
			if err := h.Decode(stored.Bytes()); err != nil {
				t.Fatalf("%s level %d: frame header: %v", tc.name, level, err)
			}
			if h.HasCheckSum != tc.checksum || h.WindowSize > tc.window {
				t.Errorf("%s level %d: checksum %v, window %d; want checksum %v, window at most %d",
					tc.name, level, h.HasCheckSum, h.WindowSize, tc.checksum, tc.window)
			}
			// The one reader reads both kinds of frame.
			r, err := z.NewReader(bytes.NewReader(stored.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, src) {
				t.Errorf("%s level %d: read back %d bytes (%v), want the %d written", tc.name, level, len(got), err, len(src))
			}
		}
	}
}

// A WAL writer reset for the next segment (compress.Encoder) keeps its
// options and writes an independent, complete frame.
func TestForWALReset(t *testing.T) {
	src := walLike()
	enc := NewEncoder(ForWAL(mustLookup(t, "zstd")), 0)
	for i := range 2 {
		var stored bytes.Buffer
		w, err := enc.Start(&stored)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(src[i*1000:])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var h zstd.Header
		if err := h.Decode(stored.Bytes()); err != nil || h.HasCheckSum {
			t.Errorf("stream %d: header %+v, %v: want a frame without checksum", i, h, err)
		}
		r, _ := mustLookup(t, "zstd").NewReader(&stored)
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, src[i*1000:]) {
			t.Errorf("stream %d: read back %d bytes (%v)", i, len(got), err)
		}
	}
}

func mustLookup(t *testing.T, name string) Codec {
	t.Helper()
	c, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
