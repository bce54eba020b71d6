package cloud

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Body is what Put uploads: a stream that says in its type whether it can
// be read again, as restic's RewindReader does. The retry wrapper replays
// a body after a transient failure only by rewinding it, never by guessing
// from whether a reader happens to seek (a pipe may be an *os.File), so a
// retried upload never sends the tail of a stream as if it were the whole.
//
// Make one with BytesBody (a buffer in memory), SectionBody (a byte range
// of a file or any io.ReaderAt), OneShotBody (a stream read once, such as
// a pipe), or implement it. One goroutine reads a Body at a time.
type Body interface {
	io.Reader
	// Rewind makes the next Read start again at the body's beginning (where
	// it began when it was made, not necessarily offset 0 of a file). A
	// body that cannot do so fails with an error for which
	// errors.Is(err, ErrNotRewindable) holds.
	Rewind() error
	// Length is the number of bytes the body yields, or -1 when it is not
	// known in advance. Providers use it as the size hint of a Put without
	// PutOptions.SizeHint.
	Length() int64
}

// ErrNotRewindable: a one-shot body was read into, so an upload that
// failed cannot be retried from it; the caller has to produce the bytes
// again (and retry at its own level, e.g. a backup part) or give up.
var ErrNotRewindable = errors.New("the body cannot be read again")

// BytesBody returns a rewindable body of b, which must not change until
// Put returns. Small objects (catalog records, compressed WAL segments) go
// up from memory this way and are retried at no cost.
func BytesBody(b []byte) Body { return &bytesBody{r: bytes.NewReader(b)} }

type bytesBody struct{ r *bytes.Reader }

func (b *bytesBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *bytesBody) Length() int64              { return b.r.Size() }

func (b *bytesBody) Rewind() error {
	_, err := b.r.Seek(0, io.SeekStart)
	return err
}

// SectionBody returns a rewindable body of the n bytes of r from offset off:
// an upload from a file (an *os.File is an io.ReaderAt) is retried by
// reading the file again, without holding it in memory. If r ends before
// off+n the body fails with io.ErrUnexpectedEOF instead of uploading a
// shorter object.
func SectionBody(r io.ReaderAt, off, n int64) Body {
	return &sectionBody{r: r, off: off, n: max(n, 0)}
}

type sectionBody struct {
	r           io.ReaderAt
	off, n, pos int64
}

func (s *sectionBody) Read(p []byte) (int, error) {
	if s.pos >= s.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.n-s.pos)]
	k, err := s.r.ReadAt(p, s.off+s.pos)
	s.pos += int64(k)
	switch {
	case err == io.EOF && s.pos < s.n:
		return k, fmt.Errorf("%w: the source ended after %d of %d bytes", io.ErrUnexpectedEOF, s.pos, s.n)
	case err == io.EOF:
		err = nil // ReadAt may report the end with the last bytes
	}
	return k, err
}

func (s *sectionBody) Rewind() error { s.pos = 0; return nil }
func (s *sectionBody) Length() int64 { return s.n }

// OneShotBody returns a body of r that is read once: a pipe fed by a
// producer (a backup part compressed on the fly) that cannot produce the
// same bytes twice. Put is not retried once it has read into it; the
// providers' own request-level retries (each S3 part, Azure block or GCS
// chunk, which the SDKs buffer) still apply. Before its first byte is
// read it rewinds trivially, so a failure to even start is retried.
func OneShotBody(r io.Reader) Body { return &oneShot{r: r} }

type oneShot struct {
	r       io.Reader
	started bool
}

func (o *oneShot) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if n > 0 {
		o.started = true
	}
	return n, err
}

func (o *oneShot) Rewind() error {
	if o.started {
		return ErrNotRewindable
	}
	return nil
}

func (o *oneShot) Length() int64 { return -1 }

// wrappedBody is a body whose reads go through another reader (counting,
// limiting) and that keeps the Rewind and Length of the body underneath, so
// that a wrapper never makes a rewindable body one-shot.
type wrappedBody struct {
	Body
	r io.Reader
}

func (w wrappedBody) Read(p []byte) (int, error) { return w.r.Read(p) }
