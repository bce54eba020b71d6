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
	// Put streams r to key. The object becomes visible under key only once
	// it is stored in full; a failed or cancelled Put leaves nothing behind
	// under that name. The size need not be known in advance. Memory is
	// bounded by the part size and concurrency (see Options), whatever
	// the object's size. A failure of r itself is returned wrapped
	// ("reading source: ..."), so errors.Is finds r's error.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error

	// Get opens key for reading. A missing key yields an error for which
	// errors.Is(err, ErrNotFound) holds.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

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

	// SizeHint is the expected size in bytes, or 0 when unknown. Providers
	// with a part-count limit use it to choose a part size that fits.
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
