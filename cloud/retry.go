package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// RetryOptions configure WithRetry.
type RetryOptions struct {
	// Timeout is the overall deadline for one operation's attempts: no
	// attempt starts after it, and an attempt of Stat or Delete (small
	// requests) is cut short at it. It does not cut short an upload, a
	// download or a listing already under way, which may rightly take
	// longer: those stop only when the store stalls (the HTTP clients' I/O
	// timeout, see stallTransport) or ctx ends. 0 means
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
//   - Put is retried only if its reader is an io.Seeker (seeked back to its
//     starting offset before every new attempt). Any other reader is
//     consumed by the first attempt, so that Put gets exactly one; callers
//     that want retries pass a seekable reader (an *os.File, a
//     *bytes.Reader) or buffer small objects.
//   - A retried Put with IfNotExists may fail with ErrExists because of its
//     own earlier attempt, which succeeded although its reply was lost.
//     Callers compare content (a checksum in the metadata) to tell.
//   - Get retries only opening the object, not reads from the stream.
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

// noRetry carries an error that must be returned as is, even if it is
// classified ErrTransient (an error from List's callback).
type noRetry struct{ err error }

func (n noRetry) Error() string { return n.err.Error() }

// do runs f until it succeeds, fails with a non-transient error, the
// deadline passes or ctx is done. With bounded, each attempt gets a
// context that ends at the deadline.
func (r *retryStore) do(ctx context.Context, op, key string, bounded bool, f func(context.Context) error) error {
	start := time.Now()
	deadline := start.Add(r.o.Timeout)
	for attempt := 1; ; attempt++ {
		err := attemptWithin(ctx, bounded, deadline, f)
		var nr noRetry
		if errors.As(err, &nr) {
			return nr.err
		}
		if err == nil || !errors.Is(err, ErrTransient) || ctx.Err() != nil {
			return err
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return fmt.Errorf("gave up after %d attempts in %v: %w", attempt, time.Since(start).Round(time.Millisecond), err)
		}
		// Full jitter: a random delay up to the exponential bound, so that
		// many clients hit by the same outage do not retry in step.
		bound := r.o.MaxDelay
		if attempt < 30 {
			bound = min(bound, r.o.MinDelay<<(attempt-1))
		}
		delay := min(rand.N(bound)+1, remaining)
		if r.o.Logf != nil {
			r.o.Logf("%s %s: attempt %d failed, retrying in %v: %v", op, key, attempt, delay.Round(time.Millisecond), err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
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

func (r *retryStore) Put(ctx context.Context, key string, rd io.Reader, opts PutOptions) error {
	seeker, ok := rd.(io.Seeker)
	if !ok {
		return r.s.Put(ctx, key, rd, opts)
	}
	// Pipes and terminals are *os.File too, but cannot seek.
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return r.s.Put(ctx, key, rd, opts)
	}
	first := true
	return r.do(ctx, "put", key, false, func(ctx context.Context) error {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return fmt.Errorf("put %s: rewinding the source for a retry: %w", key, err)
			}
		}
		first = false
		return r.s.Put(ctx, key, rd, opts)
	})
}

func (r *retryStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "get", key, false, func(ctx context.Context) error {
		var err error
		rc, err = r.s.Get(ctx, key)
		return err
	})
	return rc, err
}

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
