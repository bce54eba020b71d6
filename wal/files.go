package wal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"

	"github.com/zeebo/xxh3"
)

// Metadata keys every archived object carries: the checksum and size of the
// file as PostgreSQL wrote it, before compression. They let a duplicate
// push be told from a conflicting one without downloading anything, and let
// restore verify what it wrote whatever the codec.
const (
	MetaSHA256 = "gbcsha256"
	MetaSize   = "gbcsize"
)

// The operations log through the *slog.Logger of their options (nil
// discards everything): warnings, and details at the debug level. A
// message is a whole sentence, formatted only when it is printed, since a
// WAL command runs once per segment and most of what it says is for -v.
//
// orNop is l, or for nil a logger that discards everything.
func orNop(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func debugf(l *slog.Logger, format string, args ...any) { logf(l, slog.LevelDebug, format, args...) }
func warnf(l *slog.Logger, format string, args ...any)  { logf(l, slog.LevelWarn, format, args...) }

func logf(l *slog.Logger, level slog.Level, format string, args ...any) {
	if ctx := context.Background(); l.Enabled(ctx, level) {
		l.Log(ctx, level, fmt.Sprintf(format, args...))
	}
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

// copyHashing copies r to w, like copyBuffered, while another goroutine
// feeds the same bytes to d. Hashing a 16 MiB segment takes about as long
// as compressing or writing it, and on the path of one archive_command or
// restore_command call it would otherwise add to that call's time; here it
// runs on another core. w must not keep the slices it is given (compressors
// and files copy them).
func copyHashing(w io.Writer, r io.Reader, d *digest) (int64, error) {
	const buffers = 4
	free := make(chan []byte, buffers)
	for range buffers {
		free <- make([]byte, copyBufSize)
	}
	filled := make(chan []byte, buffers)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range filled {
			d.Write(b)
			free <- b[:cap(b)]
		}
	}()
	var (
		n   int64
		err error
	)
	for err == nil {
		buf := <-free
		var m int
		m, err = r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				err = werr
				break
			}
			n += int64(m)
			filled <- buf[:m]
		}
	}
	close(filled)
	<-hashed
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// digest is a running sha256 and xxh3-128 of what is written through it,
// with the byte count, used as a tee. The sha256 goes into the object's
// metadata and is what downloads are verified against. The xxh3 is the
// fingerprint of local copies (look-ahead markers, the prefetch spool):
// re-checking such a file before trusting it is on the path of every
// archive_command and restore_command call, and xxh3 reads a 16 MiB segment
// in about 1 ms where sha256 takes 7-10 ms. It guards a copy we wrote
// ourselves against change or damage on disk, which needs no cryptographic
// strength; what came from the store was checked against its sha256.
type digest struct {
	sha hash.Hash
	fp  *xxh3.Hasher
	n   int64
}

func newDigest() *digest { return &digest{sha: sha256.New(), fp: xxh3.New()} }

func (d *digest) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	d.fp.Write(p)
	return d.sha.Write(p)
}

// sum is the content's sha256, hex.
func (d *digest) sum() string { return hex.EncodeToString(d.sha.Sum(nil)) }

// fingerprint is the content's xxh3-128, hex.
func (d *digest) fingerprint() string { return fingerprintOf(d.fp) }

func fingerprintOf(h *xxh3.Hasher) string {
	b := h.Sum128().Bytes()
	return hex.EncodeToString(b[:])
}

// fingerprintLen is the length of a fingerprint in hex digits.
const fingerprintLen = 32

// fingerprintFile returns the xxh3-128 (hex) and size of the file at path.
func fingerprintFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := xxh3.New()
	n, err := copyBuffered(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return fingerprintOf(h), n, nil
}
