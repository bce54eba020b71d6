package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"google.golang.org/api/googleapi"
)

func TestPartSizeFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		base, hint, maxParts, want int64
	}{
		{16 * mib, 0, s3MaxParts, 16 * mib},          // unknown size: the base
		{16 * mib, 1 << 30, s3MaxParts, 16 * mib},    // fits easily
		{16 * mib, 200 << 30, s3MaxParts, 23 * mib},  // 200 GiB / 9000 = 22.76 MiB, rounded up
		{16 * mib, 1 << 40, s3MaxParts, 117 * mib},   // 1 TiB
		{8 * mib, 1 << 40, azureMaxBlocks, 24 * mib}, // Azure has 50,000 blocks
		{16 * mib, 3 * mib, s3MaxParts, 5 * mib},     // small: one request, the minimum part
		{16 * mib, 8 * mib, s3MaxParts, 9 * mib},     // 8 MiB + 10%, rounded up
		{16 * mib, 15 * mib, s3MaxParts, 16 * mib},   // no smaller than base
		{2 * mib, 1 * mib, s3MaxParts, 2 * mib},      // base under the minimum stays
	} {
		got := partSizeFor(tc.base, tc.hint, tc.maxParts)
		if got != tc.want {
			t.Errorf("partSizeFor(%d, %d, %d) = %d MiB, want %d MiB", tc.base, tc.hint, tc.maxParts, got/mib, tc.want/mib)
		}
		if tc.hint > 0 && (tc.hint+got-1)/got > tc.maxParts {
			t.Errorf("partSizeFor(%d, %d): %d parts, over the limit", tc.base, tc.hint, (tc.hint+got-1)/got)
		}
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "a/b", "wals/0000000100000000/000000010000000000000003.zst", "base/20261124T214842Z/backup.json", "a.b/c-d_e", "ünï"} {
		if err := checkKey(k); err != nil {
			t.Errorf("checkKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", ".", "..", "../a", "a/..", "a/./b", ".tmp", "a/.x", "a\x00b", "a\nb", "a\\b", "\xff", "a#b", "a?b", "a%b", "a\"b", "__0x2f__", strings.Repeat("k", maxKeyBytes+1)} {
		if err := checkKey(k); !errors.Is(err, errInvalid) {
			t.Errorf("checkKey(%q) = %v, want errInvalid", k, err)
		}
	}
}

func TestCheckMetadata(t *testing.T) {
	if err := checkMetadata(map[string]string{"sha256": "abc", "0size": "12", "x": ""}); err != nil {
		t.Errorf("valid metadata refused: %v", err)
	}
	for _, md := range []map[string]string{
		{"Sha": "x"}, {"a-b": "x"}, {"a_b": "x"}, {"": "x"}, {"é": "x"},
		{"k": "line\nbreak"}, {"k": "\xff"},
		{"k": strings.Repeat("v", maxMetadataBytes)},
	} {
		if err := checkMetadata(md); !errors.Is(err, errInvalid) {
			t.Errorf("checkMetadata(%q) = %v, want errInvalid", md, err)
		}
	}
}

func TestParseStoreURL(t *testing.T) {
	for raw, want := range map[string]storeURL{
		"s3://bkt":                   {scheme: "s3", bucket: "bkt"},
		"s3://bkt/":                  {scheme: "s3", bucket: "bkt"},
		"S3://bkt/a/b/":              {scheme: "s3", bucket: "bkt", prefix: "a/b"},
		"gs://bkt/pg/prod":           {scheme: "gs", bucket: "bkt", prefix: "pg/prod"},
		"azblob://container/x":       {scheme: "azblob", bucket: "container", prefix: "x"},
		"file:///var/lib/gbc":        {scheme: "file", dir: "/var/lib/gbc"},
		"file://localhost/srv/b":     {scheme: "file", dir: "/srv/b"},
		"file:///with%20space/x%2Fy": {scheme: "file", dir: "/with space/x/y"},
	} {
		got, err := parseStoreURL(raw)
		if err != nil || got != want {
			t.Errorf("parseStoreURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for raw, why := range map[string]string{
		"":                            "empty",
		"bucket/prefix":               "no scheme",
		"/var/lib/gbc":                "no scheme",
		"http://host/x":               `unknown scheme "http"`,
		"s3:bucket":                   `missing "//"`,
		"s3://":                       "no bucket",
		"s3:///prefix":                "no bucket",
		"s3://user:secret@bkt/p":      "credentials do not belong",
		"s3://bkt/p?region=x":         "query parameters",
		"s3://bkt/p#frag":             "fragments",
		"s3://bkt:9000/p":             "--endpoint-url",
		"gs://bkt/a//b":               "bad prefix",
		"gs://bkt/../b":               "bad prefix",
		"azblob://cnt/.hidden":        "bad prefix",
		"s3://b/pg":                   "3 to 255 characters",
		"azblob://My_Container/pg":    "is not allowed",
		"gs://-bucket/pg":             "start and end with a letter or digit",
		"file://var/lib/gbc":          "file:///var/lib/gbc",
		"file:relative":               `missing "//"`,
		"s3://bkt/%zz":                "invalid URL escape",
		"ftp://host/dir":              `unknown scheme "ftp"`,
		"s3://bkt/p?":                 "query parameters",
		"azblob://cnt/prefix/\x01ctl": "invalid control character",
	} {
		_, err := parseStoreURL(raw)
		if err == nil {
			t.Errorf("parseStoreURL(%q) succeeded, want an error about %q", raw, why)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, why) || !strings.Contains(msg, AcceptedURLs) {
			t.Errorf("parseStoreURL(%q) = %q, want it to mention %q and the accepted forms", raw, msg, why)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		o      Options
		want   string // "" means valid
	}{
		{"s3", Options{SSE: "AES256"}, ""},
		{"s3", Options{SSE: "aws:kms", SSEKMSKeyID: "arn:aws:kms:x"}, ""},
		{"s3", Options{SSE: "aws:kms:dsse"}, ""},
		{"s3", Options{SSE: "aws:kms:dsse", SSEKMSKeyID: "arn:aws:kms:x"}, ""},
		{"s3", Options{SSE: "aes256"}, "want AES256 or aws:kms"},
		{"s3", Options{SSE: "aws:kms:DSSE"}, "aws:kms:dsse for dual-layer"},
		{"gs", Options{SSE: "aws:kms:dsse"}, "s3:// stores only"},
		{"s3", Options{MaxBandwidth: -1}, "bandwidth limit -1"},
		{"file", Options{MaxBandwidth: 1 << 20}, ""},
		{"s3", Options{SSEKMSKeyID: "k"}, "needs --sse aws:kms"},
		{"s3", Options{SSE: "AES256", SSEKMSKeyID: "k"}, "not AES256"},
		{"gs", Options{SSE: "AES256"}, "s3:// stores only"},
		{"s3", Options{EncryptionScope: "scope"}, "azblob:// stores only"},
		{"azblob", Options{EncryptionScope: "scope"}, ""},
		{"file", Options{EndpointURL: "http://x"}, "does not apply to file://"},
		{"s3", Options{EndpointURL: "127.0.0.1:9000"}, "want http://host:port"},
		{"s3", Options{EndpointURL: "http://127.0.0.1:9000"}, ""},
		{"s3", Options{PartSize: 1 << 20}, "at least 5 MiB"},
		{"s3", Options{PartSize: 6 << 30}, "at most 5 GiB"},
		{"s3", Options{Concurrency: -1}, "want 1 or more"},
		{"gs", Options{Region: "eu-west-1"}, ""}, // harmless, ignored
	} {
		err := tc.o.check(tc.scheme)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %+v: %v, want valid", tc.scheme, tc.o, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %+v: %v, want an error with %q", tc.scheme, tc.o, err, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	type want struct {
		kind     error
		noBucket bool
	}
	for _, tc := range []struct {
		err  error
		want want
	}{
		{&smithy.GenericAPIError{Code: "NoSuchKey"}, want{ErrNotFound, false}},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, want{ErrNotFound, true}},
		{&smithy.GenericAPIError{Code: "PreconditionFailed"}, want{ErrExists, false}},
		{&smithy.GenericAPIError{Code: "AccessDenied"}, want{ErrPermission, false}},
		{&smithy.GenericAPIError{Code: "InvalidAccessKeyId"}, want{ErrPermission, false}},
		{&smithy.GenericAPIError{Code: "SlowDown"}, want{ErrTransient, false}},
		{&smithy.GenericAPIError{Code: "InvalidArgument"}, want{nil, false}},
		{&azcore.ResponseError{ErrorCode: "BlobNotFound", StatusCode: 404}, want{ErrNotFound, false}},
		{&azcore.ResponseError{ErrorCode: "ContainerNotFound", StatusCode: 404}, want{ErrNotFound, true}},
		{&azcore.ResponseError{ErrorCode: "BlobAlreadyExists", StatusCode: 409}, want{ErrExists, false}},
		{&azcore.ResponseError{ErrorCode: "ConditionNotMet", StatusCode: 412}, want{ErrExists, false}},
		{&azcore.ResponseError{ErrorCode: "AuthorizationPermissionMismatch", StatusCode: 403}, want{ErrPermission, false}},
		{&azcore.ResponseError{ErrorCode: "ServerBusy", StatusCode: 503}, want{ErrTransient, false}},
		{&azcore.ResponseError{ErrorCode: "LeaseIdMissing", StatusCode: 409}, want{nil, false}},
		{&azcore.ResponseError{StatusCode: 502}, want{ErrTransient, false}},
		{storage.ErrObjectNotExist, want{ErrNotFound, false}},
		{storage.ErrBucketNotExist, want{ErrNotFound, true}},
		{&googleapi.Error{Code: 403}, want{ErrPermission, false}},
		{&googleapi.Error{Code: 412}, want{ErrExists, false}},
		{&googleapi.Error{Code: 429}, want{ErrTransient, false}},
		{&googleapi.Error{Code: 400}, want{nil, false}},
		{&credentialsError{errors.New("no EC2 IMDS role found: dial tcp: connection refused")}, want{ErrPermission, false}},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), want{ErrTransient, false}},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, want{ErrTransient, false}},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), want{ErrTransient, false}},
		{&net.DNSError{Err: "no such host", Name: "typo.example", IsNotFound: true}, want{nil, false}},
		{&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, want{ErrTransient, false}},
		{context.DeadlineExceeded, want{ErrTransient, false}},
		{context.Canceled, want{nil, false}},
		{errors.New("something else"), want{nil, false}},
		{fmt.Errorf("wrapped: %w", ErrPermission), want{ErrPermission, false}},
	} {
		kind, noBucket := classify(tc.err)
		if kind != tc.want.kind || noBucket != tc.want.noBucket {
			t.Errorf("classify(%T %v) = %v, %v; want %v, %v", tc.err, tc.err, kind, noBucket, tc.want.kind, tc.want.noBucket)
		}
	}
}

func TestErrorType(t *testing.T) {
	cause := &smithy.GenericAPIError{Code: "NoSuchBucket", Message: "The specified bucket does not exist"}
	err := newError("get", "s3://bkt/key", cause)
	for _, target := range []error{ErrNotFound, ErrNoBucket} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "NoSuchBucket" {
		t.Errorf("errors.As cannot reach the SDK error")
	}
	msg := err.Error()
	for _, part := range []string{"get s3://bkt/key", "bucket not found", "NoSuchBucket"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}
	// The provider's own words are kept for -v.
	if d := err.(*Error).Detail(); !strings.Contains(d, "The specified bucket does not exist") {
		t.Errorf("Detail %q lacks the provider's message", d)
	}
	// Wrapping again (a nested store) keeps the first wrapping.
	if again := newError("get", "s3://bkt/other", err); again != err {
		t.Errorf("newError re-wrapped an *Error: %v", again)
	}
}

// The sweep recognises exactly the names createTemp makes, whatever
// os.CreateTemp's random part looks like in this Go release.
func TestTempTarget(t *testing.T) {
	s := newFileStore(t.TempDir())
	f, err := s.createTemp(s.root, "000000010000000000000001.zst")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	name := f.Name()[strings.LastIndexByte(f.Name(), '/')+1:]
	if got, ok := tempTarget(name); !ok || got != "000000010000000000000001.zst" {
		t.Errorf("tempTarget(%q) = %q, %v", name, got, ok)
	}
	for _, n := range []string{".x", ".tmp-1", "x.tmp-1", ".x.tmp-", ".x.tmp-1a", "..tmp-1"} {
		if got, ok := tempTarget(n); ok {
			t.Errorf("tempTarget(%q) = %q, want not a temporary file", n, got)
		}
	}
}

// A body of known length is its own size hint; an explicit hint wins.
func TestSizeHint(t *testing.T) {
	for _, tc := range []struct {
		b    Body
		hint int64
		want int64
	}{
		{BytesBody(make([]byte, 12)), 0, 12},
		{BytesBody(make([]byte, 12)), 100, 100},
		{SectionBody(strings.NewReader("0123456789"), 2, 5), 0, 5},
		{OneShotBody(strings.NewReader("x")), 0, 0},
		{OneShotBody(strings.NewReader("x")), 7, 7},
	} {
		if got := sizeHint(tc.b, PutOptions{SizeHint: tc.hint}); got != tc.want {
			t.Errorf("sizeHint(%T, %d) = %d, want %d", tc.b, tc.hint, got, tc.want)
		}
	}
}
