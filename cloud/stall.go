package cloud

import (
	"fmt"
	"time"
)

// DefaultIOTimeout is how long one HTTP request may wait on the network
// without a byte moving before it is abandoned (see Options.IOTimeout). It
// is pgBackRest's io-timeout idea: a store that accepts connections but
// never answers (a stopped process, a black-holed route, a hung proxy)
// must fail the attempt, so that the retry wrapper's deadline can end the
// operation. 30 s is far above any healthy round trip, including an S3
// CompleteMultipartUpload, which answers its headers at once.
const DefaultIOTimeout = 30 * time.Second

// StallError reports a request that made no progress for the I/O timeout
// (the watchdog of every SDK provider's HTTP client, in internal/stall).
// It is a net.Error whose Timeout() is true, so every SDK (and this
// package's classification) treats it as a retryable network failure.
type StallError struct {
	After  time.Duration // the I/O timeout that passed
	Method string
	Host   string
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s %s: no response for %v (the store is stalled or unreachable; --io-timeout sets this limit)", e.Method, e.Host, e.After)
}

// Timeout is true: a stall is a timeout.
func (e *StallError) Timeout() bool { return true }

// Temporary is true: another attempt may meet a healthy server.
func (e *StallError) Temporary() bool { return true }
