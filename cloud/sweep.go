package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StaleSweeper is implemented by the providers on which a process killed
// in the middle of a Put leaves something behind that is not an object, so
// that List never shows it and Delete never removes it, but that takes
// space (and, on S3, is billed): an incomplete multipart upload (S3), a
// hidden temporary file (file://). GCS abandons resumable uploads and Azure
// uncommitted blocks by itself after a week, so neither has one.
//
// Wrappers that change keys forward it (WithPrefix); the others are walked
// through with Unwrap (As) by SweepStale.
type StaleSweeper interface {
	// SweepStale looks at the leftovers of Puts of keys that start with
	// prefix and removes those opts.Stale picks. A leftover that is
	// gone meanwhile (the Put ended) is not an error, and is not counted.
	SweepStale(ctx context.Context, prefix string, opts SweepOptions) (SweepResult, error)
}

// SweepOptions tell a sweep what to remove.
type SweepOptions struct {
	// Stale tells whether the leftover of a Put of key is to be removed.
	// since is when it was begun (S3: the upload's initiation) or last
	// written (file://: the temporary file's mtime), by the store's clock.
	// Required: only the caller knows which Puts may still be running.
	Stale func(key string, since time.Time) bool
	// DryRun finds and counts what would be removed, and removes nothing.
	DryRun bool
}

// SweepResult says what a sweep removed, or would have with DryRun.
type SweepResult struct {
	// What names the leftovers, for reports: "multipart uploads" or
	// "temporary files".
	What  string
	Count int
	// Bytes is the space they took, as far as the provider tells.
	Bytes int64
}

// SweepStale runs the StaleSweeper of s (s itself, or a Store found under
// it with Unwrap). Without one, it returns an error for which
// errors.Is(err, errors.ErrUnsupported) holds: the provider leaves nothing
// to sweep, or cleans up after itself.
func SweepStale(ctx context.Context, s Store, prefix string, opts SweepOptions) (SweepResult, error) {
	if opts.Stale == nil {
		return SweepResult{}, errors.New("sweep: no Stale function")
	}
	if sw, ok := As[StaleSweeper](s); ok {
		return sw.SweepStale(ctx, prefix, opts)
	}
	return SweepResult{}, fmt.Errorf("sweep %T: %w", s, errors.ErrUnsupported)
}

// SweepStale implements StaleSweeper: it sweeps under its prefix, and
// shows the keys to opts.Stale without it.
func (p *prefixStore) SweepStale(ctx context.Context, prefix string, opts SweepOptions) (SweepResult, error) {
	stale := opts.Stale
	opts.Stale = func(key string, since time.Time) bool {
		rel, ok := strings.CutPrefix(key, p.prefix)
		return ok && stale(rel, since)
	}
	return SweepStale(ctx, p.s, p.prefix+prefix, opts)
}
