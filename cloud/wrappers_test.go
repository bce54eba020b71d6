package cloud_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

// flaky is a Store that fails its first n calls of each operation with err,
// and records what reached it.
type flaky struct {
	mu    sync.Mutex
	fail  map[string]int // op -> failures left
	err   error
	calls map[string]int
	puts  []string // content of every Put attempt
	keys  []string // keys List offers, in order
	// failListAfter makes List fail (once) after delivering that many keys.
	failListAfter int
}

func newFlaky(n int, err error) *flaky {
	return &flaky{
		fail:          map[string]int{"put": n, "get": n, "stat": n, "list": n, "delete": n},
		err:           err,
		calls:         map[string]int{},
		failListAfter: -1,
	}
}

func (f *flaky) step(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.fail[op] > 0 {
		f.fail[op]--
		return &cloud.Error{Op: op, URL: "flaky://", Kind: kindOf(f.err), Err: f.err}
	}
	return nil
}

func kindOf(err error) error {
	for _, k := range []error{cloud.ErrNotFound, cloud.ErrExists, cloud.ErrPermission, cloud.ErrTransient} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

func (f *flaky) Put(ctx context.Context, key string, r cloud.Body, opts cloud.PutOptions) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.puts = append(f.puts, string(b))
	f.mu.Unlock()
	return f.step("put")
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return f.GetRange(ctx, key, 0, -1)
}

func (f *flaky) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := f.step("get"); err != nil {
		return nil, err
	}
	content := "content of " + key
	content = content[min(int(offset), len(content)):]
	if length >= 0 {
		content = content[:min(int(length), len(content))]
	}
	return io.NopCloser(strings.NewReader(content)), nil
}

func (f *flaky) Stat(ctx context.Context, key string) (cloud.Attrs, error) {
	if err := f.step("stat"); err != nil {
		return cloud.Attrs{}, err
	}
	return cloud.Attrs{Key: key, Size: 1}, nil
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(cloud.Attrs) error) error {
	f.mu.Lock()
	f.calls["list"]++
	failAfter := f.failListAfter
	f.failListAfter = -1
	f.mu.Unlock()
	for i, k := range f.keys {
		if i == failAfter {
			return &cloud.Error{Op: "list", URL: "flaky://", Kind: cloud.ErrTransient, Err: errors.New("connection reset")}
		}
		if strings.HasPrefix(k, prefix) {
			if err := fn(cloud.Attrs{Key: k}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *flaky) Delete(ctx context.Context, keys ...string) error { return f.step("delete") }
func (f *flaky) Close() error                                     { return nil }

func fastRetry(timeout time.Duration) cloud.RetryOptions {
	return cloud.RetryOptions{Timeout: timeout, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
}

var errBlip = fmt.Errorf("connection reset: %w", cloud.ErrTransient)

func TestRetryTransient(t *testing.T) {
	ctx := t.Context()
	f := newFlaky(3, errBlip)
	var logged []string
	o := fastRetry(time.Minute)
	o.Logf = func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
	s := cloud.WithRetry(f, o)

	if err := s.Put(ctx, "k", cloud.BytesBody([]byte("seekable")), cloud.PutOptions{}); err != nil {
		t.Errorf("Put: %v", err)
	}
	if !slices.Equal(f.puts, []string{"seekable", "seekable", "seekable", "seekable"}) {
		t.Errorf("Put attempts sent %q, want the whole content 4 times", f.puts)
	}
	rc, err := s.Get(ctx, "k")
	if err != nil {
		t.Errorf("Get: %v", err)
	} else {
		rc.Close()
	}
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Errorf("Stat: %v", err)
	}
	if err := s.Delete(ctx, "a", "b"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	for _, op := range []string{"put", "get", "stat", "delete"} {
		if f.calls[op] != 4 {
			t.Errorf("%s: %d calls, want 4", op, f.calls[op])
		}
	}
	if len(logged) != 12 || !strings.Contains(logged[0], "attempt 1 failed") {
		t.Errorf("logged %d notices (%q...), want 12", len(logged), logged[:min(1, len(logged))])
	}
}

// A body rewinds to where it began, not to offset 0 of its file.
func TestRetryPutRewindsToStart(t *testing.T) {
	f := newFlaky(2, errBlip)
	s := cloud.WithRetry(f, fastRetry(time.Minute))
	r := cloud.SectionBody(strings.NewReader("header|body"), 7, 4)
	if err := s.Put(t.Context(), "k", r, cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.puts, []string{"body", "body", "body"}) {
		t.Errorf("attempts sent %q, want \"body\" each time", f.puts)
	}
}

func TestRetryPutOneShot(t *testing.T) {
	f := newFlaky(1, errBlip)
	s := cloud.WithRetry(f, fastRetry(time.Minute))
	err := s.Put(t.Context(), "k", cloud.OneShotBody(bytes.NewReader([]byte("once"))), cloud.PutOptions{})
	if !errors.Is(err, cloud.ErrTransient) {
		t.Errorf("Put: %v, want the transient error (no retry)", err)
	}
	if f.calls["put"] != 1 {
		t.Errorf("%d Put attempts with a one-shot body, want 1", f.calls["put"])
	}
}

func TestRetryPermanentNotRetried(t *testing.T) {
	for _, kind := range []error{cloud.ErrNotFound, cloud.ErrPermission, cloud.ErrExists, errors.New("unclassified")} {
		f := newFlaky(5, kind)
		s := cloud.WithRetry(f, fastRetry(time.Minute))
		_, err := s.Stat(t.Context(), "k")
		if err == nil || (kindOf(kind) != nil && !errors.Is(err, kind)) {
			t.Errorf("%v: Stat = %v", kind, err)
		}
		if f.calls["stat"] != 1 {
			t.Errorf("%v: %d attempts, want 1", kind, f.calls["stat"])
		}
	}
}

func TestRetryDeadline(t *testing.T) {
	f := newFlaky(1<<30, errBlip)
	s := cloud.WithRetry(f, cloud.RetryOptions{Timeout: 150 * time.Millisecond, MinDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond})
	start := time.Now()
	_, err := s.Stat(t.Context(), "k")
	elapsed := time.Since(start)
	if !errors.Is(err, cloud.ErrTransient) || !strings.Contains(err.Error(), "gave up after") {
		t.Errorf("Stat = %v, want the transient error after giving up", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("gave up after %v, want just over the 150ms deadline", elapsed)
	}
	if f.calls["stat"] < 3 {
		t.Errorf("only %d attempts in the deadline", f.calls["stat"])
	}
}

func TestRetryContextCancel(t *testing.T) {
	f := newFlaky(1<<30, errBlip)
	s := cloud.WithRetry(f, cloud.RetryOptions{Timeout: time.Hour, MinDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Stat(ctx, "k"); err == nil {
		t.Fatal("Stat succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("retries outlived the context by %v", d)
	}
}

func TestRetryListResumes(t *testing.T) {
	f := newFlaky(0, nil)
	f.keys = []string{"a", "b", "c", "d", "e"}
	f.failListAfter = 3 // deliver a, b, c, then fail
	s := cloud.WithRetry(f, fastRetry(time.Minute))
	var got []string
	if err := s.List(t.Context(), "", func(a cloud.Attrs) error {
		got = append(got, a.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, f.keys) {
		t.Errorf("List delivered %q, want each key once: %q", got, f.keys)
	}
	if f.calls["list"] != 2 {
		t.Errorf("%d List calls, want 2", f.calls["list"])
	}
}

func TestRetryListCallbackErrorNotRetried(t *testing.T) {
	f := newFlaky(0, nil)
	f.keys = []string{"a", "b"}
	s := cloud.WithRetry(f, fastRetry(time.Minute))
	// Even a transient-looking error from the callback is the caller's.
	err := s.List(t.Context(), "", func(cloud.Attrs) error { return errBlip })
	if err != errBlip {
		t.Errorf("List = %v, want the callback's error unchanged", err)
	}
	if f.calls["list"] != 1 {
		t.Errorf("%d List calls, want 1", f.calls["list"])
	}
}

func TestUnwrap(t *testing.T) {
	f := newFlaky(0, nil)
	var m cloud.Metrics
	s := cloud.WithMetrics(cloud.WithRetry(cloud.WithPrefix(f, "p"), cloud.RetryOptions{}), &m)
	var chain []string
	for cur := s; cur != nil; {
		chain = append(chain, fmt.Sprintf("%T", cur))
		u, ok := cur.(interface{ Unwrap() cloud.Store })
		if !ok {
			break
		}
		cur = u.Unwrap()
	}
	if len(chain) != 4 || chain[3] != "*cloud_test.flaky" {
		t.Errorf("Unwrap chain = %v", chain)
	}
}

func TestPrefix(t *testing.T) {
	root := cloud.Store(mustOpenFile(t))
	ctx := t.Context()
	sub := cloud.WithPrefix(root, "/tenant/a/")
	if err := sub.Put(ctx, "x/1", cloud.BytesBody([]byte("one")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := root.Put(ctx, "tenant/ab/x", cloud.BytesBody([]byte("neighbour")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if a, err := root.Stat(ctx, "tenant/a/x/1"); err != nil || a.Size != 3 {
		t.Errorf("underlying key: %+v, %v", a, err)
	}
	if a, err := sub.Stat(ctx, "x/1"); err != nil || a.Key != "x/1" {
		t.Errorf("Stat through prefix: %+v, %v", a, err)
	}
	var got []string
	if err := sub.List(ctx, "", func(a cloud.Attrs) error { got = append(got, a.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"x/1"}) {
		t.Errorf("List through prefix = %q, want [x/1] (not the neighbour under tenant/ab)", got)
	}
	if err := sub.Put(ctx, "", cloud.BytesBody([]byte("")), cloud.PutOptions{}); err == nil {
		t.Error("Put of an empty key through a prefix succeeded")
	}
	if err := sub.Delete(ctx, "x/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Stat(ctx, "tenant/a/x/1"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("after Delete through prefix: %v", err)
	}
	if cloud.WithPrefix(root, "/") != root {
		t.Error("an empty prefix should return the store itself")
	}
}

func TestMetrics(t *testing.T) {
	var m cloud.Metrics
	s := cloud.WithMetrics(mustOpenFile(t), &m)
	ctx := t.Context()
	if err := s.Put(ctx, "a", cloud.BytesBody([]byte("12345")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	_, _ = s.Stat(ctx, "missing")
	_ = s.List(ctx, "", func(cloud.Attrs) error { return nil })
	_ = s.Delete(ctx, "a", "b")
	for name, got := range map[string]int64{
		"Puts": m.Puts.Load(), "Gets": m.Gets.Load(), "Stats": m.Stats.Load(), "Lists": m.Lists.Load(),
		"Deletes": m.Deletes.Load(), "Failures": m.Failures.Load(), "Listed": m.Listed.Load(),
	} {
		if got != 1 {
			t.Errorf("%s = %d, want 1", name, got)
		}
	}
	if m.BytesPut.Load() != 5 || m.BytesGot.Load() != 5 || m.KeysDeleted.Load() != 2 {
		t.Errorf("bytes put %d, got %d, keys deleted %d; want 5, 5, 2", m.BytesPut.Load(), m.BytesGot.Load(), m.KeysDeleted.Load())
	}
}

// TestMetricsKeepsPutRetryable checks that counting keeps a body
// rewindable, which WithRetry needs.
func TestMetricsKeepsPutRetryable(t *testing.T) {
	f := newFlaky(1, errBlip)
	var m cloud.Metrics
	s := cloud.WithMetrics(cloud.WithRetry(f, fastRetry(time.Minute)), &m)
	if err := s.Put(t.Context(), "k", cloud.BytesBody([]byte("abc")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.calls["put"] != 2 || m.BytesPut.Load() != 6 {
		t.Errorf("%d attempts, %d bytes counted; want 2 and 6", f.calls["put"], m.BytesPut.Load())
	}
}
