package cloud_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

func readAll(t *testing.T, b cloud.Body) string {
	t.Helper()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read %T: %v", b, err)
	}
	return string(got)
}

func TestBodies(t *testing.T) {
	b := cloud.BytesBody([]byte("in memory"))
	if b.Length() != 9 || readAll(t, b) != "in memory" || readAll(t, b) != "" {
		t.Fatal("BytesBody: wrong length or content, or not at its end after a read")
	}
	if err := b.Rewind(); err != nil || readAll(t, b) != "in memory" {
		t.Errorf("BytesBody after Rewind (%v): not the whole content again", err)
	}

	file := strings.NewReader("header|body|trailer")
	s := cloud.SectionBody(file, 7, 4)
	if s.Length() != 4 || readAll(t, s) != "body" {
		t.Fatal("SectionBody: wrong length or content")
	}
	if err := s.Rewind(); err != nil || readAll(t, s) != "body" {
		t.Errorf("SectionBody after Rewind (%v): not the section again", err)
	}
	short := cloud.SectionBody(file, 12, 100)
	if _, err := io.ReadAll(short); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("SectionBody past the end of its source: %v, want io.ErrUnexpectedEOF", err)
	}

	o := cloud.OneShotBody(strings.NewReader("once"))
	if o.Length() != -1 {
		t.Errorf("OneShotBody Length = %d, want -1 (unknown)", o.Length())
	}
	if err := o.Rewind(); err != nil {
		t.Errorf("OneShotBody before its first byte: Rewind = %v, want nil", err)
	}
	readAll(t, o)
	if err := o.Rewind(); !errors.Is(err, cloud.ErrNotRewindable) {
		t.Errorf("OneShotBody once read: Rewind = %v, want ErrNotRewindable", err)
	}
}

// failFirstPut fails its first Put with a transient error, after reading
// read bytes of the body (0: before reading any).
type failFirstPut struct {
	cloud.Store
	read     int64
	attempts atomic.Int32
}

func (f *failFirstPut) Put(ctx context.Context, key string, b cloud.Body, opts cloud.PutOptions) error {
	if f.attempts.Add(1) == 1 {
		if _, err := io.CopyN(io.Discard, b, f.read); err != nil {
			return err
		}
		return &cloud.Error{Op: "put", URL: "test://" + key, Kind: cloud.ErrTransient, Err: errors.New("connection refused")}
	}
	return f.Store.Put(ctx, key, b, opts)
}

// A one-shot body is retried when the failed attempt read none of it (the
// connection was refused), and not once it was read into: the error says
// why, and keeps its classification for the caller's own retry.
func TestRetryPutOneShotBody(t *testing.T) {
	f := &failFirstPut{Store: cloud.NewMem()}
	s := cloud.WithRetry(f, fastRetry(time.Minute))
	if err := s.Put(t.Context(), "k", cloud.OneShotBody(strings.NewReader("whole")), cloud.PutOptions{}); err != nil {
		t.Fatalf("Put after a failure before the first byte: %v", err)
	}
	if got := get(t, f.Store, "k"); f.attempts.Load() != 2 || got != "whole" {
		t.Errorf("%d attempts stored %q, want 2 and \"whole\"", f.attempts.Load(), got)
	}

	f = &failFirstPut{Store: cloud.NewMem(), read: 2}
	s = cloud.WithRetry(f, fastRetry(time.Minute))
	err := s.Put(t.Context(), "k", cloud.OneShotBody(strings.NewReader("whole")), cloud.PutOptions{})
	if !errors.Is(err, cloud.ErrTransient) || !errors.Is(err, cloud.ErrNotRewindable) || !strings.Contains(err.Error(), "not retried") {
		t.Errorf("Put of a one-shot body read into: %v, want the transient error, not retried", err)
	}
	if f.attempts.Load() != 1 {
		t.Errorf("%d attempts, want 1", f.attempts.Load())
	}
	if _, err := f.Store.Stat(t.Context(), "k"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("a failed one-shot Put left an object behind: %v", err)
	}
}

// badRewind is a body whose Rewind fails as a file read would.
type badRewind struct{ cloud.Body }

func (badRewind) Rewind() error { return errors.New("input/output error") }

func TestRetryPutRewindFails(t *testing.T) {
	f := &failFirstPut{Store: cloud.NewMem(), read: 1}
	s := cloud.WithRetry(f, fastRetry(time.Minute))
	err := s.Put(t.Context(), "k", badRewind{cloud.BytesBody([]byte("abc"))}, cloud.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "rewinding the source for a retry: input/output error") || f.attempts.Load() != 1 {
		t.Errorf("Put whose body fails to rewind: %v after %d attempts, want one attempt and the rewind's error", err, f.attempts.Load())
	}
}

// recordLayer is a Layer that notes, in order, the layers a Put passes.
type recordLayer struct {
	cloud.Store
	name  string
	trail *[]string
}

func (l *recordLayer) Unwrap() cloud.Store { return l.Store }

func (l *recordLayer) Put(ctx context.Context, key string, b cloud.Body, opts cloud.PutOptions) error {
	*l.trail = append(*l.trail, l.name)
	return l.Store.Put(ctx, key, b, opts)
}

// Open adds Options.Layers around its own chain, first layer innermost,
// and capabilities below them (file://'s StaleSweeper, under bandwidth,
// prefix and retry) are still found through Unwrap.
func TestOpenLayers(t *testing.T) {
	var trail []string
	layer := func(name string) cloud.Layer {
		return func(s cloud.Store) cloud.Store { return &recordLayer{Store: s, name: name, trail: &trail} }
	}
	root := t.TempDir()
	s, err := cloud.Open(t.Context(), "file://"+root, cloud.Options{
		MaxBandwidth: 1 << 30, Layers: []cloud.Layer{layer("inner"), layer("outer")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sub := cloud.WithPrefix(s, "pre")
	if err := sub.Put(t.Context(), "k", cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(trail, ",") != "outer,inner" {
		t.Errorf("a Put passed the layers %q, want outer,inner", trail)
	}
	if l, ok := s.(*recordLayer); !ok || l.name != "outer" {
		t.Fatalf("Open returned %T, want the last layer outermost", s)
	}
	if _, ok := cloud.As[*recordLayer](s.(*recordLayer).Store); !ok {
		t.Error("As did not find the inner layer under the outer one")
	}
	if _, ok := cloud.As[cloud.StaleSweeper](s); !ok {
		t.Fatal("As did not find file://'s StaleSweeper under the layers")
	}
	res, err := cloud.SweepStale(t.Context(), s, "", cloud.SweepOptions{Stale: func(string, time.Time) bool { return true }, DryRun: true})
	if err != nil || res.What != "temporary files" {
		t.Errorf("SweepStale through the layers: %+v, %v", res, err)
	}
	if _, ok := cloud.As[cloud.StaleSweeper](cloud.NewMem()); ok {
		t.Error("As found a StaleSweeper in the in-memory store, which has none")
	}
}

// get reads key from s whole.
func get(t *testing.T, s cloud.Store, key string) string {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
