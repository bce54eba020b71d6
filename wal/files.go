package wal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

// Metadata keys every archived object carries: the checksum and size of the
// file as PostgreSQL wrote it, before compression. They let a duplicate
// push be told from a conflicting one without downloading anything, and let
// restore verify what it wrote whatever the codec.
const (
	MetaSHA256 = "gbcsha256"
	MetaSize   = "gbcsize"
)

// Logger receives what the operations have to say. *cli.Logger satisfies
// it; nil discards everything.
type Logger interface {
	Debugf(format string, args ...any)
	Warnf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Debugf(string, ...any) {}
func (nopLogger) Warnf(string, ...any)  {}

func orNop(l Logger) Logger {
	if l == nil {
		return nopLogger{}
	}
	return l
}

// copyBufSize is the read size for hashing and copying local files: large
// enough that a 16 MiB segment takes a few dozen system calls, small enough
// to keep several pushes in flight within bounded memory.
const copyBufSize = 256 << 10

// onlyReader hides an *os.File's WriteTo, which would otherwise make
// io.CopyBuffer ignore the buffer and fall back to 32 KiB reads.
type onlyReader struct{ io.Reader }

// copyBuffered copies r to w in copyBufSize reads.
func copyBuffered(w io.Writer, r io.Reader) (int64, error) {
	return io.CopyBuffer(w, onlyReader{r}, make([]byte, copyBufSize))
}

// digest is a running sha256 with the byte count, written to as a tee.
type digest struct {
	h hash.Hash
	n int64
}

func newDigest() *digest { return &digest{h: sha256.New()} }

func (d *digest) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return d.h.Write(p)
}

func (d *digest) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// hashFile returns the sha256 (hex) and size of the file at path.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	d := newDigest()
	if _, err := copyBuffered(d, f); err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return d.sum(), d.n, nil
}
