package cloud

import (
	"context"
	"errors"
	"fmt"
)

// Provider is one kind of object store whose code lives outside this
// package (Amazon S3, Google Cloud Storage, Azure Blob Storage, in
// cloud/s3, cloud/gcs and cloud/azure): what Open needs to make its Store,
// and what NewError needs to read its SDK's errors. file:// is built in.
//
// The SDK providers are apart so that a program can leave them out: their
// package initialisers cost 1.5 to 2.5 ms of CPU each at every start, and
// gbc-wal-archive and gbc-wal-restore start once per WAL segment. Import a
// provider's package (cloud/providers for all of them) to link it.
type Provider struct {
	// Scheme is the store URL scheme it serves: "s3", "gs" or "azblob".
	Scheme string
	// Open returns the Store of bucket (the bucket or container of the
	// URL) configured by opts, both checked already. It reads the
	// environment but must not touch the network.
	Open func(ctx context.Context, bucket string, opts Options) (Store, error)
	// Classify maps an error of the provider's SDK to its Class; ok is
	// false for an error it knows nothing about, which the other
	// providers, then the network's classification, look at.
	Classify func(err error) (c Class, ok bool)
	// Summary renders an error of the provider's SDK in a few words: its
	// error code and HTTP status and, with message, the SDK's one-line
	// message (see Error); ok is false for an error it does not know.
	Summary func(err error, message bool) (s string, ok bool)
}

// Class is how a provider classifies one of its errors: the sentinel it
// counts as (ErrNotFound, ErrExists, ErrPermission, ErrTransient, or nil
// for none of them), and whether it says the bucket or container itself is
// missing (ErrNoBucket, with ErrNotFound).
type Class struct {
	Kind     error
	NoBucket bool
}

// registry is the providers linked into this program, in the order their
// packages were initialised.
//
// It is package-level state, which gbc otherwise avoids, for the reason
// database/sql's drivers and image's formats are: which stores a program
// can open is decided by what it links, and a table handed down from each
// main through every command, engine and test that opens a store would
// carry that decision everywhere. It is written only by Register, from the
// providers' init functions, which all run before main starts; from then
// on it is only read, so it needs no lock and never changes under a Store.
var registry []Provider

// Register links p into Open and the error classification. Call it from
// the init function of p's package, and nowhere else. It panics on a
// scheme Open does not parse or that is registered already: both are
// programming errors.
func Register(p Provider) {
	switch p.Scheme {
	case "s3", "gs", "azblob":
	default:
		panic(fmt.Sprintf("cloud: Register of scheme %q, which store URLs cannot name", p.Scheme))
	}
	if _, ok := lookup(p.Scheme); ok {
		panic(fmt.Sprintf("cloud: Register of scheme %q twice", p.Scheme))
	}
	if p.Open == nil {
		panic(fmt.Sprintf("cloud: Register of scheme %q without Open", p.Scheme))
	}
	registry = append(registry, p)
}

// providers returns the registered providers.
func providers() []Provider { return registry }

// lookup returns the provider registered for scheme.
func lookup(scheme string) (Provider, bool) {
	for _, p := range registry {
		if p.Scheme == scheme {
			return p, true
		}
	}
	return Provider{}, false
}

// ErrNotLinked: the store URL names a provider that this program does not
// link (see Provider). gbc-wal-archive and gbc-wal-restore, which link
// only file://, hand such a call over to the full gbc binary.
var ErrNotLinked = errors.New("the provider is not linked into this program")

// Linked reports whether this program links the provider of rawURL's
// scheme, so that Open can open it. A URL that does not parse counts as
// linked: Open (and Options.Check) report what is wrong with it.
func Linked(rawURL string) bool {
	loc, err := parseStoreURL(rawURL)
	if err != nil || loc.scheme == "file" {
		return true
	}
	_, ok := lookup(loc.scheme)
	return ok
}
