package cloud

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// NewMem returns a Store that keeps its objects in memory, for the unit
// tests of the packages above the blob layer. It checks keys and metadata
// and classifies its errors like every other provider, and it passes the
// same contract suite (cloud/storetest), so a test that passes on it has
// not leaned on a shortcut no real store offers. Open never returns it: no
// URL names it.
func NewMem() Store {
	return &memStore{objs: map[string]memObject{}}
}

type memStore struct {
	mu   sync.Mutex
	objs map[string]memObject
	seq  uint64 // Puts so far: each object's version tag
}

type memObject struct {
	data    []byte // never modified once stored
	md      map[string]string
	modTime time.Time
	seq     uint64
}

func (s *memStore) fail(op, key string, err error) error {
	return NewError(op, "mem:///"+key, err)
}

// Put implements Store. The object is stored only once the whole stream is
// read without error and ctx is still live.
func (s *memStore) Put(ctx context.Context, key string, r Body, opts PutOptions) error {
	if err := checkKey(key); err != nil {
		return s.fail("put", key, err)
	}
	if err := checkMetadata(opts.Metadata); err != nil {
		return s.fail("put", key, err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, ctxReader{ctx: ctx, r: r}); err != nil {
		if ctx.Err() != nil {
			return s.fail("put", key, ctx.Err())
		}
		return &Error{Op: "put", URL: "mem:///" + key, Kind: KindOf(err), Err: fmt.Errorf("reading source: %w", err)}
	}
	if err := ctx.Err(); err != nil {
		return s.fail("put", key, err)
	}
	md := maps.Clone(opts.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[key]; ok && opts.IfNotExists {
		return s.fail("put", key, ErrExists)
	}
	s.seq++
	s.objs[key] = memObject{data: buf.Bytes(), md: md, modTime: time.Now(), seq: s.seq}
	return nil
}

func (s *memStore) lookup(op, key string) (memObject, error) {
	if err := checkKey(key); err != nil {
		return memObject{}, s.fail(op, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return memObject{}, s.fail(op, key, ErrNotFound)
	}
	return o, nil
}

// Get implements Store.
func (s *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.GetRange(ctx, key, 0, -1)
}

// GetRange implements Store. The stream reads the stored slice, which no
// later Put modifies.
func (s *memStore) GetRange(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkRange(offset); err != nil {
		return nil, s.fail("get", key, err)
	}
	o, err := s.lookup("get", key)
	if err != nil {
		return nil, err
	}
	start, n := clampRange(int64(len(o.data)), offset, length)
	v := contract.Version{Size: int64(len(o.data)), ModTime: o.modTime, Tag: strconv.FormatUint(o.seq, 10)}
	return &memReader{r: bytes.NewReader(o.data[start : start+n]), v: v}, nil
}

// memReader offers only Read and Close, as the real stores' streams do,
// so that no caller comes to rely on seeking.
type memReader struct {
	r *bytes.Reader
	v contract.Version
}

func (r *memReader) Read(p []byte) (int, error)              { return r.r.Read(p) }
func (r *memReader) Close() error                            { return nil }
func (r *memReader) ObjectVersion() (contract.Version, bool) { return r.v, true }

// Stat implements Store.
func (s *memStore) Stat(_ context.Context, key string) (Attrs, error) {
	o, err := s.lookup("stat", key)
	if err != nil {
		return Attrs{}, err
	}
	return Attrs{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, Metadata: maps.Clone(o.md)}, nil
}

// List implements Store. It walks a snapshot of the matching keys taken
// when it starts, so that fn may change the store.
func (s *memStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	if err := checkPrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	s.mu.Lock()
	var as []Attrs
	for k, o := range s.objs {
		if strings.HasPrefix(k, prefix) {
			as = append(as, Attrs{Key: k, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(as, func(a, b Attrs) int { return strings.Compare(a.Key, b.Key) })
	for _, a := range as {
		if err := ctx.Err(); err != nil {
			return s.fail("list", prefix, err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store.
func (s *memStore) Delete(_ context.Context, keys ...string) error {
	for _, key := range keys {
		if err := checkKey(key); err != nil {
			return s.fail("delete", key, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		delete(s.objs, key)
	}
	return nil
}

// Close implements Store.
func (s *memStore) Close() error { return nil }
