package compress

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// Every codec must round-trip a stream larger than its internal blocks,
// whatever the level, and name itself consistently by name and extension.
func TestRoundTrip(t *testing.T) {
	// Half compressible text, half random bytes, 5 MiB: several zstd and
	// lz4 blocks, and both paths of every encoder.
	rng := rand.New(rand.NewPCG(1, 2))
	var src bytes.Buffer
	for src.Len() < 5<<20 {
		if rng.IntN(2) == 0 {
			src.WriteString(strings.Repeat("postgres WAL record ", 64))
		} else {
			b := make([]byte, 1024)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			src.Write(b)
		}
	}
	want := sha256.Sum256(src.Bytes())
	for _, name := range Names() {
		for _, level := range []int{0, 1, 3} {
			c, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			var stored bytes.Buffer
			w, err := c.NewWriter(&stored, level)
			if err != nil {
				t.Fatalf("%s level %d: %v", name, level, err)
			}
			// Small writes: the encoders must buffer, not depend on one big write.
			if _, err := io.CopyBuffer(w, bytes.NewReader(src.Bytes()), make([]byte, 4096)); err != nil {
				t.Fatalf("%s: write: %v", name, err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("%s: close: %v", name, err)
			}
			if name != "none" && stored.Len() >= src.Len() {
				t.Errorf("%s level %d did not compress: %d >= %d", name, level, stored.Len(), src.Len())
			}
			r, err := c.NewReader(bytes.NewReader(stored.Bytes()))
			if err != nil {
				t.Fatalf("%s: reader: %v", name, err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, r); err != nil {
				t.Fatalf("%s: read: %v", name, err)
			}
			r.Close()
			if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
				t.Fatalf("%s level %d: round trip changed the data", name, level)
			}
			byExt, err := ByExt(c.Ext())
			if err != nil || byExt.Name() != name {
				t.Fatalf("ByExt(%q) = %v, %v; want %s", c.Ext(), byExt, err, name)
			}
		}
	}
}

// A corrupted stream must fail to decode rather than yield wrong data.
func TestCorruptStreamFails(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	for _, name := range []string{"zstd", "lz4", "gzip", "snappy"} {
		c, _ := Lookup(name)
		var stored bytes.Buffer
		w, _ := c.NewWriter(&stored, 0)
		w.Write(src)
		w.Close()
		b := stored.Bytes()
		b[len(b)/2] ^= 0xff
		b[len(b)/2+1] ^= 0xff
		r, err := c.NewReader(bytes.NewReader(b))
		if err != nil {
			continue // refused at the header: fine
		}
		got, err := io.ReadAll(r)
		if err == nil && bytes.Equal(got, src) {
			t.Errorf("%s: corruption went unnoticed", name)
		} else if err == nil {
			t.Errorf("%s: corrupted stream decoded without error to different data", name)
		}
	}
}

func TestLookupAndSplitKey(t *testing.T) {
	if _, err := Lookup("brotli"); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("Lookup of an unknown codec: %v (want an error listing the codecs)", err)
	}
	if c, err := Lookup("ZSTD"); err != nil || c.Name() != "zstd" {
		t.Fatalf("Lookup is case-insensitive: %v, %v", c, err)
	}
	for _, tc := range []struct{ key, base, codec string }{
		{"main/wals/0000000100000000/000000010000000000000003.zst", "main/wals/0000000100000000/000000010000000000000003", "zstd"},
		{"main/wals/00000002.history.gz", "main/wals/00000002.history", "gzip"},
		{"main/wals/00000002.history", "main/wals/00000002.history", "none"},
		{"main/base/x/data/0.tar.lz4", "main/base/x/data/0.tar", "lz4"},
		{"main/base/x/data/0.tar.sz", "main/base/x/data/0.tar", "snappy"},
		{"dir.zst/file", "dir.zst/file", "none"},
	} {
		base, c := SplitKey(tc.key)
		if base != tc.base || c.Name() != tc.codec {
			t.Errorf("SplitKey(%q) = %q, %s; want %q, %s", tc.key, base, c.Name(), tc.base, tc.codec)
		}
	}
}
