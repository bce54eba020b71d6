package stall

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

const testIOTimeout = 300 * time.Millisecond

// TestStallNoAnswer: a server that takes the request and never answers
// fails the request after the I/O timeout, with a retryable StallError.
func TestStallNoAnswer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)

	start := time.Now()
	resp, err := Client(testIOTimeout).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers: want an error")
	}
	if d := time.Since(start); d > 5*testIOTimeout {
		t.Errorf("gave up after %v, want about %v", d, testIOTimeout)
	}
	var se *cloud.StallError
	if !errors.As(err, &se) {
		t.Fatalf("error %v: want a StallError", err)
	}
	if !errors.Is(cloud.NewError("get", srv.URL, err), cloud.ErrTransient) {
		t.Errorf("a stall is not classified transient: %v", err)
	}
}

// TestStallMidBody: a response whose body stops flowing fails the read.
func TestStallMidBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first bytes"))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)

	resp, err := Client(testIOTimeout).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	var se *cloud.StallError
	if !errors.As(err, &se) {
		t.Fatalf("reading a stalled body: got %v, want a StallError", err)
	}
}

// TestStallUploadNotRead: a server that accepts the connection but never
// reads an upload fails the request, although no answer is due until the
// body is sent.
func TestStallUploadNotRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never read
		}
	}()
	body := bytes.NewReader(make([]byte, 64<<20)) // far more than the socket buffers
	start := time.Now()
	resp, err := Client(testIOTimeout).Post("http://"+ln.Addr().String()+"/x", "application/octet-stream", body)
	if err == nil {
		resp.Body.Close()
		t.Fatal("an upload nobody reads: want an error")
	}
	if d := time.Since(start); d > 10*testIOTimeout {
		t.Errorf("gave up after %v, want about %v", d, testIOTimeout)
	}
	var se *cloud.StallError
	if !errors.As(err, &se) {
		t.Fatalf("error %v: want a StallError", err)
	}
}

// TestStallSlowButMoving: a trickle slower than the timeout in total, but
// with bytes moving more often than it, is not a stall; nor is a consumer
// that pauses longer than the timeout between reads, nor a producer that
// takes longer than it to hand over the request body.
func TestStallSlowButMoving(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			t.Errorf("server reading the body: %v", err)
		}
		for range 8 {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(testIOTimeout / 3)
		}
	}))
	defer srv.Close()

	slowBody := &slowReader{r: strings.NewReader("payload"), delay: 2 * testIOTimeout}
	req, err := http.NewRequest(http.MethodPut, srv.URL, slowBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Client(testIOTimeout).Do(req)
	if err != nil {
		t.Fatalf("slow producer: %v", err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1)
	var got []byte
	for {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("slow but moving body, slow consumer: %v", err)
		}
		time.Sleep(2 * testIOTimeout) // the consumer is busy elsewhere
	}
	if string(got) != "xxxxxxxx" {
		t.Errorf("body %q, want 8 x", got)
	}
}

// slowReader waits before each read, like a producer that compresses.
type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.r.Read(p)
}
