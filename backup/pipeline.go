package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// How the pipeline works, and why.
//
// One producer (the file walk, or the BASE_BACKUP stream) writes each
// archive as a tar stream. The stream is cut into parts of at most
// MaxPartSize, and each part's bytes are cut into chunks. Chunks are
// compressed by Jobs workers in parallel, each into an independent frame of
// the codec, and written back in order into the part's object: concatenated
// frames are a valid stream for every codec gbc has, so a reader
// decompresses a part as one stream.
//
// Compressing chunks rather than whole parts or files in parallel keeps
// every core busy whatever the file sizes: a database is often one big
// table (one 1 GiB file after another) next to thousands of small files,
// and a streamed backup is a single tar stream. It also keeps the tar order
// of the source, so parts are plain tar files.
//
// Memory is bounded by a fixed set of chunk buffers, shared by all parts:
// the producer waits for a free buffer, so a slow store slows the producer
// instead of filling memory. With the store's own upload buffers it is
// about chunks x 2 x chunkSize + Uploads x the store's per-Put memory,
// whatever the size of the database or its number of files.

// chunkSize is the unit of parallel compression. Big enough that a frame
// compresses about as well as a stream and that per-frame costs vanish;
// small enough to stay in the CPU caches and that 2 x Jobs of them stay a
// few tens of MiB. Measured on a pgbench database with zstd: 2 MiB frames
// store 0.3% more than 4 MiB ones (1 MiB: 1%) for the same CPU time, and
// save 20 MiB of RSS.
const chunkSize = 2 << 20

const blockSize = 512 // tar's

// pipelineConfig is what a pipeline needs to store parts.
type pipelineConfig struct {
	Store  cloud.Store
	Layout catalog.Layout
	ID     string
	Codec  compress.Codec
	Level  int
	// Jobs is the number of compression workers.
	Jobs int
	// MaxPartSize bounds a part's tar bytes, except that a single file
	// larger than it gets a part of its own.
	MaxPartSize int64
	// Uploads is how many parts may be uploading at once: the one being
	// written, and the ones still finishing their upload.
	Uploads int
	// Progress, when set, is called with the tar bytes of every chunk
	// handed to compression.
	Progress func(n int64)
}

type chunk struct {
	buf  []byte       // uncompressed bytes; len is the fill
	out  bytes.Buffer // compressed frame
	done chan struct{}
	err  error
}

// data is what the part's object receives for this chunk.
func (c *chunk) data(compressed bool) []byte {
	if compressed {
		return c.out.Bytes()
	}
	return c.buf
}

type pipeline struct {
	cfg    pipelineConfig
	ctx    context.Context
	cancel context.CancelCauseFunc
	g      *errgroup.Group

	free  chan *chunk
	work  chan *chunk
	slots chan struct{}

	compressed bool // false for codec none: chunks go out as they are

	mu    sync.Mutex
	parts []catalog.Part

	stopped bool // work is closed; producer-only
}

func newPipeline(ctx context.Context, cfg pipelineConfig) *pipeline {
	if cfg.Jobs < 1 {
		cfg.Jobs = 1
	}
	if cfg.Uploads < 1 {
		cfg.Uploads = 1
	}
	// Two chunks per worker keep each worker busy while its last result
	// waits to be written, plus two being filled or written.
	nChunks := 2*cfg.Jobs + 2
	ctx, cancel := context.WithCancelCause(ctx)
	g, gctx := errgroup.WithContext(ctx)
	p := &pipeline{
		cfg:        cfg,
		ctx:        gctx,
		cancel:     cancel,
		g:          g,
		free:       make(chan *chunk, nChunks),
		work:       make(chan *chunk, nChunks),
		slots:      make(chan struct{}, cfg.Uploads),
		compressed: cfg.Codec.Ext() != "",
	}
	for range nChunks {
		p.free <- &chunk{buf: make([]byte, 0, chunkSize)}
	}
	if p.compressed {
		for range cfg.Jobs {
			g.Go(p.worker)
		}
	}
	return p
}

func (p *pipeline) worker() error {
	// One encoder per worker: its writer is reused from chunk to chunk.
	enc := compress.NewEncoder(p.cfg.Codec, p.cfg.Level)
	for c := range p.work {
		c.err = p.compress(enc, c)
		close(c.done)
	}
	return nil
}

func (p *pipeline) compress(enc *compress.Encoder, c *chunk) error {
	c.out.Reset()
	if err := p.ctx.Err(); err != nil {
		return err
	}
	zw, err := enc.Start(&c.out)
	if err != nil {
		return err
	}
	if _, err := zw.Write(c.buf); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	return nil
}

func (p *pipeline) getChunk() (*chunk, error) {
	select {
	case c := <-p.free:
		c.buf = c.buf[:0]
		return c, nil
	case <-p.ctx.Done():
		return nil, context.Cause(p.ctx)
	}
}

func (p *pipeline) putChunk(c *chunk) {
	c.buf = c.buf[:0]
	// Never blocks: free has room for every chunk there is.
	p.free <- c
}

// submit hands a filled chunk to the workers and queues it on its part.
// Neither channel blocks: each has room for every chunk there is.
func (p *pipeline) submit(c *chunk, queue chan<- *chunk) {
	c.done = make(chan struct{})
	c.err = nil
	if p.cfg.Progress != nil {
		p.cfg.Progress(int64(len(c.buf)))
	}
	if p.compressed {
		p.work <- c
	} else {
		close(c.done)
	}
	queue <- c
}

// abort stops everything, with err as the cause.
func (p *pipeline) abort(err error) {
	p.cancel(err)
}

// stop aborts the pipeline with err and waits for it. The error that
// stopped it is the one worth reporting, not the cancellations it caused.
func (p *pipeline) stop(err error) error {
	p.abort(err)
	_, werr := p.wait()
	if werr != nil && !errors.Is(werr, err) && !errors.Is(werr, context.Canceled) {
		err = errors.Join(err, werr)
	}
	return err
}

// wait ends the pipeline once every archive is closed and returns the
// stored parts, PGDATA's first, each archive's in order.
func (p *pipeline) wait() ([]catalog.Part, error) {
	if !p.stopped {
		p.stopped = true
		close(p.work)
	}
	err := p.g.Wait()
	if cause := context.Cause(p.ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	p.cancel(nil)
	// Let the chunk buffers go now, for what follows (the manifest's
	// compression), rather than when the pipeline itself is dropped.
	for len(p.free) > 0 {
		<-p.free
	}
	if err != nil {
		return nil, err
	}
	parts := append([]catalog.Part(nil), p.parts...)
	sort.Slice(parts, func(i, j int) bool {
		a, b := parts[i], parts[j]
		if a.Tablespace != b.Tablespace {
			return tablespaceLess(a.Tablespace, b.Tablespace)
		}
		return partNumber(a.Key) < partNumber(b.Key)
	})
	return parts, nil
}

func tablespaceLess(a, b string) bool {
	if a == "" || b == "" {
		return a == ""
	}
	x, _ := strconv.ParseUint(a, 10, 32)
	y, _ := strconv.ParseUint(b, 10, 32)
	return x < y
}

// partNumber reads n back from a key ".../<n>.tar[.ext]", for sorting.
func partNumber(key string) int {
	i := len(key)
	for i > 0 && key[i-1] != '/' {
		i--
	}
	n := 0
	for _, c := range []byte(key[i:]) {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// archive starts a new archive: the data directory (tablespace "") or one
// tablespace (its OID), stored as Layout.PartKey parts numbered from 1.
func (p *pipeline) archive(tablespace string) *archiveWriter {
	return &archiveWriter{p: p, tablespace: tablespace}
}

// archiveWriter is one tar archive cut into parts. Its methods are called
// by the producer only.
type archiveWriter struct {
	p          *pipeline
	tablespace string
	n          int
	cur        *partStream
	// Files counts the regular files written, Bytes their content.
	Files int64
	Bytes int64
}

// entrySize is how many tar bytes an entry takes, header and padding
// included. Names longer than ustar's 100 bytes need an extra PAX header.
func entrySize(h *tar.Header) int64 {
	n := int64(blockSize) + (h.Size+blockSize-1)/blockSize*blockSize
	if len(h.Name) > 100 || len(h.Linkname) > 100 {
		n += 3 * blockSize
	}
	return n
}

// WriteHeader starts an entry, in a new part when it would not fit in the
// current one.
func (a *archiveWriter) WriteHeader(h *tar.Header) error {
	need := entrySize(h)
	if a.cur != nil && a.cur.size > 0 && a.cur.size+need+2*blockSize > a.p.cfg.MaxPartSize {
		if err := a.closePart(); err != nil {
			return err
		}
	}
	if a.cur == nil {
		if err := a.openPart(need); err != nil {
			return err
		}
	}
	if err := a.cur.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar %s: %w", h.Name, err)
	}
	if h.Typeflag == tar.TypeReg {
		a.cur.files++
		a.Files++
		a.Bytes += h.Size
	}
	return nil
}

// Write writes the current entry's content.
func (a *archiveWriter) Write(b []byte) (int, error) {
	return a.cur.tw.Write(b)
}

// Close ends the archive's last part.
func (a *archiveWriter) Close() error {
	if a.cur == nil {
		return nil
	}
	return a.closePart()
}

func (a *archiveWriter) openPart(firstEntry int64) error {
	p := a.p
	select {
	case p.slots <- struct{}{}:
	case <-p.ctx.Done():
		return context.Cause(p.ctx)
	}
	a.n++
	s := &partStream{
		p:     p,
		queue: make(chan *chunk, cap(p.free)),
		part: catalog.Part{
			Key:        p.cfg.Layout.PartKey(p.cfg.ID, a.tablespace, a.n, p.cfg.Codec.Ext()),
			Tablespace: a.tablespace,
		},
	}
	s.tw = tar.NewWriter(s)
	a.cur = s
	pr, pw := io.Pipe()
	drained := make(chan drainResult, 1)
	p.g.Go(func() error {
		drained <- s.drain(pw)
		return nil // reported by the upload, below, with the object's name
	})
	// The hint lets providers with a part-count limit pick part sizes
	// that fit; a part is at most MaxPartSize, or one bigger file.
	hint := max(p.cfg.MaxPartSize, firstEntry+4*blockSize)
	p.g.Go(func() error {
		defer func() { <-p.slots }()
		// A part is never in memory whole (its chunks go back to the
		// pool as they are sent), so it cannot be sent twice: a failure
		// that the SDK's per-request retries do not mend fails the backup.
		err := p.cfg.Store.Put(p.ctx, s.part.Key, cloud.OneShotBody(pr), cloud.PutOptions{SizeHint: hint + hint/16})
		// Unblock the drain if the store stopped reading early.
		pr.CloseWithError(errors.New("upload ended"))
		r := <-drained
		if err == nil {
			err = r.err
		}
		if err != nil {
			return fmt.Errorf("upload part %s: %w", s.part.Key, err)
		}
		part := s.part
		part.StoredSize, part.SHA256 = r.stored, r.sha256
		p.mu.Lock()
		p.parts = append(p.parts, part)
		p.mu.Unlock()
		return nil
	})
	return nil
}

func (a *archiveWriter) closePart() error {
	s := a.cur
	a.cur = nil
	if err := s.tw.Close(); err != nil {
		s.finish()
		return fmt.Errorf("part %s: %w", s.part.Key, err)
	}
	if s.cur != nil && len(s.cur.buf) > 0 {
		a.p.submit(s.cur, s.queue)
		s.cur = nil
	}
	s.finish()
	return nil
}

// partStream is one part being written: the tar.Writer's underlying
// writer, which cuts the bytes into chunks, and the drain that writes the
// chunks' frames, in order, into the object.
type partStream struct {
	p     *pipeline
	tw    *tar.Writer
	cur   *chunk
	queue chan *chunk
	size  int64
	files int
	part  catalog.Part
}

// finish closes the queue; the part's size and file count, set before,
// are read by the drain after the close.
func (s *partStream) finish() {
	if s.cur != nil {
		s.p.putChunk(s.cur)
		s.cur = nil
	}
	s.part.Size, s.part.Files = s.size, s.files
	close(s.queue)
}

func (s *partStream) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if s.cur == nil {
			c, err := s.p.getChunk()
			if err != nil {
				return n, err
			}
			s.cur = c
		}
		k := copy(s.cur.buf[len(s.cur.buf):cap(s.cur.buf)], b)
		s.cur.buf = s.cur.buf[:len(s.cur.buf)+k]
		b = b[k:]
		n += k
		s.size += int64(k)
		if len(s.cur.buf) == cap(s.cur.buf) {
			s.p.submit(s.cur, s.queue)
			s.cur = nil
		}
	}
	return n, nil
}

type drainResult struct {
	stored int64
	sha256 string
	err    error
}

// drain writes the part's chunks, in order, into the upload's pipe, and
// hashes what is stored.
func (s *partStream) drain(pw *io.PipeWriter) drainResult {
	p := s.p
	h := sha256.New()
	var stored int64
	fail := func(err error) drainResult {
		pw.CloseWithError(err)
		return drainResult{err: err}
	}
	for {
		var c *chunk
		var ok bool
		select {
		case c, ok = <-s.queue:
		case <-p.ctx.Done():
			return fail(context.Cause(p.ctx))
		}
		if !ok {
			if err := pw.Close(); err != nil {
				return drainResult{err: err}
			}
			return drainResult{stored: stored, sha256: hex.EncodeToString(h.Sum(nil))}
		}
		select {
		case <-c.done:
		case <-p.ctx.Done():
			return fail(context.Cause(p.ctx))
		}
		if c.err != nil {
			return fail(c.err)
		}
		data := c.data(p.compressed)
		h.Write(data)
		if _, err := pw.Write(data); err != nil {
			return fail(err)
		}
		stored += int64(len(data))
		p.putChunk(c)
	}
}
