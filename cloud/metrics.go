package cloud

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// Metrics counts a Store's operations and bytes. The zero value is ready;
// counters may be read at any time with Load.
type Metrics struct {
	Puts, Gets, Stats, Lists, Deletes atomic.Int64 // operations started
	Failures                          atomic.Int64 // operations that returned an error
	BytesPut                          atomic.Int64 // bytes read from Put's readers
	BytesGot                          atomic.Int64 // bytes read from Get's streams
	Listed                            atomic.Int64 // objects passed to List callbacks
	KeysDeleted                       atomic.Int64 // keys passed to Delete
}

type metricsStore struct {
	s Store
	m *Metrics
}

// WithMetrics returns a Store that counts s's operations into m. Wrapped
// around WithRetry it counts what callers asked for; wrapped inside, every
// attempt.
func WithMetrics(s Store, m *Metrics) Store { return &metricsStore{s: s, m: m} }

// Unwrap returns the Store underneath.
func (ms *metricsStore) Unwrap() Store { return ms.s }

func (ms *metricsStore) count(err error) error {
	if err != nil {
		ms.m.Failures.Add(1)
	}
	return err
}

func (ms *metricsStore) Put(ctx context.Context, key string, body Body, opts PutOptions) error {
	ms.m.Puts.Add(1)
	// Bytes read again after a Rewind (a retried upload underneath) are
	// counted again, as they are sent again.
	body = wrappedBody{body, &countingReader{body, &ms.m.BytesPut}}
	return ms.count(ms.s.Put(ctx, key, body, opts))
}

func (ms *metricsStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	ms.m.Gets.Add(1)
	return ms.stream(ms.s.Get(ctx, key))
}

// GetRange counts as a Get: one download started.
func (ms *metricsStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	ms.m.Gets.Add(1)
	return ms.stream(ms.s.GetRange(ctx, key, offset, length))
}

func (ms *metricsStore) stream(rc io.ReadCloser, err error) (io.ReadCloser, error) {
	if err != nil {
		return nil, ms.count(err)
	}
	return &countingReadCloser{countingReader{rc, &ms.m.BytesGot}, rc}, nil
}

func (ms *metricsStore) Stat(ctx context.Context, key string) (Attrs, error) {
	ms.m.Stats.Add(1)
	a, err := ms.s.Stat(ctx, key)
	return a, ms.count(err)
}

func (ms *metricsStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	ms.m.Lists.Add(1)
	return ms.count(ms.s.List(ctx, prefix, func(a Attrs) error {
		ms.m.Listed.Add(1)
		return fn(a)
	}))
}

func (ms *metricsStore) Delete(ctx context.Context, keys ...string) error {
	ms.m.Deletes.Add(1)
	ms.m.KeysDeleted.Add(int64(len(keys)))
	return ms.count(ms.s.Delete(ctx, keys...))
}

func (ms *metricsStore) Close() error { return ms.s.Close() }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingReadCloser counts a download and passes on the version of the
// object it reads, which WithRetry underneath needs to resume it.
type countingReadCloser struct {
	countingReader
	rc io.ReadCloser
}

func (c *countingReadCloser) Close() error { return c.rc.Close() }
func (c *countingReadCloser) ObjectVersion() (contract.Version, bool) {
	return contract.VersionOf(c.rc)
}
