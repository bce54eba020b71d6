package cloud

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"reflect"
	"strings"
	"syscall"
)

// ErrNoBucket refines ErrNotFound: the bucket, container or root directory
// itself is missing, not just the object. Errors that carry it also carry
// ErrNotFound, so errors.Is(err, ErrNotFound) holds for both. It matters to
// callers for whom "object missing" is a normal answer (gbc-wal-restore's
// "no such segment"): a missing bucket is a misconfiguration, never the end
// of the WAL. Get and List report it reliably; Stat cannot on S3, whose
// HEAD responses carry no error code.
var ErrNoBucket = errors.New("bucket does not exist")

// Error is the error every Store in this package returns for a failed
// operation. It names the operation and the object, and carries both the
// classification (Kind: ErrNotFound, ErrExists, ErrPermission, ErrTransient,
// or nil when the failure fits none of them) and the provider's own error,
// so that errors.Is works for the sentinels and errors.As still reaches the
// SDK's error types.
//
// Its message is one short line: the operation and object, the class, the
// provider's error code and HTTP status, and what to do. The SDK's own
// text (request ids, the response body, Azure's message twice over, often
// 600 characters) is Detail, for those who ask for it (-v).
type Error struct {
	Op   string // "put", "get", "stat", "list", "delete", or a sweep's ("sweep", "list uploads", "abort upload")
	URL  string // the object or prefix, e.g. "s3://bucket/prefix/key"
	Kind error  // the classification sentinel, or nil
	Err  error  // the provider's error
	// noBucket marks a missing bucket/container/root on top of Kind.
	noBucket bool
}

func (e *Error) Error() string {
	msg := e.Op + " " + e.URL + ": "
	if e.Kind == nil {
		// Unclassified: the provider's words are all there is to go on.
		if e.Err != nil {
			msg += summary(e.Err, true)
		}
		return msg
	}
	if e.noBucket {
		msg += containerNoun(e.URL) + " not found"
	} else {
		msg += e.Kind.Error()
	}
	if s := summary(e.Err, false); s != "" {
		msg += " (" + s + ")"
	}
	if h := e.hint(); h != "" {
		msg += ": " + h
	}
	return msg
}

// Detail is the provider's full error text when Error shortened it, or "".
func (e *Error) Detail() string {
	if e.Err == nil {
		return ""
	}
	full := e.Err.Error()
	if full == summary(e.Err, e.Kind == nil) {
		return ""
	}
	return full
}

// hint says what to do about a failure of this class, when the class alone
// tells; a missing object or an existing one means something different to
// each caller, which says it.
func (e *Error) hint() string {
	scheme, _, _ := strings.Cut(e.URL, "://")
	switch {
	case e.noBucket:
		return "create it, or fix the store URL"
	case e.Kind == ErrPermission:
		switch scheme {
		case "s3":
			return "check the credentials in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) and their permissions on the bucket"
		case "gs":
			return "check the credentials in the environment (GOOGLE_APPLICATION_CREDENTIALS, or the instance's service account) and their permissions on the bucket"
		case "azblob":
			return "check the credentials in the environment (AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, or the managed identity) and their permissions on the container"
		case "file":
			return "check that this OS user may read and write the directory"
		}
		return "check the credentials in the environment and their permissions"
	case e.Kind == ErrTransient:
		return "the store is unreachable or failing: check that it is up and reachable from here (and --endpoint-url, if given)"
	}
	return ""
}

// containerNoun is what the provider of u calls the thing at its root.
func containerNoun(u string) string {
	switch scheme, _, _ := strings.Cut(u, "://"); scheme {
	case "azblob":
		return "container"
	case "file":
		return "directory"
	}
	return "bucket"
}

// summary renders a provider error in a few words: its error code and
// HTTP status, or the network failure under the SDK's wrappers. With
// message, the S3 API's one-sentence message is kept too, for errors no
// class explains. Errors of no SDK (ours, the file system's) are short
// already and kept whole.
func summary(err error, message bool) string {
	if err == nil {
		return ""
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return "no usable credentials"
	}
	for _, p := range providers() {
		if p.Summary == nil {
			continue
		}
		if sum, ok := p.Summary(err, message); ok {
			return sum
		}
	}
	var stall *StallError
	if errors.As(err, &stall) {
		return stall.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	// Under the SDKs' wrappers, what the HTTP client said (a TLS failure,
	// a malformed answer), without the request's URL.
	var urlErr *url.Error
	if errors.As(err, &urlErr) && urlErr.Err != nil {
		return urlErr.Err.Error()
	}
	return err.Error()
}

// Unwrap exposes the sentinel(s) and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.noBucket {
		errs = append(errs, ErrNoBucket)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// NewError classifies err at the edge of a provider and wraps it with the
// operation and object: the one way providers (this package's and the SDK
// providers registered with Register) make their errors, so that callers
// never parse an SDK's messages. An err that is already an *Error (from a
// nested call) is returned unchanged so that messages do not repeat
// themselves.
func NewError(op, url string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	kind, noBucket := classify(err)
	return &Error{Op: op, URL: url, Kind: kind, Err: peelGocloud(err), noBucket: noBucket}
}

// peelGocloud drops gocloud's own wrapper ("blob (key ...) (code=...): ")
// from the message: our Error already names the key, and the provider's
// message underneath is what an operator needs. The wrapper's type lives in
// an internal package, hence the name test; if it ever changes we merely
// keep the longer message.
func peelGocloud(err error) error {
	if reflect.TypeOf(err).String() != "*gcerr.Error" {
		return err
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := u.Unwrap(); len(errs) > 0 && errs[0] != nil {
			return errs[0]
		}
	}
	return err
}

// CredentialsError marks a failure to obtain credentials from an SDK's
// credential chain; providers wrap such failures in it. It is classified
// ErrPermission whatever its cause: with no credentials configured, the
// chain's last resort (an instance metadata endpoint) fails with a network
// error, which must not be retried for minutes as if the store were
// briefly unreachable.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return "no usable credentials: " + e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

// KindOf returns the sentinel (ErrNotFound, ErrExists, ErrPermission,
// ErrTransient) err already carries, if any: for a failure that is not the
// store's own, such as a Put's source, which keeps its classification.
func KindOf(err error) error {
	for _, k := range []error{ErrNotFound, ErrExists, ErrPermission, ErrTransient} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// classify maps a provider error to one of the sentinels (or nil), and
// reports whether the bucket/container itself is missing. What no
// registered provider's Classify decides is judged as a network failure or
// left unclassified.
func classify(err error) (kind error, noBucket bool) {
	if err == nil {
		return nil, false
	}
	for _, sentinel := range []error{ErrNotFound, ErrExists, ErrPermission, ErrTransient} {
		if errors.Is(err, sentinel) {
			return sentinel, errors.Is(err, ErrNoBucket)
		}
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return ErrPermission, false
	}
	// The caller gave up: neither retry nor report a store failure.
	if errors.Is(err, context.Canceled) {
		return nil, false
	}

	// Each provider knows its SDK's error types.
	for _, p := range providers() {
		if p.Classify == nil {
			continue
		}
		if c, ok := p.Classify(err); ok {
			return c.Kind, c.NoBucket
		}
	}

	// The network, whichever SDK saw it.
	return classifyNetwork(err), false
}

// classifyNetwork reports ErrTransient for failures of the connection
// itself, which a later attempt may not meet, and nil otherwise.
func classifyNetwork(err error) error {
	// A host name that does not resolve is a typo in --endpoint-url far
	// more often than a passing DNS outage; failing fast says so at once.
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return nil
		}
		return ErrTransient
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, net.ErrClosed) {
		return ErrTransient
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ErrTransient
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return ErrTransient
	}
	return nil
}
