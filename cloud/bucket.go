package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"
)

// deleteConcurrency bounds the single-object deletes in flight for
// providers without a batch delete (GCS, Azure): enough to hide latency,
// few enough not to be throttled.
const deleteConcurrency = 16

// bucketStore adapts a gocloud *blob.Bucket (S3, GCS, Azure) to Store. The
// providers differ only in the hooks below; everything else (key checks,
// abort on failure, classification, listing) is shared.
type bucketStore struct {
	// base names the bucket in messages, e.g. "s3://bucket".
	base string

	// open makes the *blob.Bucket and returns a function that releases
	// whatever it made. It runs on first use rather than in Open, so that
	// a process that needs no store (or fails earlier) pays nothing, and
	// so that Open never touches the network.
	open func(ctx context.Context) (*blob.Bucket, func() error, error)

	// writerOptions returns the gocloud options for one Put, with the
	// provider's part size, concurrency and encryption settings.
	writerOptions func(PutOptions) *blob.WriterOptions

	// deleteMany, when set, deletes keys in batches (S3); otherwise
	// deletes go one by one, deleteConcurrency at a time.
	deleteMany func(ctx context.Context, keys []string) error

	// readerTag returns the version tag of the object a reader reads
	// (S3's and Azure's ETag, GCS's generation), from its response;
	// unset or "" when there is none. See objectVersion.
	readerTag func(*blob.Reader) string

	// sweepStale, when set, removes the leftovers of killed Puts (S3's
	// incomplete multipart uploads); see StaleSweeper.
	sweepStale func(ctx context.Context, prefix string, opts SweepOptions) (SweepResult, error)

	mu      sync.Mutex
	bucket  *blob.Bucket
	release func() error
	closed  bool
}

func (s *bucketStore) url(key string) string {
	if key == "" {
		return s.base
	}
	return s.base + "/" + key
}

func (s *bucketStore) fail(op, key string, err error) error {
	return newError(op, s.url(key), err)
}

// get returns the bucket, opening it on first use. A failed open is tried
// again by the next call: it may have been a passing failure.
func (s *bucketStore) get(ctx context.Context) (*blob.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("store is closed")
	}
	if s.bucket == nil {
		// The client outlives this call: some SDKs keep the context they
		// were made with (e.g. for token refreshes), so it must not be
		// one that the first caller cancels when done.
		b, release, err := s.open(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		s.bucket, s.release = b, release
	}
	return s.bucket, nil
}

// Put implements Store.
func (s *bucketStore) Put(ctx context.Context, key string, r Body, opts PutOptions) error {
	if err := checkKey(key); err != nil {
		return s.fail("put", key, err)
	}
	if err := checkMetadata(opts.Metadata); err != nil {
		return s.fail("put", key, err)
	}
	b, err := s.get(ctx)
	if err != nil {
		return s.fail("put", key, err)
	}
	// Every provider commits what it has received when its writer is
	// closed normally. To abort, the writer's context must be cancelled
	// before Close: S3 then aborts the multipart upload, GCS abandons the
	// resumable session, Azure never commits the block list. sourceReader
	// does that the moment the source fails or ctx is done.
	//
	// Upload (rather than NewWriter and io.Copy) hands the reader to the
	// S3 and Azure drivers directly, without a pipe; it also avoids
	// azureblob's pipe writer, whose Close dereferences a nil pipe after
	// any failed upload (gocloud v0.47).
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := &sourceReader{r: r, ctx: ctx, cancel: cancel}
	opts.SizeHint = sizeHint(r, opts)
	err = b.Upload(wctx, key, src, s.writerOptions(opts))
	if src.err != nil {
		// The source failed, not the store: say so, and keep the
		// source's own classification (if any).
		return &Error{Op: "put", URL: s.url(key), Kind: kindOf(src.err), Err: fmt.Errorf("reading source: %w", src.err)}
	}
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// kindOf returns the sentinel err already carries, if any.
func kindOf(err error) error {
	for _, k := range []error{ErrNotFound, ErrExists, ErrPermission, ErrTransient} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// sourceReader feeds a Put from the caller's reader. It cancels the upload
// (before the driver can commit) when the reader fails or ctx is done, and
// remembers a failure of the reader to tell it apart from one of the store.
// The driver reads from one goroutine and is done before Upload returns.
type sourceReader struct {
	r      io.Reader
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		s.cancel()
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
		s.cancel()
	}
	return n, err
}

// Get implements Store.
func (s *bucketStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.GetRange(ctx, key, 0, -1)
}

// GetRange implements Store. Each provider answers a range that starts
// past the end in its own way (S3 and Azure with 416, some emulators with
// nothing); whatever the failure, an object that exists and ends before
// offset gives the empty stream the contract promises.
func (s *bucketStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, s.fail("get", key, err)
	}
	if err := checkRange(offset); err != nil {
		return nil, s.fail("get", key, err)
	}
	b, err := s.get(ctx)
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	if length == 0 {
		// gocloud's S3 driver reads one byte for a zero length, which
		// fails on an empty object; the question is only whether key is there.
		if _, err := b.Attributes(ctx, key); err != nil {
			return nil, s.fail("get", key, err)
		}
		return emptyStream{}, nil
	}
	r, err := b.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		err = s.fail("get", key, err)
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrPermission) {
			if a, aerr := b.Attributes(ctx, key); aerr == nil && offset >= a.Size {
				return emptyStream{}, nil
			}
		}
		return nil, err
	}
	return &bucketReader{r: r, s: s, key: key}, nil
}

// bucketReader classifies errors in the middle of a download too, so that
// a caller can tell a dropped connection (worth a retry) from the rest.
type bucketReader struct {
	r   *blob.Reader
	s   *bucketStore
	key string
}

func (r *bucketReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.fail("get", r.key, err)
	}
	return n, err
}

// version implements versioned. gocloud's Size is the whole object's,
// also for a range.
func (r *bucketReader) version() (objectVersion, bool) {
	v := objectVersion{size: r.r.Size(), modTime: r.r.ModTime()}
	if r.s.readerTag != nil {
		v.tag = r.s.readerTag(r.r)
	}
	return v, true
}

func (r *bucketReader) Close() error { return r.r.Close() }

// Stat implements Store.
func (s *bucketStore) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := checkKey(key); err != nil {
		return Attrs{}, s.fail("stat", key, err)
	}
	b, err := s.get(ctx)
	if err != nil {
		return Attrs{}, s.fail("stat", key, err)
	}
	a, err := b.Attributes(ctx, key)
	if err != nil {
		return Attrs{}, s.fail("stat", key, err)
	}
	md := a.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return Attrs{Key: key, Size: a.Size, ModTime: a.ModTime, Metadata: md}, nil
}

// List implements Store. gocloud fetches one page (1,000 keys) at a time,
// and every provider lists in lexical (byte) order.
func (s *bucketStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	if err := checkPrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	b, err := s.get(ctx)
	if err != nil {
		return s.fail("list", prefix, err)
	}
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return s.fail("list", prefix, err)
		}
		if obj.IsDir {
			continue
		}
		if err := fn(Attrs{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime}); err != nil {
			return err
		}
	}
}

// Delete implements Store.
func (s *bucketStore) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	for _, key := range keys {
		if err := checkKey(key); err != nil {
			return s.fail("delete", key, err)
		}
	}
	if s.deleteMany != nil {
		return s.deleteMany(ctx, keys)
	}
	b, err := s.get(ctx)
	if err != nil {
		return s.fail("delete", keys[0], err)
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteConcurrency)
	for _, key := range keys {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := ignoreMissing(s.fail("delete", key, b.Delete(gctx, key)))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			// Keep going after one failure: deleting the rest is still
			// useful, and the caller learns about every key that failed.
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil && len(errs) == 0 {
		return s.fail("delete", keys[0], err)
	}
	return joinErrors(errs)
}

// ignoreMissing drops "no such object": deleting it was the goal. A missing
// bucket, however, is a misconfiguration worth reporting.
func ignoreMissing(err error) error {
	if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNoBucket) {
		return nil
	}
	return err
}

// maxReportedErrors caps how many per-key failures a batch delete spells
// out; the rest are counted.
const maxReportedErrors = 10

func joinErrors(errs []error) error {
	if len(errs) <= maxReportedErrors {
		return errors.Join(errs...)
	}
	head := append(errs[:maxReportedErrors:maxReportedErrors],
		fmt.Errorf("... and %d more failed deletes", len(errs)-maxReportedErrors))
	return errors.Join(head...)
}

// Close implements Store.
func (s *bucketStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.bucket == nil {
		return nil
	}
	err := s.bucket.Close()
	if s.release != nil {
		if rerr := s.release(); err == nil {
			err = rerr
		}
	}
	return err
}
