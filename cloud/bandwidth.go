package cloud

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/time/rate"

	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// bandwidthStore limits the bytes per second that a Store's uploads and
// downloads move, as restic's limiter does: one token bucket for all
// uploads and one for all downloads, whatever the number of streams at
// once, so that --jobs does not multiply the limit.
type bandwidthStore struct {
	s        Store
	up, down *rate.Limiter
}

// WithBandwidth returns a Store whose Puts together read their bodies at
// no more than bytesPerSecond, and whose downloads (Get and GetRange
// streams) together deliver no more than bytesPerSecond: the two
// directions are limited separately, as links are full duplex. A limit of
// 0 or less returns s itself.
//
// It limits what passes through it; Open puts it right above the provider,
// so that bytes sent again by a retry count as well. Each process has its
// own limit: a background pusher or prefetcher is limited on its own.
func WithBandwidth(s Store, bytesPerSecond int64) Store {
	if bytesPerSecond <= 0 {
		return s
	}
	return &bandwidthStore{s: s, up: newLimiter(bytesPerSecond), down: newLimiter(bytesPerSecond)}
}

// newLimiter returns a token bucket of the given rate. Its burst, the most
// one read may take at once, is a tenth of a second's worth (at most
// 256 KiB): small enough that the limit holds over a fraction of a
// second, big enough that a fast link is not woken up for every packet.
func newLimiter(bytesPerSecond int64) *rate.Limiter {
	burst := int(min(max(bytesPerSecond/10, 1), 256<<10))
	return rate.NewLimiter(rate.Limit(bytesPerSecond), burst)
}

// Unwrap returns the Store underneath.
func (b *bandwidthStore) Unwrap() Store { return b.s }

func (b *bandwidthStore) Put(ctx context.Context, key string, body Body, opts PutOptions) error {
	return b.s.Put(ctx, key, wrappedBody{body, &limitedReader{ctx: ctx, r: body, l: b.up}}, opts)
}

func (b *bandwidthStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return b.GetRange(ctx, key, 0, -1)
}

func (b *bandwidthStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := b.s.GetRange(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return &limitedStream{limitedReader{ctx: ctx, r: rc, l: b.down}, rc}, nil
}

func (b *bandwidthStore) Stat(ctx context.Context, key string) (Attrs, error) {
	return b.s.Stat(ctx, key)
}

func (b *bandwidthStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	return b.s.List(ctx, prefix, fn)
}

func (b *bandwidthStore) Delete(ctx context.Context, keys ...string) error {
	return b.s.Delete(ctx, keys...)
}

func (b *bandwidthStore) Close() error { return b.s.Close() }

// limitedReader reads at most a burst at a time and then waits for as many
// tokens as it got bytes. Waiting after the read (rather than before, for
// len(p)) charges exactly what moved.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	if len(p) > lr.l.Burst() {
		p = p[:lr.l.Burst()]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		// The bytes were read: a failed wait hands them on with the end.
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil && err == nil {
			if err = lr.ctx.Err(); err == nil {
				// rate refuses at once a wait that would end past ctx's
				// deadline: the operation cannot end in time.
				err = fmt.Errorf("bandwidth limit: %v: %w", werr, context.DeadlineExceeded)
			}
		}
	}
	return n, err
}

// limitedStream is a limited download; it passes on the version of the
// object it reads, which the retry wrapper above needs to resume it.
type limitedStream struct {
	limitedReader
	rc io.ReadCloser
}

func (s *limitedStream) Close() error                            { return s.rc.Close() }
func (s *limitedStream) ObjectVersion() (contract.Version, bool) { return contract.VersionOf(s.rc) }
