package compress

import (
	"bytes"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// mixed returns n bytes, half text and half random, seeded by seed.
func mixed(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var b bytes.Buffer
	for b.Len() < n {
		if rng.IntN(2) == 0 {
			b.WriteString(strings.Repeat("postgres WAL record ", 32))
		} else {
			r := make([]byte, 512)
			for i := range r {
				r[i] = byte(rng.Uint32())
			}
			b.Write(r)
		}
	}
	return b.Bytes()[:n]
}

func encode(t *testing.T, w io.WriteCloser, src []byte) {
	t.Helper()
	if _, err := io.CopyBuffer(w, bytes.NewReader(src), make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// A stream started on a reused writer is exactly the stream a new writer
// makes: the level is kept and nothing of the last stream (its window, a
// pending header) leaks into it. And the writer is reused, which is the
// point.
func TestEncoderReuse(t *testing.T) {
	first, second := mixed(3<<20, 1), mixed(1<<20+123, 7)
	for _, name := range Names() {
		for _, level := range []int{0, 3} {
			c, _ := Lookup(name)
			enc := NewEncoder(c, level)
			var a, b bytes.Buffer
			w1, err := enc.Start(&a)
			if err != nil {
				t.Fatalf("%s level %d: %v", name, level, err)
			}
			encode(t, w1, first)
			w2, err := enc.Start(&b)
			if err != nil {
				t.Fatalf("%s level %d: second stream: %v", name, level, err)
			}
			if w2 != w1 {
				t.Errorf("%s level %d: the second stream got a new writer, not the first one reset", name, level)
			}
			encode(t, w2, second)

			var fresh bytes.Buffer
			w, err := c.NewWriter(&fresh, level)
			if err != nil {
				t.Fatal(err)
			}
			encode(t, w, second)
			if !bytes.Equal(b.Bytes(), fresh.Bytes()) {
				t.Errorf("%s level %d: a reset writer's stream (%d bytes) differs from a new writer's (%d bytes)", name, level, b.Len(), fresh.Len())
			}
			for i, tc := range []struct {
				stored *bytes.Buffer
				want   []byte
			}{{&a, first}, {&b, second}} {
				r, err := c.NewReader(bytes.NewReader(tc.stored.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Errorf("%s level %d: stream %d does not round-trip (%v)", name, level, i+1, err)
				}
			}
		}
	}
}

// After its first stream an Encoder allocates a small fraction of what a
// new writer per stream does. That is asserted for zstd and gzip, whose
// writers hold their tables themselves; lz4 and snappy keep their buffers
// in sync.Pools, whose reuse depends on the collector (and which the race
// detector empties at random), so theirs are only logged.
func TestEncoderAllocatesOnce(t *testing.T) {
	src := mixed(256<<10, 3)
	const streams = 20
	var dst bytes.Buffer
	dst.Grow(2 * len(src))
	run := func(n int, start func(dst io.Writer) io.WriteCloser) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			dst.Reset()
			encode(t, start(&dst), src)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	for _, name := range Names() {
		if name == "none" {
			continue // nothing to reuse
		}
		c, _ := Lookup(name)
		enc := NewEncoder(c, 0)
		reuse := func(dst io.Writer) io.WriteCloser {
			w, err := enc.Start(dst)
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		fresh := func(dst io.Writer) io.WriteCloser {
			w, err := c.NewWriter(dst, 0)
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
		// Warm both up first: the first stream allocates, and fills
		// the codec's pools if it has any.
		run(2, reuse)
		run(2, fresh)
		reused, each := run(streams, reuse), run(streams, fresh)
		t.Logf("%s: %d streams allocate %d KiB with one writer, %d KiB with a new writer each", name, streams, reused>>10, each>>10)
		if (name == "zstd" || name == "gzip") && reused*4 > each {
			t.Errorf("%s: one writer allocated %d bytes for %d streams, a new writer each %d", name, reused, streams, each)
		}
	}
}

// A level the codec refuses fails at Start, naming the codec.
func TestEncoderStartError(t *testing.T) {
	c, _ := Lookup("gzip")
	_, err := NewEncoder(c, 42).Start(io.Discard)
	if err == nil || !strings.Contains(err.Error(), "start gzip compression") {
		t.Fatalf("gzip level 42: %v, want an error naming gzip", err)
	}
}
