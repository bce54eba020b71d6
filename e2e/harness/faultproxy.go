package harness

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy between gbc and a store's server that injects
// the faults of a real network on demand: latency, a connection reset in
// the middle of an upload, a stall (bytes accepted, none forwarded), and a
// slow trickle. It is in-process and knows nothing of HTTP, so it serves
// every provider alike.
type FaultProxy struct {
	// Addr is host:port to point the client at.
	Addr string

	target string
	ln     net.Listener
	mode   atomic.Pointer[Fault]
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	stop   chan struct{} // closed when the test ends
}

// Fault is what the proxy does to the traffic.
type Fault struct {
	// Latency delays every chunk forwarded, in both directions.
	Latency time.Duration
	// ResetAfter closes each new upstream connection with a reset once
	// this many bytes went from client to server on it, for the first
	// Resets connections (0: none).
	ResetAfter int64
	Resets     *atomic.Int64
	// Stall: forward nothing at all, keeping the connections open.
	Stall bool
	// Trickle limits each direction of each connection to this many bytes
	// per second (0: no limit).
	Trickle int64
}

// StartFaultProxy proxies to the server at target (host:port) until the
// test ends.
func StartFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}, stop: make(chan struct{})}
	p.mode.Store(&Fault{})
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Set changes the fault for the traffic from now on.
func (p *FaultProxy) Set(f Fault) { p.mode.Store(&f) }

// URL is endpoint with its host replaced by the proxy's.
func (p *FaultProxy) URL(t testing.TB, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr
	return u.String()
}

func (p *FaultProxy) close() {
	close(p.stop)
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *FaultProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *FaultProxy) serve(client net.Conn) {
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(upstream, true)
	defer func() {
		p.track(client, false)
		p.track(upstream, false)
		client.Close()
		upstream.Close()
	}()
	f := p.mode.Load()
	resetAt := int64(-1)
	if f.ResetAfter > 0 && f.Resets != nil && f.Resets.Add(-1) >= 0 {
		resetAt = f.ResetAfter
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(upstream, client, resetAt); done <- struct{}{} }()
	go func() { p.pipe(client, upstream, -1); done <- struct{}{} }()
	<-done
}

// pipe copies src to dst under the current fault; resetAt, when not
// negative, resets both connections after that many bytes.
func (p *FaultProxy) pipe(dst, src net.Conn, resetAt int64) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		f := p.mode.Load()
		chunk := buf
		if f.Trickle > 0 {
			chunk = buf[:max(1, min(int64(len(buf)), f.Trickle/10))]
		}
		m, err := src.Read(chunk)
		for m > 0 && p.mode.Load().Stall {
			time.Sleep(50 * time.Millisecond) // hold the bytes, forward nothing
			if p.closed() {
				return
			}
		}
		if m > 0 {
			if resetAt >= 0 && n+int64(m) > resetAt {
				for _, c := range []net.Conn{dst, src} {
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0) // close with RST, not FIN
					}
					c.Close()
				}
				return
			}
			if f.Latency > 0 {
				time.Sleep(f.Latency)
			}
			if f.Trickle > 0 {
				time.Sleep(time.Duration(int64(m) * int64(time.Second) / f.Trickle))
			}
			if _, werr := dst.Write(chunk[:m]); werr != nil {
				return
			}
			n += int64(m)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

func (p *FaultProxy) closed() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}
