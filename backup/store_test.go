package backup

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

// The unit tests store into cloud.NewMem, the in-memory Store that meets
// cloud's contract; the wrappers below add what a test needs on top.

// failPuts fails the Puts of the keys for which fail returns an error,
// after reading some of their data, like an upload that breaks midway.
type failPuts struct {
	cloud.Store
	fail func(key string) error
}

func (f failPuts) Put(ctx context.Context, key string, r cloud.Body, opts cloud.PutOptions) error {
	if err := f.fail(key); err != nil {
		_, _ = io.CopyN(io.Discard, r, 1<<20)
		return err
	}
	return f.Store.Put(ctx, key, r, opts)
}

// discardPuts reads what is Put and keeps none of it: a sink for
// throughput measurements that must not hold a database in memory.
type discardPuts struct{ cloud.Store }

func (discardPuts) Put(ctx context.Context, _ string, r cloud.Body, _ cloud.PutOptions) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return ctx.Err()
}

// storedBytes returns the content of key in st.
func storedBytes(t *testing.T, st cloud.Store, key string) []byte {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errInjected = errors.New("injected failure")
