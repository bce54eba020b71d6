package cloud

import (
	"context"
	"io"
	"strings"
)

// prefixStore roots a Store at a key prefix (a "sub-store").
type prefixStore struct {
	s      Store
	prefix string // ends with "/"
}

// WithPrefix returns a Store whose keys are relative to prefix inside s:
// key k of the result is key prefix+"/"+k of s. Listings strip the prefix
// again. Slashes at either end of prefix are ignored; an empty prefix
// returns s itself.
func WithPrefix(s Store, prefix string) Store {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return s
	}
	return &prefixStore{s: s, prefix: prefix + "/"}
}

// Unwrap returns the Store underneath.
func (p *prefixStore) Unwrap() Store { return p.s }

func (p *prefixStore) Put(ctx context.Context, key string, r Body, opts PutOptions) error {
	if err := p.checkKey("put", key); err != nil {
		return err
	}
	return p.s.Put(ctx, p.prefix+key, r, opts)
}

func (p *prefixStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := p.checkKey("get", key); err != nil {
		return nil, err
	}
	return p.s.Get(ctx, p.prefix+key)
}

func (p *prefixStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := p.checkKey("get", key); err != nil {
		return nil, err
	}
	return p.s.GetRange(ctx, p.prefix+key, offset, length)
}

func (p *prefixStore) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := p.checkKey("stat", key); err != nil {
		return Attrs{}, err
	}
	a, err := p.s.Stat(ctx, p.prefix+key)
	a.Key = key
	return a, err
}

func (p *prefixStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	return p.s.List(ctx, p.prefix+prefix, func(a Attrs) error {
		a.Key = strings.TrimPrefix(a.Key, p.prefix)
		return fn(a)
	})
}

func (p *prefixStore) Delete(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		if err := p.checkKey("delete", k); err != nil {
			return err
		}
		full[i] = p.prefix + k
	}
	return p.s.Delete(ctx, full...)
}

func (p *prefixStore) Close() error { return p.s.Close() }

// checkKey catches an empty key, which would otherwise name the prefix's
// own "directory" below; the rest is checked by the provider.
func (p *prefixStore) checkKey(op, key string) error {
	if err := checkKey(key); err != nil {
		return &Error{Op: op, URL: "<prefix " + p.prefix + ">" + key, Err: err}
	}
	return nil
}
