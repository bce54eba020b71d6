package cloud_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// breaker sits in front of gofakes3 and breaks the first GETs of an
// object after some bytes of the body, as a dropped connection or a
// stalled store would.
type breaker struct {
	next http.Handler
	mu   sync.Mutex
	// breaks are the byte counts after which the next GETs break, in
	// order; each is used once.
	breaks []int
	// stall makes a break stop sending (the client's I/O timeout ends
	// it) rather than drop the connection.
	stall bool
	// before runs at a break, before it takes effect.
	before func()
	ranges []string // the Range header of every GET
}

func (b *breaker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Query().Has("list-type") || !strings.Contains(r.URL.Path, "/obj") {
		b.next.ServeHTTP(w, r)
		return
	}
	b.mu.Lock()
	b.ranges = append(b.ranges, r.Header.Get("Range"))
	left := -1
	if len(b.breaks) > 0 {
		left, b.breaks = b.breaks[0], b.breaks[1:]
	}
	b.mu.Unlock()
	if left < 0 {
		b.next.ServeHTTP(w, r)
		return
	}
	b.next.ServeHTTP(&breakingWriter{ResponseWriter: w, left: left, b: b, done: r.Context().Done()}, r)
}

func (b *breaker) takeRanges() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.ranges
	b.ranges = nil
	return out
}

type breakingWriter struct {
	http.ResponseWriter
	left int
	b    *breaker
	done <-chan struct{}
}

func (w *breakingWriter) Write(p []byte) (int, error) {
	if len(p) <= w.left {
		w.left -= len(p)
		return w.ResponseWriter.Write(p)
	}
	n, _ := w.ResponseWriter.Write(p[:w.left])
	w.ResponseWriter.(http.Flusher).Flush()
	if w.b.before != nil {
		w.b.before()
	}
	if w.b.stall {
		<-w.done // until the client gives up
	}
	// The server drops the connection: the client sees a body shorter
	// than its Content-Length.
	_ = n
	panic(http.ErrAbortHandler)
}

// breakingS3 is gofakes3 with one object, "obj", behind a breaker, opened
// through cloud.Open (so with the retry wrapper).
func breakingS3(t *testing.T, content []byte, o cloud.Options) (cloud.Store, *breaker, *s3mem.Backend) {
	t.Helper()
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test-access-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	backend := s3mem.New()
	if err := backend.CreateBucket("gbc-test"); err != nil {
		t.Fatal(err)
	}
	br := &breaker{next: gofakes3.New(backend).Server()}
	srv := httptest.NewServer(br)
	t.Cleanup(srv.Close)
	o.EndpointURL = srv.URL
	s, err := cloud.Open(t.Context(), "s3://gbc-test", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Put(t.Context(), "obj", cloud.BytesBody(content), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return s, br, backend
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(b)
	return b
}

func quickRetry() cloud.Options {
	return cloud.Options{RetryTimeout: 20 * time.Second}
}

// TestGetResumesBrokenDownload: a download that breaks twice reaches the
// caller as one stream, each resumption asking for the rest only.
func TestGetResumesBrokenDownload(t *testing.T) {
	content := randomBytes(1 << 20)
	var logged []string
	var mu sync.Mutex
	o := quickRetry()
	o.Logf = func(format string, args ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	s, br, _ := breakingS3(t, content, o)
	br.takeRanges()
	br.breaks = []int{300 << 10, 200 << 10}

	rc, err := s.Get(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading: %v after %d bytes", err, len(got))
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, not the %d stored", len(got), len(content))
	}
	ranges := br.takeRanges()
	if len(ranges) != 3 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", 300<<10) || ranges[2] != fmt.Sprintf("bytes=%d-", 500<<10) {
		t.Errorf("GETs asked for %q, want the whole object, then the rest after each break", ranges)
	}
	if len(logged) != 2 || !strings.Contains(logged[0], "resuming") {
		t.Errorf("logged %q, want a notice for each break", logged)
	}
}

// TestGetRangeResumes: a range resumes within the range.
func TestGetRangeResumes(t *testing.T) {
	content := randomBytes(1 << 20)
	s, br, _ := breakingS3(t, content, quickRetry())
	br.takeRanges()
	br.breaks = []int{100 << 10}
	const off, n = 12345, 600 << 10
	rc, err := s.GetRange(t.Context(), "obj", off, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading: %v after %d bytes", err, len(got))
	}
	if !bytes.Equal(got, content[off:off+n]) {
		t.Fatalf("read %d bytes, not the %d of the range", len(got), n)
	}
	want := []string{fmt.Sprintf("bytes=%d-%d", off, off+n-1), fmt.Sprintf("bytes=%d-%d", off+100<<10, off+n-1)}
	if ranges := br.takeRanges(); len(ranges) != 2 || ranges[0] != want[0] || ranges[1] != want[1] {
		t.Errorf("GETs asked for %q, want %q", ranges, want)
	}
}

// TestGetResumesAfterStall: a body that stops flowing fails the read
// after the I/O timeout (a StallError), and the download resumes.
func TestGetResumesAfterStall(t *testing.T) {
	content := randomBytes(1 << 20)
	o := quickRetry()
	o.IOTimeout = 300 * time.Millisecond
	s, br, _ := breakingS3(t, content, o)
	br.stall = true
	br.breaks = []int{400 << 10}
	rc, err := s.Get(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading: %v after %d bytes", err, len(got))
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, not the %d stored", len(got), len(content))
	}
}

// TestGetResumeRefusesChangedObject: when the object is replaced between
// the break and the resumption, the stream fails instead of splicing two
// versions.
func TestGetResumeRefusesChangedObject(t *testing.T) {
	content := randomBytes(1 << 20)
	s, br, backend := breakingS3(t, content, quickRetry())
	br.breaks = []int{300 << 10}
	br.before = func() {
		other := bytes.Repeat([]byte("n"), len(content))
		if _, err := backend.PutObject("gbc-test", "obj", map[string]string{}, bytes.NewReader(other), int64(len(other)), nil); err != nil {
			t.Error(err)
		}
	}
	rc, err := s.Get(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, cloud.ErrObjectChanged) {
		t.Fatalf("reading: err = %v after %d bytes, want ErrObjectChanged", err, len(got))
	}
	t.Logf("as expected: %v", err)
	if errors.Is(err, cloud.ErrTransient) {
		t.Errorf("ErrObjectChanged is classified transient: %v", err)
	}
	if !strings.Contains(err.Error(), "s3://gbc-test/obj") {
		t.Errorf("error %q does not name the object", err)
	}
	if !bytes.Equal(got, content[:len(got)]) {
		t.Error("the stream delivered bytes of the new version")
	}
}
