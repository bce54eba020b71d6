package wal

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// ErrConflict: a file of the same name but different content is already
// archived. Archiving refuses to touch it.
var ErrConflict = errors.New("refusing to overwrite archived WAL")

// Opener opens the store on first need, so that a call answered from a
// look-ahead marker never pays for a provider client.
type Opener func(ctx context.Context) (cloud.Store, error)

// ArchiveOptions tune Archive.
type ArchiveOptions struct {
	Codec compress.Codec
	Level int
	// MaxParallel is how many segments are pushed at once: the one asked
	// for and MaxParallel-1 by the background pusher. 1 (or less) disables
	// push-ahead.
	MaxParallel int
	// StartPusher starts PushAhead in the background for the .ready
	// segments after the one given (gbc-wal-archive starts a detached
	// process). Nil disables push-ahead.
	StartPusher func(after Name) error
	// Target identifies the store (its URL and endpoint). Look-ahead
	// markers record it, so that a marker written while archiving to one
	// store never answers for another after archive_command changed.
	Target string
	// Log gets warnings and, at the debug level, details; nil is silent.
	Log *slog.Logger
}

// ArchiveResult says what one Archive call did.
type ArchiveResult struct {
	Name string
	// FromMarker: an earlier call had pushed the file ahead; it was
	// verified on disk against the recorded checksum and nothing was sent.
	FromMarker bool
	// AlreadyStored: identical content was already in the store.
	AlreadyStored bool
	// StartedPusher: a background pusher was started for the .ready
	// segments after this one.
	StartedPusher bool
}

// bufferLimit is the largest file compressed into memory before upload.
// 16 MiB segments usually shrink to 1-3 MiB, so even MaxParallel of them
// stay well inside the memory budget, and one compression pass serves every
// retry. Bigger files (wal_segment_size up to 1 GiB) are compressed on the
// fly instead, again on each retry (recompressor).
const bufferLimit = 64 << 20

// Archive stores the WAL file at path (segment, .partial, .backup or
// .history) under layout's WAL key, with the checksum and size of its
// content in the object's metadata. It returns nil only once the object is
// stored in full, or when identical content was already stored. Different
// content under the same name yields ErrConflict and leaves the stored
// object alone.
//
// A segment that a background pusher stored ahead of this call (see
// pushahead.go) is answered from its marker once the file on disk is
// verified against it; if the pusher is still at work on it, Archive waits
// for it. When more segments are .ready after this one and no pusher runs,
// Archive starts one through opts.StartPusher.
func Archive(ctx context.Context, open Opener, layout catalog.Layout, path string, opts ArchiveOptions) (ArchiveResult, error) {
	log := orNop(opts.Log)
	base := filepath.Base(path)
	name, err := ParseName(base)
	if err != nil {
		return ArchiveResult{}, err
	}
	res := ArchiveResult{Name: base}
	la := lookAhead{dir: filepath.Dir(path), identity: markerIdentity(opts.Target, layout), log: log}

	// The cheap path first: no store client at all.
	if name.Kind == Segment && la.await(ctx, name) {
		debugf(log, "%s was pushed ahead and still matches its checksum: nothing to send", base)
		res.FromMarker = true
		return res, nil
	}

	if opts.MaxParallel > 1 && opts.StartPusher != nil && name.Kind == Segment && len(la.ready(name, 1)) > 0 {
		if _, running := la.pusher(); !running {
			// Started before this push, so that both run at once; a
			// failure to start it only costs speed.
			if err := opts.StartPusher(name); err != nil {
				debugf(log, "background pusher not started: %v", err)
			} else {
				res.StartedPusher = true
			}
		}
	}

	store, err := open(ctx)
	if err != nil {
		return res, err
	}
	defer store.Close()
	// Housekeeping of markers and old spool files, after the push: it is
	// only worth a directory read when real work is done anyway.
	defer la.clean()
	p := pusher{store: store, layout: layout, codec: opts.Codec, level: opts.Level, log: log}
	done, err := p.push(ctx, path, name)
	res.AlreadyStored = done.already
	return res, err
}

// pusher stores files into one store.
type pusher struct {
	store  cloud.Store
	layout catalog.Layout
	codec  compress.Codec
	level  int
	log    *slog.Logger
	// bufLimit overrides bufferLimit (tests).
	bufLimit int64
	// scratch, when set, is reused from one push to the next (one worker
	// of the background pusher pushes in sequence).
	scratch *scratch
}

// scratch is what one worker reuses from push to push: the buffer a
// segment is compressed into, and the compressor. A new zstd encoder
// allocates its 4 MiB history and a new buffer its 4 MiB for every 16 MiB
// segment, so a pusher storing hundreds of segments would churn through
// gigabytes and keep the collector (and the resident size) busy.
type scratch struct {
	buf *bytes.Buffer
	enc *compress.Encoder
}

// compressor returns an empty buffer and a compressor writing into it,
// reused from p.scratch when there is one.
func (p pusher) compressor(size int64) (*bytes.Buffer, io.WriteCloser, error) {
	s := p.scratch
	if s == nil {
		s = &scratch{} // a single push: nothing to reuse
	}
	if s.buf == nil {
		s.buf = bytes.NewBuffer(make([]byte, 0, size/4+64<<10))
		s.enc = compress.NewEncoder(compress.ForWAL(p.codec), p.level)
	}
	s.buf.Reset()
	zw, err := s.enc.Start(s.buf)
	if err != nil {
		return nil, nil, err
	}
	return s.buf, zw, nil
}

// pushed describes a file that is now in the store.
type pushed struct {
	sum         string // sha256 of the content, hex
	fingerprint string // xxh3-128 of the content, hex (see digest)
	size        int64
	already     bool // identical content was already stored
}

// push stores the file at path as name.
func (p pusher) push(ctx context.Context, path string, name Name) (pushed, error) {
	f, err := os.Open(path)
	if err != nil {
		return pushed{}, fmt.Errorf("open WAL file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return pushed{}, fmt.Errorf("stat WAL file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return pushed{}, fmt.Errorf("%s is not a regular file", path)
	}
	size := fi.Size()
	// A truncated segment in the archive would break every recovery that
	// reaches it, long after the fact: refuse it now, loudly.
	if (name.Kind == Segment || name.Kind == Partial) && !ValidSegmentSize(size) {
		return pushed{}, fmt.Errorf("%s has %d bytes, which is not a WAL segment size (a power of two from 1 MiB to 1 GiB): refusing to archive it", path, size)
	}
	key := p.layout.WALKey(name.String(), p.codec.Ext())

	// Whether the name is taken, under any codec's extension, is asked
	// while the file is read and compressed, so that the round trip costs
	// no time in the usual case of a new file.
	existing := make(chan listResult, 1)
	go func() {
		key, err := Find(ctx, p.store, p.layout, name.String())
		existing <- listResult{key: key, err: err}
	}()

	var (
		d        *digest
		body     cloud.Body // nil: too large to buffer, compress on the fly
		bodySize int64
	)
	switch {
	case p.codec.Ext() == "":
		d, err = hashOpen(f, size)
		body, bodySize = cloud.SectionBody(f, 0, size), size
	case size <= cmp.Or(p.bufLimit, bufferLimit):
		var buf *bytes.Buffer
		buf, d, err = p.compressToMemory(f, size)
		if buf != nil {
			body, bodySize = cloud.BytesBody(buf.Bytes()), int64(buf.Len())
		}
	default:
		d, err = hashOpen(f, size)
	}
	found := <-existing
	if err != nil {
		return pushed{}, err
	}
	if found.err != nil {
		return pushed{}, found.err
	}
	sum := d.sum()
	done := pushed{sum: sum, fingerprint: d.fingerprint(), size: size}
	replace := false
	if found.key != "" {
		err := p.compareExisting(ctx, found.key, name, sum, size)
		switch {
		case err == nil:
			debugf(p.log, "%s is already archived with the same content (%s)", name, found.key)
			done.already = true
			return done, nil
		case errors.Is(err, ErrConflict) && name.Kind == Partial && receiverPartial(ctx, p.store, found.key):
			// gbc-wal-receive's .partial of the segment in progress, and
			// PostgreSQL's own, archived at a promotion: both hold the WAL
			// up to the switch point, and refusing would stall the
			// archiver behind this file; the server's copy wins.
			debugf(p.log, "%s replaces the receiver's partial segment %s", name, found.key)
			replace = true
		default:
			return pushed{}, err
		}
	}

	put := cloud.PutOptions{
		Metadata:    map[string]string{MetaSHA256: sum, MetaSize: strconv.FormatInt(size, 10)},
		IfNotExists: !replace,
		SizeHint:    bodySize,
	}
	if body == nil {
		rc := &recompressor{f: f, size: size, codec: p.codec, level: p.level}
		defer rc.Close()
		body = rc
	}
	err = p.store.Put(ctx, key, body, put)
	if errors.Is(err, cloud.ErrExists) {
		// Another pusher won the race between our look and our write.
		if err := p.compareExisting(ctx, key, name, sum, size); err != nil {
			return pushed{}, err
		}
		done.already = true
		return done, nil
	}
	if err != nil {
		return pushed{}, fmt.Errorf("store %s: %w", name, err)
	}
	if replace && found.key != key {
		// The receiver's copy under another codec's extension, now
		// replaced: Find must not answer with it.
		if err := p.store.Delete(ctx, found.key); err != nil {
			return pushed{}, fmt.Errorf("delete the replaced %s: %w", found.key, err)
		}
	}
	debugf(p.log, "stored %s as %s (%d bytes, sha256 %s)", name, key, size, sum)
	return done, nil
}

// compressToMemory reads f once, hashing and compressing it into a buffer.
func (p pusher) compressToMemory(f *os.File, size int64) (*bytes.Buffer, *digest, error) {
	buf, zw, err := p.compressor(size)
	if err != nil {
		return nil, nil, err
	}
	d := newDigest()
	if _, err := copyHashing(zw, f, d); err != nil {
		zw.Close()
		return nil, nil, fmt.Errorf("compress %s: %w", f.Name(), err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("compress %s: %w", f.Name(), err)
	}
	if d.n != size {
		return nil, nil, fmt.Errorf("%s changed size while being read (%d bytes, then %d)", f.Name(), size, d.n)
	}
	return buf, d, nil
}

// recompressor is the compressed form of a file as a cloud.Body, produced
// on the fly through a pipe, so that segments too large to buffer still
// stream in bounded memory. Rewinding it (what the store's retries do)
// restarts compression from the file's start, so a failed upload can be
// retried without a temporary file.
type recompressor struct {
	f     *os.File
	size  int64
	codec compress.Codec
	level int
	pr    *io.PipeReader
}

func (r *recompressor) Read(p []byte) (int, error) {
	if r.pr == nil {
		pr, pw := io.Pipe()
		r.pr = pr
		go func() {
			zw, err := compress.ForWAL(r.codec).NewWriter(pw, r.level)
			if err == nil {
				_, err = copyBuffered(zw, io.NewSectionReader(r.f, 0, r.size))
				if cerr := zw.Close(); err == nil {
					err = cerr
				}
			}
			pw.CloseWithError(err)
		}()
	}
	return r.pr.Read(p)
}

// Rewind implements cloud.Body: compression starts again.
func (r *recompressor) Rewind() error {
	return r.Close()
}

// Length implements cloud.Body: the compressed size is known only at the
// end.
func (r *recompressor) Length() int64 { return -1 }

// Close stops the compressor goroutine, if one runs.
func (r *recompressor) Close() error {
	if r.pr != nil {
		r.pr.CloseWithError(errors.New("compressed stream closed"))
		r.pr = nil
	}
	return nil
}

// hashOpen hashes the open file from its start.
func hashOpen(f *os.File, size int64) (*digest, error) {
	d := newDigest()
	if _, err := copyBuffered(d, io.NewSectionReader(f, 0, size)); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if d.n != size {
		return nil, fmt.Errorf("%s changed size while being read (%d bytes, then %d)", f.Name(), size, d.n)
	}
	return d, nil
}

type listResult struct {
	key string
	err error
}

// Find returns the key of the object archived as name (whatever its
// codec), or "" when there is none. A List of the name's prefix answers for
// every extension in one request; it also returns the name's .partial and
// .backup files, which are skipped.
func Find(ctx context.Context, store cloud.Store, layout catalog.Layout, name string) (string, error) {
	want := layout.WALKey(name, "")
	found := ""
	err := store.List(ctx, want, func(a cloud.Attrs) error {
		if base, _ := compress.SplitKey(a.Key); base == want {
			found = a.Key
			return errStopList
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopList) {
		return "", fmt.Errorf("look for %s in the store: %w", name, err)
	}
	return found, nil
}

// errStopList ends a List walk early once the answer is known.
var errStopList = errors.New("stop listing")

// compareExisting returns nil when the object at key holds content with
// checksum sum and size size, and ErrConflict when it holds something else.
func (p pusher) compareExisting(ctx context.Context, key string, name Name, sum string, size int64) error {
	attrs, err := p.store.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("read the metadata of the archived %s: %w", name, err)
	}
	oldSum, oldSize := attrs.Metadata[MetaSHA256], attrs.Metadata[MetaSize]
	if oldSum == "" {
		// Stored by another tool, or before checksums: compare content.
		debugf(p.log, "%s has no checksum in its metadata: downloading it to compare", key)
		d, err := hashObject(ctx, p.store, key)
		if err != nil {
			return fmt.Errorf("compare with the archived %s: %w", name, err)
		}
		oldSum, oldSize = d.sum(), strconv.FormatInt(d.n, 10)
	}
	if oldSum == sum && oldSize == strconv.FormatInt(size, 10) {
		return nil
	}
	return fmt.Errorf("%w: %s is already archived as %s with other content (sha256 %.12s, %s bytes; the local file: sha256 %.12s, %d bytes) "+
		"and was left untouched: is another cluster archiving to the same store and server name? "+
		"Use another SERVER_NAME or prefix for this cluster (gbc-check-wal-archive tells)",
		ErrConflict, name, key, oldSum, oldSize, sum, size)
}

// hashObject downloads and decompresses key, returning its digest.
func hashObject(ctx context.Context, store cloud.Store, key string) (*digest, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	_, codec := compress.SplitKey(key)
	zr, err := codec.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", key, err)
	}
	defer zr.Close()
	d := newDigest()
	if _, err := copyBuffered(d, zr); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return d, nil
}
