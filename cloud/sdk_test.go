package cloud_test

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// recorded is one request seen by a recorder.
type recorded struct {
	method string
	path   string
	query  string
	header http.Header
	body   []byte // only for small bodies (not uploads)
}

// recorder sits in front of a handler and keeps every request.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []recorded
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rr := recorded{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone()}
	if r.Method == http.MethodPost && r.ContentLength >= 0 && r.ContentLength < 1<<20 {
		rr.body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(rr.body))
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, rr)
	rec.mu.Unlock()
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) take() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.reqs
	rec.reqs = nil
	return out
}

// recordedS3 is gofakes3 with one bucket behind a recorder.
func recordedS3(t *testing.T, bucket string) (*recorder, string) {
	t.Helper()
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test-access-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: gofakes3.New(replaceMetadata{backend}).Server()}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// TestS3Requests checks what goes over the wire: SSE headers on every
// upload, no CRC checksum headers (S3-compatible stores choke on them),
// parallel parts for large objects, Content-MD5 on DeleteObjects.
func TestS3Requests(t *testing.T) {
	rec, endpoint := recordedS3(t, "bkt")
	s, err := cloud.Open(t.Context(), "s3://bkt/pre", cloud.Options{
		EndpointURL: endpoint, SSE: "aws:kms", SSEKMSKeyID: "my-key", PartSize: 5 << 20, Concurrency: 2, RetryTimeout: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()

	checkUpload := func(r recorded) {
		t.Helper()
		if got := r.header.Get("X-Amz-Server-Side-Encryption"); got != "aws:kms" {
			t.Errorf("%s %s: SSE header %q, want aws:kms", r.method, r.query, got)
		}
		if got := r.header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); got != "my-key" {
			t.Errorf("%s %s: KMS key header %q, want my-key", r.method, r.query, got)
		}
	}
	noChecksums := func(r recorded) {
		t.Helper()
		for h := range r.header {
			if strings.HasPrefix(strings.ToLower(h), "x-amz-checksum-") || strings.EqualFold(h, "X-Amz-Sdk-Checksum-Algorithm") {
				t.Errorf("%s %s carries %s", r.method, r.query, h)
			}
		}
		if strings.Contains(r.header.Get("Content-Encoding"), "aws-chunked") {
			t.Errorf("%s %s uses aws-chunked encoding", r.method, r.query)
		}
	}

	// A small object: one PutObject.
	if err := s.Put(ctx, "small", cloud.BytesBody([]byte("hello")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs := rec.take()
	if len(reqs) != 1 || reqs[0].method != http.MethodPut || reqs[0].path != "/bkt/pre/small" {
		t.Fatalf("small Put sent %+v, want one PUT /bkt/pre/small", reqs)
	}
	checkUpload(reqs[0])
	noChecksums(reqs[0])

	// 12 MiB of unknown size in 5 MiB parts: create, 3 parts, complete.
	big := cloud.OneShotBody(bytes.NewReader(make([]byte, 12<<20)))
	if err := s.Put(ctx, "big", big, cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var creates, parts, completes int
	for _, r := range rec.take() {
		noChecksums(r)
		switch {
		case r.method == http.MethodPost && strings.Contains(r.query, "uploads"):
			creates++
			checkUpload(r)
		case r.method == http.MethodPut && strings.Contains(r.query, "partNumber"):
			parts++
		case r.method == http.MethodPost && strings.Contains(r.query, "uploadId"):
			completes++
		}
	}
	if creates != 1 || parts != 3 || completes != 1 {
		t.Errorf("12 MiB Put: %d creates, %d parts, %d completes; want 1, 3, 1", creates, parts, completes)
	}

	// A size hint raises the part size so the object fits S3's 10,000
	// parts: 60 GiB needs 7 MiB parts, so 6 MiB goes up in one request.
	if err := s.Put(ctx, "hinted", cloud.OneShotBody(bytes.NewReader(make([]byte, 6<<20))), cloud.PutOptions{SizeHint: 60 << 30}); err != nil {
		t.Fatal(err)
	}
	if reqs := rec.take(); len(reqs) != 1 || reqs[0].method != http.MethodPut || strings.Contains(reqs[0].query, "upload") {
		t.Errorf("6 MiB Put with a 60 GiB hint sent %d requests, want one PutObject", len(reqs))
	}

	// Several keys: one DeleteObjects with a correct Content-MD5.
	if err := s.Delete(ctx, "small", "big", "hinted", "never-there"); err != nil {
		t.Fatal(err)
	}
	reqs = rec.take()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || !strings.Contains(reqs[0].query, "delete") {
		t.Fatalf("Delete of 4 keys sent %d requests, want one POST ?delete", len(reqs))
	}
	sum := md5.Sum(reqs[0].body)
	if got, want := reqs[0].header.Get("Content-Md5"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("DeleteObjects Content-MD5 = %q, want %q", got, want)
	}
	if !bytes.Contains(reqs[0].body, []byte("<Key>pre/never-there</Key>")) {
		t.Errorf("DeleteObjects body lacks the prefixed key: %s", reqs[0].body)
	}
}

// TestS3DualLayerSSE checks that aws:kms:dsse, which Options accept like
// the other modes, reaches S3 unchanged, with its key, on a single-request
// upload and on a multipart one.
func TestS3DualLayerSSE(t *testing.T) {
	rec, endpoint := recordedS3(t, "bkt")
	s, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{
		EndpointURL: endpoint, SSE: "aws:kms:dsse", SSEKMSKeyID: "dsse-key", PartSize: 5 << 20, RetryTimeout: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(t.Context(), "small", cloud.BytesBody([]byte("hello")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "big", cloud.OneShotBody(bytes.NewReader(make([]byte, 11<<20))), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var writes int
	for _, r := range rec.take() {
		if r.method == http.MethodPut && !strings.Contains(r.query, "partNumber") || r.method == http.MethodPost && strings.Contains(r.query, "uploads") {
			writes++
			if got := r.header.Get("X-Amz-Server-Side-Encryption"); got != "aws:kms:dsse" {
				t.Errorf("%s %s %s: SSE header %q, want aws:kms:dsse", r.method, r.path, r.query, got)
			}
			if got := r.header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); got != "dsse-key" {
				t.Errorf("%s %s %s: KMS key header %q, want dsse-key", r.method, r.path, r.query, got)
			}
		}
	}
	if writes != 2 {
		t.Errorf("%d PutObject or CreateMultipartUpload requests, want 2", writes)
	}
}

// TestS3AbortsMultipart checks that a failed or cancelled multipart
// upload is aborted, so no parts are left behind.
func TestS3AbortsMultipart(t *testing.T) {
	rec, endpoint := recordedS3(t, "bkt")
	s, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{EndpointURL: endpoint, PartSize: 5 << 20, RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := cloud.OneShotBody(io.MultiReader(bytes.NewReader(make([]byte, 11<<20)), failingSource{}))
	if err := s.Put(t.Context(), "k", src, cloud.PutOptions{}); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	aborts := 0
	for _, r := range rec.take() {
		if r.method == http.MethodDelete && strings.Contains(r.query, "uploadId") {
			aborts++
		}
	}
	if aborts != 1 {
		t.Errorf("%d AbortMultipartUpload requests, want 1", aborts)
	}
}

func TestS3MissingBucket(t *testing.T) {
	endpoint := fakeS3(t, "exists")
	s, err := cloud.Open(t.Context(), "s3://missing/p", cloud.Options{EndpointURL: endpoint, RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Get(t.Context(), "k")
	if !errors.Is(err, cloud.ErrNotFound) || !errors.Is(err, cloud.ErrNoBucket) {
		t.Errorf("Get in a missing bucket: %v, want ErrNotFound and ErrNoBucket", err)
	}
	err = s.List(t.Context(), "", func(cloud.Attrs) error { return nil })
	if !errors.Is(err, cloud.ErrNoBucket) {
		t.Errorf("List of a missing bucket: %v, want ErrNoBucket", err)
	}
	err = s.Put(t.Context(), "k", cloud.BytesBody([]byte("x")), cloud.PutOptions{})
	if !errors.Is(err, cloud.ErrNoBucket) {
		t.Errorf("Put into a missing bucket: %v, want ErrNoBucket", err)
	}
}

func TestS3NoCredentials(t *testing.T) {
	isolateAWS(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	s, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{EndpointURL: srv.URL, RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Stat(t.Context(), "k")
	if !errors.Is(err, cloud.ErrPermission) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("Stat without credentials: %v, want ErrPermission with a hint", err)
	}
}

func TestS3RegionRequired(t *testing.T) {
	isolateAWS(t)
	_, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{})
	if err == nil || !strings.Contains(err.Error(), "--s3-region") {
		t.Errorf("Open without a region: %v, want a hint about --s3-region", err)
	}
	if _, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{Region: "eu-west-3"}); err != nil {
		t.Errorf("Open with a region: %v", err)
	}
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{EndpointURL: "http://" + addr, RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Stat(t.Context(), "k"); !errors.Is(err, cloud.ErrTransient) {
		t.Errorf("Stat against a closed port: %v, want ErrTransient", err)
	}
}

// s3Error answers every request with an S3 error document.
func s3Error(status int, code string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>told by the test</Message></Error>`, code)
	})
}

func TestS3ErrorClassification(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	for _, tc := range []struct {
		status int
		code   string
		want   error
	}{
		{403, "AccessDenied", cloud.ErrPermission},
		{403, "InvalidAccessKeyId", cloud.ErrPermission},
		{404, "NoSuchKey", cloud.ErrNotFound},
		{412, "PreconditionFailed", cloud.ErrExists},
		{503, "SlowDown", cloud.ErrTransient},
		{400, "InvalidArgument", nil},
	} {
		srv := httptest.NewServer(s3Error(tc.status, tc.code))
		s, err := cloud.Open(t.Context(), "s3://bkt", cloud.Options{EndpointURL: srv.URL, RetryTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Get(t.Context(), "k")
		for _, k := range []error{cloud.ErrNotFound, cloud.ErrExists, cloud.ErrPermission, cloud.ErrTransient} {
			if errors.Is(err, k) != (k == tc.want) {
				t.Errorf("%d %s: Get = %v; errors.Is(%v) = %v", tc.status, tc.code, err, k, !(k == tc.want))
			}
		}
		// The message names the operation, the object and the provider's
		// code; the provider's own message is the Detail, for -v (and in
		// the message when no class explains the error).
		var ce *cloud.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.code) || !strings.Contains(err.Error(), "get s3://bkt/k") {
			t.Errorf("%d %s: message %q lacks the operation, object or provider's code", tc.status, tc.code, err)
		} else if !strings.Contains(ce.Detail(), "told by the test") || tc.want == nil && !strings.Contains(err.Error(), "told by the test") {
			t.Errorf("%d %s: message %q, detail %q: the provider's message is lost", tc.status, tc.code, err, ce.Detail())
		}
		s.Close()
		srv.Close()
	}
}

func TestGCSErrorClassification(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	for _, tc := range []struct {
		status int
		want   error
	}{
		{401, cloud.ErrPermission},
		{403, cloud.ErrPermission}, // gocloud alone would call this NotFound
		{404, cloud.ErrNotFound},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":"told by the test"}}`, tc.status)
		}))
		s, err := cloud.Open(t.Context(), "gs://bkt/p", cloud.Options{EndpointURL: srv.URL, RetryTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Stat(t.Context(), "k")
		if !errors.Is(err, tc.want) {
			t.Errorf("GCS %d: Stat = %v, want %v", tc.status, err, tc.want)
		}
		s.Close()
		srv.Close()
	}
}

func TestAzureErrorClassification(t *testing.T) {
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGEBLOB_CONNECTIONSTRING", "")
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
	t.Setenv("AZURE_STORAGE_KEY", base64.StdEncoding.EncodeToString([]byte("not a real key")))
	for _, tc := range []struct {
		status   int
		code     string
		want     error
		noBucket bool
	}{
		{403, "AuthenticationFailed", cloud.ErrPermission, false},
		{404, "BlobNotFound", cloud.ErrNotFound, false},
		{404, "ContainerNotFound", cloud.ErrNotFound, true},
	} {
		var path string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			path = r.URL.Path
			w.Header().Set("x-ms-error-code", tc.code)
			w.WriteHeader(tc.status)
		}))
		s, err := cloud.Open(t.Context(), "azblob://ctr/p", cloud.Options{EndpointURL: srv.URL, RetryTimeout: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Stat(t.Context(), "k")
		if !errors.Is(err, tc.want) || errors.Is(err, cloud.ErrNoBucket) != tc.noBucket {
			t.Errorf("Azure %d %s: Stat = %v, want %v (no bucket: %v)", tc.status, tc.code, err, tc.want, tc.noBucket)
		}
		// Azurite addresses the account in the path.
		if path != "/devstoreaccount1/ctr/p/k" {
			t.Errorf("request path %q, want /devstoreaccount1/ctr/p/k", path)
		}
		s.Close()
		srv.Close()
	}
}

// TestOpenIsOffline opens every provider with no server anywhere: Open
// must not need the network (the first operation does).
func TestOpenIsOffline(t *testing.T) {
	isolateAWS(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT", "someaccount")
	t.Setenv("AZURE_STORAGE_KEY", "")
	for _, u := range []string{"s3://bkt/p", "gs://bkt/p", "azblob://ctr/p", "file:///nonexistent/dir"} {
		o := cloud.Options{}
		if strings.HasPrefix(u, "s3:") {
			o.Region = "eu-west-1"
		}
		s, err := cloud.Open(t.Context(), u, o)
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close(%q): %v", u, err)
		}
	}
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")
	if _, err := cloud.Open(t.Context(), "azblob://ctr", cloud.Options{}); err == nil || !strings.Contains(err.Error(), "AZURE_STORAGE_ACCOUNT") {
		t.Errorf("Open azblob without an account: %v, want a hint", err)
	}
}

// TestAzureRequests checks the encryption scope and metadata on the wire.
func TestAzureRequests(t *testing.T) {
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey="+
		base64.StdEncoding.EncodeToString([]byte("not a real key"))+";BlobEndpoint=http://192.0.2.1:1/acct;")
	var (
		mu   sync.Mutex
		puts []recorded
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		puts = append(puts, recorded{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone()})
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"0x8D0000000000000"`)
		w.Header().Set("Last-Modified", "Thu, 26 Nov 2026 06:00:00 GMT")
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	// The endpoint overrides the connection string's BlobEndpoint (an
	// unroutable address here), keeping its account and key.
	s, err := cloud.Open(t.Context(), "azblob://ctr/p", cloud.Options{EndpointURL: srv.URL, EncryptionScope: "my-scope", RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(t.Context(), "k", cloud.BytesBody([]byte("hello")), cloud.PutOptions{Metadata: map[string]string{"sha256": "abc", "1st": "x"}}); err != nil {
		t.Fatal(err)
	}
	if len(puts) != 1 {
		t.Fatalf("%d requests, want one Put Blob", len(puts))
	}
	r := puts[0]
	if r.method != http.MethodPut || r.path != "/acct/ctr/p/k" {
		t.Errorf("request %s %s, want PUT /acct/ctr/p/k", r.method, r.path)
	}
	if got := r.header.Get("X-Ms-Encryption-Scope"); got != "my-scope" {
		t.Errorf("encryption scope header %q, want my-scope", got)
	}
	if got := r.header.Get("X-Ms-Meta-Sha256"); got != "abc" {
		t.Errorf("metadata header sha256 = %q", got)
	}
	// Azure metadata names must be C# identifiers: no leading digit.
	for h := range r.header {
		if name, ok := strings.CutPrefix(strings.ToLower(h), "x-ms-meta-"); ok && name[0] >= '0' && name[0] <= '9' {
			t.Errorf("metadata header %s starts with a digit", h)
		}
	}
}

// TestS3EndpointFromEnvironment checks that the SDK's own endpoint variable
// is treated like --endpoint-url: path style, no region needed.
func TestS3EndpointFromEnvironment(t *testing.T) {
	endpoint := fakeS3(t, "bkt")
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	s, err := cloud.Open(t.Context(), "s3://bkt/p", cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Put(t.Context(), "k", cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}
