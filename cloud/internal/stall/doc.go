// Package stall is the HTTP client every SDK provider sends its requests
// through: the standard transport with deadlines on dialing and TLS, and a
// watchdog that fails a request waiting on the store for the I/O timeout
// without a byte moving (cloud.StallError). It lives outside package cloud
// so that a binary that links no SDK provider does not link net/http.
package stall
