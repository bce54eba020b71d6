package cloud

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store is the one small interface every provider implements. Keys are
// slash-separated and relative to the store's root (the URL's prefix).
// Behaviour such as retries, metrics or a key prefix is added by wrapping a
// Store in another Store, never by flags inside a provider.
//
// Keys are the same on every provider: non-empty UTF-8 of at most 1,024
// bytes, segments separated by single slashes (none at either end), no
// segment starting with "." (so no "." or ".."), no control characters,
// none of \ " # % ? and no "__0x" (characters some provider would store
// escaped, under another name and in another order). A key must not also be the "directory" of other
// keys ("a" and "a/b"): file:// cannot hold both. Errors for bad keys or
// metadata carry no classification sentinel.
//
// Errors are *Error values that name the operation and the object and
// carry one of the sentinels below (or none); a missing bucket, container
// or file:// root also carries ErrNoBucket.
type Store interface {
	// Put streams body to key. The object becomes visible under key only
	// once it is stored in full; a failed or cancelled Put leaves nothing
	// behind under that name. The size need not be known in advance
	// (Length -1). Memory is bounded by the part size and concurrency (see
	// Options), whatever the object's size. A failure of body itself is
	// returned wrapped ("reading source: ..."), so errors.Is finds body's
	// error. Put reads body from where it stands and never rewinds it
	// itself: only the retry wrapper does, between attempts (see
	// WithRetry), so a provider or another wrapper may rely on one pass.
	Put(ctx context.Context, key string, body Body, opts PutOptions) error

	// Get opens key for reading. A missing key yields an error for which
	// errors.Is(err, ErrNotFound) holds. It is GetRange(ctx, key, 0, -1).
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// GetRange opens length bytes of key from offset, or everything from
	// offset to the end when length < 0, so that a restore can fetch one
	// block of a part and a broken download can resume where it stopped.
	// Like pread(2), a range is cut at the end of the object, and one
	// that starts at or past the end (or has length 0) is an empty
	// stream, not an error: the size comes from Stat. A missing key
	// yields ErrNotFound whatever the range; a negative offset is an
	// error without classification. One stream never mixes versions of
	// an object overwritten meanwhile (each request reads one version).
	// Errors while reading carry the same classification as the others.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's size, time and user metadata.
	Stat(ctx context.Context, key string) (Attrs, error)

	// List calls fn for every object whose key starts with prefix, in
	// lexical key order, one page at a time, so memory stays bounded
	// whatever the number of objects. Attrs.Metadata is nil in listings.
	// An error returned by fn stops the walk and is returned.
	List(ctx context.Context, prefix string, fn func(Attrs) error) error

	// Delete removes keys in as few requests as the provider allows.
	// Keys that do not exist are not an error.
	Delete(ctx context.Context, keys ...string) error

	// Close releases the provider client.
	Close() error
}

// PutOptions tune one Put.
type PutOptions struct {
	// Metadata is stored with the object. Keys must be lower-case ASCII
	// letters and digits only, the subset every provider accepts unchanged.
	Metadata map[string]string

	// IfNotExists makes Put fail with ErrExists when key is already
	// present, atomically where the provider supports conditional writes.
	IfNotExists bool

	// SizeHint is the expected size in bytes, or 0 when unknown (then the
	// body's Length, if known, serves). Providers with a part-count limit
	// use it to choose a part size that fits.
	SizeHint int64
}

// Attrs describe one stored object.
type Attrs struct {
	Key      string
	Size     int64
	ModTime  time.Time
	Metadata map[string]string
}

// Classified errors. Providers wrap them, so callers test with errors.Is and
// never parse SDK error strings.
var (
	// ErrNotFound: the object, bucket or container does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a conditional Put found the key already present.
	ErrExists = errors.New("already exists")
	// ErrPermission: credentials are missing, invalid or not allowed.
	ErrPermission = errors.New("permission denied")
	// ErrTransient: a failure worth retrying (network, throttling, 5xx).
	ErrTransient = errors.New("transient failure")
)

// clampRange returns the part of [offset, offset+length) (length < 0: to
// the end) inside an object of size bytes, as a start and a count.
func clampRange(size, offset, length int64) (start, n int64) {
	start = min(offset, size)
	n = size - start
	if length >= 0 {
		n = min(n, length)
	}
	return start, n
}
