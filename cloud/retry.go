package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// RetryOptions configure WithRetry.
type RetryOptions struct {
	// Timeout is the overall deadline for one operation's attempts: no
	// attempt starts after it, and an attempt of Stat or Delete (small
	// requests) is cut short at it. It does not cut short an upload, a
	// download or a listing already under way, which may rightly take
	// longer: those stop only when the store stalls (the HTTP clients' I/O
	// timeout, see package internal/stall) or ctx ends. A download that breaks
	// is resumed within Timeout counted from the break. 0 means
	// DefaultRetryTimeout.
	Timeout time.Duration
	// MinDelay and MaxDelay bound the backoff between attempts; 0 means
	// 100 ms and 15 s.
	MinDelay, MaxDelay time.Duration
	// Logf, when set, is told about every retry.
	Logf func(format string, args ...any)
}

// retryStore retries operations that failed with ErrTransient.
type retryStore struct {
	s Store
	o RetryOptions
}

// WithRetry returns a Store that retries s's operations while they fail
// with ErrTransient, with exponential backoff and full jitter, until
// opts.Timeout has passed or ctx is done. Other errors are returned at
// once.
//
//   - Put is retried as long as its body rewinds (Body.Rewind, called
//     right after a failed attempt, before the wait). A one-shot body that
//     was read into (OneShotBody) fails its Put with the attempt's error,
//     classification kept, so that the caller may produce the bytes again
//     and retry at its own level; it is never retried mid-stream. The
//     providers' SDKs still retry each request of a multipart upload.
//   - A retried Put with IfNotExists may fail with ErrExists because of its
//     own earlier attempt, which succeeded although its reply was lost.
//     Callers compare content (a checksum in the metadata) to tell.
//   - Get and GetRange retry opening the object, and resume a stream that
//     breaks with ErrTransient: they reopen the rest of the range, from
//     the byte after the last one delivered, so that the caller reads one
//     unbroken stream. A resumed stream must come from the same version
//     of the object (size, time and ETag or generation, as the responses
//     say); if the object was replaced meanwhile, the stream fails with
//     ErrObjectChanged, and the caller starts over. A stream whose store
//     does not say which version it reads (a foreign wrapper) is not
//     resumed.
//   - List resumes after the last key it delivered, so fn sees every key
//     once, in order; an error returned by fn is never retried.
//   - Delete is retried as a whole (deleting is idempotent).
func WithRetry(s Store, opts RetryOptions) Store {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultRetryTimeout
	}
	if opts.MinDelay <= 0 {
		opts.MinDelay = 100 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 15 * time.Second
	}
	opts.MaxDelay = max(opts.MaxDelay, opts.MinDelay)
	return &retryStore{s: s, o: opts}
}

// Unwrap returns the Store underneath.
func (r *retryStore) Unwrap() Store { return r.s }

// ErrObjectChanged: a broken download could not be resumed, because the
// object was replaced since it was opened. Reading it again from the
// start reads the new version whole.
var ErrObjectChanged = errors.New("object changed while it was read")

// noRetry carries an error that must be returned as is, even if it is
// classified ErrTransient (an error from List's callback).
type noRetry struct{ err error }

func (n noRetry) Error() string { return n.err.Error() }

// do runs f until it succeeds, fails with a non-transient error, the
// deadline passes or ctx is done. With bounded, each attempt gets a
// context that ends at the deadline. The deadline is ours, not backoff's
// MaxElapsedTime, so that the last attempt may start at the deadline
// itself and the error says how many attempts were made.
func (r *retryStore) do(ctx context.Context, op, key string, bounded bool, f func(context.Context) error) error {
	start := time.Now()
	deadline := start.Add(r.o.Timeout)
	attempt := 0
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attempt++
		err := attemptWithin(ctx, bounded, deadline, f)
		last = err
		var nr noRetry
		switch {
		case err == nil:
			return struct{}{}, nil
		case errors.As(err, &nr):
			return struct{}{}, backoff.Permanent(nr.err)
		case !errors.Is(err, ErrTransient) || ctx.Err() != nil:
			return struct{}{}, backoff.Permanent(err)
		case !time.Now().Before(deadline):
			return struct{}{}, backoff.Permanent(fmt.Errorf("gave up after %d attempts in %v: %w", attempt, time.Since(start).Round(time.Millisecond), err))
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(r.backOff(deadline)),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, delay time.Duration) {
			if r.o.Logf != nil {
				r.o.Logf("%s %s: attempt %d failed, retrying in %v: %v", op, key, attempt, delay.Round(time.Millisecond), err)
			}
		}))
	if err != nil && ctx.Err() != nil && last != nil {
		// ctx ended during a wait: the failed attempt says more than
		// "context canceled".
		return last
	}
	return err
}

// backOff returns the delays between attempts: full jitter (uniform in
// [0, bound]), with the bound doubling from MinDelay up to MaxDelay, so
// that many clients hit by the same outage do not retry in step. The
// library draws uniformly in [c*(1-f), c*(1+f)]; with f = 1 and c half
// the bound that is exactly [0, bound]. No delay runs past the deadline.
func (r *retryStore) backOff(deadline time.Time) backoff.BackOff {
	return &untilDeadline{
		b: &backoff.ExponentialBackOff{
			InitialInterval:     max(r.o.MinDelay/2, 1),
			RandomizationFactor: 1,
			Multiplier:          2,
			MaxInterval:         max(r.o.MaxDelay/2, 1),
		},
		deadline: deadline,
	}
}

// untilDeadline cuts every delay of b at the deadline.
type untilDeadline struct {
	b        backoff.BackOff
	deadline time.Time
}

func (u *untilDeadline) Reset() { u.b.Reset() }

func (u *untilDeadline) NextBackOff() time.Duration {
	d := u.b.NextBackOff()
	if d == backoff.Stop {
		return d
	}
	return max(0, min(d, time.Until(u.deadline)))
}

// attemptWithin runs one attempt, ended at deadline when bounded.
func attemptWithin(ctx context.Context, bounded bool, deadline time.Time, f func(context.Context) error) error {
	if !bounded {
		return f(ctx)
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return f(actx)
}

func (r *retryStore) Put(ctx context.Context, key string, body Body, opts PutOptions) error {
	return r.do(ctx, "put", key, false, func(ctx context.Context) error {
		err := r.s.Put(ctx, key, body, opts)
		if err == nil || !errors.Is(err, ErrTransient) || ctx.Err() != nil {
			return err
		}
		// Rewound now rather than before the next attempt, so that a body
		// that cannot be read again ends the Put without a wait.
		if rerr := body.Rewind(); errors.Is(rerr, ErrNotRewindable) {
			return noRetry{fmt.Errorf("%w (not retried: %w)", err, rerr)}
		} else if rerr != nil {
			return noRetry{fmt.Errorf("%w (and rewinding the source for a retry: %w)", err, rerr)}
		}
		return err
	})
}

func (r *retryStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return r.GetRange(ctx, key, 0, -1)
}

func (r *retryStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rr := &resumingReader{r: r, ctx: ctx, key: key, offset: offset, length: length}
	if err := rr.open(true); err != nil {
		return nil, err
	}
	return rr, nil
}

// resumingReader is a download that reopens the rest of its range when
// the stream breaks with ErrTransient. One goroutine reads it, as any
// io.Reader.
type resumingReader struct {
	r              *retryStore
	ctx            context.Context // the caller's, for the whole stream
	key            string
	offset, length int64  // the range asked for; length < 0: to the end
	done           int64  // bytes delivered so far
	url            string // the object, as the store underneath names it in errors

	rc    io.ReadCloser    // the current stream; nil after a failed resume
	v     contract.Version // what the first stream read
	known bool             // v is known: resuming is safe
	err   error            // sticky: the stream is over
}

// open opens the rest of the range (all of it at first) with retries. A
// reopened stream must read the version the first one read.
func (rr *resumingReader) open(first bool) error {
	length := rr.length
	if length >= 0 {
		length -= rr.done
	}
	return rr.r.do(rr.ctx, "get", rr.key, false, func(ctx context.Context) error {
		rc, err := rr.r.s.GetRange(ctx, rr.key, rr.offset+rr.done, length)
		if err != nil {
			return err
		}
		v, ok := contract.VersionOf(rc)
		if first {
			rr.rc, rr.v, rr.known = rc, v, ok
			return nil
		}
		if !ok || !v.Same(rr.v) {
			_ = rc.Close()
			return noRetry{rr.changed(v, ok)}
		}
		rr.rc = rc
		return nil
	})
}

func (rr *resumingReader) changed(v contract.Version, ok bool) error {
	now := "an unknown version"
	if ok {
		now = fmt.Sprintf("size %d, modified %v, tag %q", v.Size, v.ModTime.UTC(), v.Tag)
	}
	return &Error{Op: "get", URL: rr.url, Err: fmt.Errorf("%w (read the object again from the start): it is now %s, it was size %d, modified %v, tag %q",
		ErrObjectChanged, now, rr.v.Size, rr.v.ModTime.UTC(), rr.v.Tag)}
}

func (rr *resumingReader) Read(p []byte) (int, error) {
	for rr.err == nil {
		n, err := rr.rc.Read(p)
		rr.done += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		if err = rr.resume(err); err != nil {
			rr.err = err
		}
		if n > 0 {
			// Deliver what came; the next Read goes on from the new
			// stream or reports the failure.
			return n, nil
		}
	}
	return 0, rr.err
}

// resume replaces a broken stream by one that starts where it stopped,
// or returns why it cannot.
func (rr *resumingReader) resume(cause error) error {
	if !errors.Is(cause, ErrTransient) || !rr.known || rr.ctx.Err() != nil {
		return cause
	}
	_ = rr.rc.Close()
	rr.rc = nil
	rr.url = rr.key
	if e := (*Error)(nil); errors.As(cause, &e) && e.URL != "" {
		rr.url = e.URL
	}
	if end := rr.v.Size - rr.offset; rr.done >= end || (rr.length >= 0 && rr.done >= rr.length) {
		// Everything came; only the end of the stream went missing.
		return io.EOF
	}
	if rr.r.o.Logf != nil {
		rr.r.o.Logf("get %s: the download broke after %d bytes, resuming: %v", rr.key, rr.done, cause)
	}
	if err := rr.open(false); err != nil {
		return fmt.Errorf("resuming after %d bytes: %w", rr.done, err)
	}
	return nil
}

func (rr *resumingReader) Close() error {
	if rr.rc == nil {
		return nil
	}
	err := rr.rc.Close()
	rr.rc = nil
	if rr.err == nil {
		rr.err = errors.New("read after Close")
	}
	return err
}

// ObjectVersion implements contract.Versioned: a wrapper around the retry wrapper (and a
// retry wrapper around another) may learn what the stream reads.
func (rr *resumingReader) ObjectVersion() (contract.Version, bool) { return rr.v, rr.known }

func (r *retryStore) Stat(ctx context.Context, key string) (Attrs, error) {
	var a Attrs
	err := r.do(ctx, "stat", key, true, func(ctx context.Context) error {
		var err error
		a, err = r.s.Stat(ctx, key)
		return err
	})
	return a, err
}

func (r *retryStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	var (
		last      string
		delivered bool
	)
	return r.do(ctx, "list", prefix, false, func(ctx context.Context) error {
		return r.s.List(ctx, prefix, func(a Attrs) error {
			if delivered && a.Key <= last {
				return nil // delivered by an earlier attempt
			}
			if err := fn(a); err != nil {
				return noRetry{err}
			}
			last, delivered = a.Key, true
			return nil
		})
	})
}

func (r *retryStore) Delete(ctx context.Context, keys ...string) error {
	return r.do(ctx, "delete", fmt.Sprintf("(%d keys)", len(keys)), true, func(ctx context.Context) error {
		return r.s.Delete(ctx, keys...)
	})
}

func (r *retryStore) Close() error { return r.s.Close() }
