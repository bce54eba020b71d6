package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

// memStore is an in-memory cloud.Store for unit tests. With discard it
// keeps only sizes (for benchmarks); failPut makes Puts of matching keys
// fail after reading some of their data.
type memStore struct {
	mu      sync.Mutex
	objs    map[string][]byte
	sizes   map[string]int64
	discard bool
	failPut func(key string) error
}

func newMemStore() *memStore {
	return &memStore{objs: map[string][]byte{}, sizes: map[string]int64{}}
}

func (m *memStore) Put(ctx context.Context, key string, r io.Reader, opts cloud.PutOptions) error {
	if m.failPut != nil {
		if err := m.failPut(key); err != nil {
			_, _ = io.CopyN(io.Discard, r, 1<<20)
			return err
		}
	}
	var buf bytes.Buffer
	var n int64
	var err error
	if m.discard {
		n, err = io.Copy(io.Discard, r)
	} else {
		n, err = io.Copy(&buf, r)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if opts.IfNotExists {
		if _, ok := m.sizes[key]; ok {
			return fmt.Errorf("put %s: %w", key, cloud.ErrExists)
		}
	}
	m.sizes[key] = n
	if !m.discard {
		m.objs[key] = buf.Bytes()
	}
	return nil
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, cloud.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memStore) Stat(_ context.Context, key string) (cloud.Attrs, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.sizes[key]
	if !ok {
		return cloud.Attrs{}, fmt.Errorf("stat %s: %w", key, cloud.ErrNotFound)
	}
	return cloud.Attrs{Key: key, Size: n, ModTime: time.Now()}, nil
}

func (m *memStore) List(_ context.Context, prefix string, fn func(cloud.Attrs) error) error {
	m.mu.Lock()
	var keys []string
	for k := range m.sizes {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		m.mu.Lock()
		n := m.sizes[k]
		m.mu.Unlock()
		if err := fn(cloud.Attrs{Key: k, Size: n}); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Delete(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.objs, k)
		delete(m.sizes, k)
	}
	return nil
}

func (m *memStore) Close() error { return nil }

var errInjected = errors.New("injected failure")
