package stall

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

// Client returns the client every cloud provider sends its requests
// through: the standard transport's pooling and proxies, with deadlines on
// dialing and TLS, and a stall watchdog on every request.
func Client(ioTimeout time.Duration) *http.Client {
	return Watched(http.DefaultTransport.(*http.Transport).Clone(), ioTimeout)
}

// Watched is Client over a transport the SDK configured itself
// (the AWS SDK's carries AWS_CA_BUNDLE's certificates, for one), which is
// changed in place.
func Watched(base *http.Transport, ioTimeout time.Duration) *http.Client {
	if ioTimeout <= 0 {
		ioTimeout = cloud.DefaultIOTimeout
	}
	base.DialContext = (&net.Dialer{Timeout: ioTimeout, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = ioTimeout
	base.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: &stallTransport{base: base, timeout: ioTimeout}}
}

// stallTransport fails a request that waits on the network for longer
// than timeout without progress. A plain deadline cannot do this: an
// upload of a 5 GiB part rightly takes minutes, while a stalled store
// sends nothing at all. So the watchdog is re-armed by every byte that
// moves and paused while the caller, not the network, holds things up:
//
//   - while the transport reads the request body (the producer's time, not
//     the store's);
//   - between reads of the response body (the consumer may be writing to a
//     slow disk, or waiting for a buffer of its pipeline).
//
// What remains is exactly the time spent waiting for the store: writing
// the body, waiting for the response headers, and inside each read of
// the response body.
type stallTransport struct {
	base    http.RoundTripper
	timeout time.Duration
}

// watchdog cancels a request's context once armed for timeout without
// being re-armed or paused.
type watchdog struct {
	timer   *time.Timer
	timeout time.Duration
	fired   atomic.Bool
	mu      sync.Mutex
	stopped bool
	// answered: the response headers came; from then on only reads of
	// the response body arm the countdown, not a request body the
	// transport may still be draining.
	answered bool
}

func newWatchdog(timeout time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{timeout: timeout}
	w.timer = time.AfterFunc(timeout, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

// arm (re)starts the countdown: the request now waits on the network.
func (w *watchdog) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.timer.Reset(w.timeout)
	}
}

// armRequest is arm for the request body's side, for a countdown of d,
// which stops counting once the response has come.
func (w *watchdog) armRequest(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped && !w.answered {
		w.timer.Reset(d)
	}
}

// pauseRequest is pause for the request body's side.
func (w *watchdog) pauseRequest() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.answered {
		w.timer.Stop()
	}
}

// answer pauses the countdown when the response headers arrive.
func (w *watchdog) answer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.answered = true
	w.timer.Stop()
}

// pause stops the countdown: the caller, not the store, is busy.
func (w *watchdog) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Stop()
}

// stop ends the watchdog for good.
func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := newWatchdog(t.timeout, cancel)
	stallErr := func(err error) error {
		if w.fired.Load() {
			return &cloud.StallError{After: t.timeout, Method: req.Method, Host: req.URL.Host}
		}
		return err
	}
	out := req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = &requestBody{ReadCloser: req.Body, w: w}
	}
	if req.GetBody != nil {
		out.GetBody = func() (io.ReadCloser, error) {
			b, err := req.GetBody()
			if err != nil || b == nil || b == http.NoBody {
				return b, err
			}
			return &requestBody{ReadCloser: b, w: w}, nil
		}
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		w.stop()
		cancel()
		return nil, stallErr(err)
	}
	w.answer()
	resp.Body = &responseBody{ReadCloser: resp.Body, w: w, cancel: cancel, errOf: stallErr}
	return resp, nil
}

// requestBody pauses the watchdog while the transport reads the body from
// its producer.
type requestBody struct {
	io.ReadCloser
	w *watchdog
	n int64
}

// drainRate is the slowest link the I/O timeout allows for without a
// false alarm once a body is written: the kernel's send buffer (up to a
// few MiB) still has to reach the store before it can answer, and no byte
// of that is seen here. Bodies get that drain time on top of the timeout.
const (
	drainRate   = 256 << 10 // bytes per second
	maxSendBuf  = 4 << 20
	drainPerSec = int64(time.Second) / drainRate
)

func (b *requestBody) Read(p []byte) (int, error) {
	b.w.pauseRequest()
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.w.armRequest(b.w.timeout + time.Duration(min(b.n, maxSendBuf)*drainPerSec))
	} else {
		b.w.armRequest(b.w.timeout)
	}
	return n, err
}

// responseBody arms the watchdog only while a read waits for the store.
type responseBody struct {
	io.ReadCloser
	w      *watchdog
	cancel context.CancelFunc
	errOf  func(error) error
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.w.arm()
	n, err := b.ReadCloser.Read(p)
	b.w.pause()
	if err != nil && err != io.EOF {
		err = b.errOf(err)
	}
	return n, err
}

func (b *responseBody) Close() error {
	b.w.stop()
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
