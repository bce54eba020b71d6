package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// DeleteConcurrency bounds the single-object deletes in flight for
// providers without a batch delete (GCS, Azure): enough to hide latency,
// few enough not to be throttled.
const DeleteConcurrency = 16

// Store adapts a gocloud *blob.Bucket (S3, GCS, Azure) to cloud.Store.
// The providers differ only in the hooks below; everything else (key
// checks, abort on failure, classification, listing) is shared.
type Store struct {
	// Base names the bucket in messages, e.g. "s3://bucket".
	Base string

	// Open makes the *blob.Bucket and returns a function that releases
	// whatever it made. It runs on first use rather than in cloud.Open, so
	// that a process that needs no store (or fails earlier) pays nothing,
	// and so that cloud.Open never touches the network.
	Open func(ctx context.Context) (*blob.Bucket, func() error, error)

	// WriterOptions returns the gocloud options for one Put, with the
	// provider's part size, concurrency and encryption settings.
	WriterOptions func(cloud.PutOptions) *blob.WriterOptions

	// DeleteMany, when set, deletes keys in batches (S3); otherwise
	// deletes go one by one, DeleteConcurrency at a time.
	DeleteMany func(ctx context.Context, keys []string) error

	// ReaderTag returns the version tag of the object a reader reads
	// (S3's and Azure's ETag, GCS's generation), from its response;
	// unset or "" when there is none. See contract.Version.
	ReaderTag func(*blob.Reader) string

	// Sweep, when set, removes the leftovers of killed Puts (S3's
	// incomplete multipart uploads); see cloud.StaleSweeper.
	Sweep func(ctx context.Context, prefix string, opts cloud.SweepOptions) (cloud.SweepResult, error)

	mu      sync.Mutex
	bucket  *blob.Bucket
	release func() error
	closed  bool
}

func (s *Store) url(key string) string {
	if key == "" {
		return s.Base
	}
	return s.Base + "/" + key
}

func (s *Store) fail(op, key string, err error) error {
	return cloud.NewError(op, s.url(key), err)
}

// get returns the bucket, opening it on first use. A failed open is tried
// again by the next call: it may have been a passing failure.
func (s *Store) get(ctx context.Context) (*blob.Bucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("store is closed")
	}
	if s.bucket == nil {
		// The client outlives this call: some SDKs keep the context they
		// were made with (e.g. for token refreshes), so it must not be
		// one that the first caller cancels when done.
		b, release, err := s.Open(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		s.bucket, s.release = b, release
	}
	return s.bucket, nil
}

// Put implements cloud.Store.
func (s *Store) Put(ctx context.Context, key string, r cloud.Body, opts cloud.PutOptions) error {
	if err := contract.CheckKey(key); err != nil {
		return s.fail("put", key, err)
	}
	if err := contract.CheckMetadata(opts.Metadata); err != nil {
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
	err = b.Upload(wctx, key, src, s.WriterOptions(opts))
	if src.err != nil {
		// The source failed, not the store: say so, and keep the
		// source's own classification (if any).
		return &cloud.Error{Op: "put", URL: s.url(key), Kind: cloud.KindOf(src.err), Err: fmt.Errorf("reading source: %w", src.err)}
	}
	if err != nil {
		return s.fail("put", key, err)
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

// Get implements cloud.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.GetRange(ctx, key, 0, -1)
}

// GetRange implements cloud.Store. Each provider answers a range that starts
// past the end in its own way (S3 and Azure with 416, some emulators with
// nothing); whatever the failure, an object that exists and ends before
// offset gives the empty stream the contract promises.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := contract.CheckKey(key); err != nil {
		return nil, s.fail("get", key, err)
	}
	if err := contract.CheckRange(offset); err != nil {
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
		if !errors.Is(err, cloud.ErrNotFound) && !errors.Is(err, cloud.ErrPermission) {
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
	s   *Store
	key string
}

func (r *bucketReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.fail("get", r.key, err)
	}
	return n, err
}

// ObjectVersion implements contract.Versioned. gocloud's Size is the
// whole object's, also for a range.
func (r *bucketReader) ObjectVersion() (contract.Version, bool) {
	v := contract.Version{Size: r.r.Size(), ModTime: r.r.ModTime()}
	if r.s.ReaderTag != nil {
		v.Tag = r.s.ReaderTag(r.r)
	}
	return v, true
}

func (r *bucketReader) Close() error { return r.r.Close() }

// Stat implements cloud.Store.
func (s *Store) Stat(ctx context.Context, key string) (cloud.Attrs, error) {
	if err := contract.CheckKey(key); err != nil {
		return cloud.Attrs{}, s.fail("stat", key, err)
	}
	b, err := s.get(ctx)
	if err != nil {
		return cloud.Attrs{}, s.fail("stat", key, err)
	}
	a, err := b.Attributes(ctx, key)
	if err != nil {
		return cloud.Attrs{}, s.fail("stat", key, err)
	}
	md := a.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return cloud.Attrs{Key: key, Size: a.Size, ModTime: a.ModTime, Metadata: md}, nil
}

// List implements cloud.Store. gocloud fetches one page (1,000 keys) at a time,
// and every provider lists in lexical (byte) order.
func (s *Store) List(ctx context.Context, prefix string, fn func(cloud.Attrs) error) error {
	if err := contract.CheckPrefix(prefix); err != nil {
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
		if err := fn(cloud.Attrs{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime}); err != nil {
			return err
		}
	}
}

// Delete implements cloud.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	for _, key := range keys {
		if err := contract.CheckKey(key); err != nil {
			return s.fail("delete", key, err)
		}
	}
	if s.DeleteMany != nil {
		return s.DeleteMany(ctx, keys)
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
	g.SetLimit(DeleteConcurrency)
	for _, key := range keys {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := IgnoreMissing(s.fail("delete", key, b.Delete(gctx, key)))
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
	return JoinErrors(errs)
}

// IgnoreMissing drops "no such object": deleting it was the goal. A missing
// bucket, however, is a misconfiguration worth reporting.
func IgnoreMissing(err error) error {
	if errors.Is(err, cloud.ErrNotFound) && !errors.Is(err, cloud.ErrNoBucket) {
		return nil
	}
	return err
}

// maxReportedErrors caps how many per-key failures a batch delete spells
// out; the rest are counted.
const maxReportedErrors = 10

// JoinErrors joins the failures of a batch delete, the first
// maxReportedErrors of them spelt out.
func JoinErrors(errs []error) error {
	if len(errs) <= maxReportedErrors {
		return errors.Join(errs...)
	}
	head := append(errs[:maxReportedErrors:maxReportedErrors],
		fmt.Errorf("... and %d more failed deletes", len(errs)-maxReportedErrors))
	return errors.Join(head...)
}

// Close implements cloud.Store.
func (s *Store) Close() error {
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

// emptyStream is the stream of a range outside the object.
type emptyStream struct{}

func (emptyStream) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyStream) Close() error             { return nil }

// sizeHint is opts.SizeHint, or the body's length when that is unset.
func sizeHint(b cloud.Body, opts cloud.PutOptions) int64 {
	if opts.SizeHint > 0 {
		return opts.SizeHint
	}
	return max(b.Length(), 0)
}
