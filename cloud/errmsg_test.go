package cloud_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/gbc-backup/gbc/cloud"
)

// azureError is what the Azure SDK returns for an error response: about
// 600 characters over a dozen lines, the message twice (once in the
// status, once in the XML body).
func azureError(t *testing.T, status int, code, message string) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:10000/devstoreaccount1/ctr", nil)
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Error>
  <Code>%s</Code>
  <Message>%s
RequestId:cdb1292d-5df8-49a1-81e8-dce76d247f63
Time:2026-12-02T04:36:58.422Z</Message>
</Error>`, code, message)
	resp := &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, message), Request: req,
		Header: http.Header{"X-Ms-Error-Code": {code}}, Body: io.NopCloser(strings.NewReader(body))}
	err := azruntime.NewResponseError(resp)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("azure error %v", err)
	}
	return err
}

// s3Error is the AWS SDK's error for an S3 error response.
func s3APIError(status int, code, message string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "ListObjectsV2", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: message},
	}}
}

// A store error is one short line: the operation and object, the class,
// the provider's code and status, and what to do; the SDK's full text is
// Detail. The classification does not change.
func TestErrorMessage(t *testing.T) {
	const denied = "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature."
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/bkt?list-type=2&prefix=main%2Fbase%2F",
		Err: &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name     string
		op, url  string
		err      error
		kind     error
		noBucket bool
		want     []string // in the message
		notWant  []string
	}{
		{"azure permission", "list", "azblob://ctr/pg/main/base/", azureError(t, 403, "AuthorizationFailure", denied), cloud.ErrPermission, false,
			[]string{"list azblob://ctr/pg/main/base/: permission denied", "HTTP 403", "AuthorizationFailure", "AZURE_STORAGE_CONNECTION_STRING"},
			[]string{"RequestId", "<Error>", "-----"}},
		{"azure no container", "get", "azblob://nope/pg/k", azureError(t, 404, "ContainerNotFound", "The specified container does not exist."), cloud.ErrNotFound, true,
			[]string{"get azblob://nope/pg/k: container not found", "ContainerNotFound", "create it, or fix the store URL"},
			[]string{"RequestId", "<Error>"}},
		{"s3 permission", "put", "s3://bkt/pg/k", s3APIError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."), cloud.ErrPermission, false,
			[]string{"put s3://bkt/pg/k: permission denied", "HTTP 403 SignatureDoesNotMatch", "AWS_ACCESS_KEY_ID"},
			[]string{"operation error", "we calculated"}},
		{"s3 no bucket", "list", "s3://nope/pg/", s3APIError(404, "NoSuchBucket", "The specified bucket does not exist"), cloud.ErrNotFound, true,
			[]string{"list s3://nope/pg/: bucket not found", "NoSuchBucket", "create it, or fix the store URL"}, nil},
		{"s3 unclassified", "get", "s3://bkt/k", s3APIError(400, "InvalidArgument", "told by the store"), nil, false,
			[]string{"get s3://bkt/k: HTTP 400 InvalidArgument: told by the store"}, []string{"operation error"}},
		{"unreachable", "list", "s3://bkt/pg/", &smithy.OperationError{ServiceID: "S3", OperationName: "ListObjectsV2",
			Err: fmt.Errorf("exceeded maximum number of attempts, 3, %w", &smithyhttp.RequestSendError{Err: refused})}, cloud.ErrTransient, false,
			[]string{"list s3://bkt/pg/: transient failure", "connection refused", "check that it is up"},
			[]string{"list-type", "exceeded maximum"}},
		{"file", "get", "file:///srv/gbc/k", &net.AddrError{Err: "short text", Addr: "x"}, nil, false,
			[]string{"get file:///srv/gbc/k: address x: short text"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cloud.NewError(tc.op, tc.url, tc.err)
			var e *cloud.Error
			if !errors.As(err, &e) {
				t.Fatalf("NewError = %T", err)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") || len(msg) > 300 {
				t.Errorf("message is not one short line (%d characters): %q", len(msg), msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("message %q has the SDK's %q", msg, w)
				}
			}
			if full := tc.err.Error(); len(full) > len(msg) && e.Detail() != full {
				t.Errorf("Detail = %q, want the SDK's text %q", e.Detail(), full)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) || errors.Is(err, cloud.ErrNoBucket) != tc.noBucket {
				t.Errorf("classification changed: errors.Is(%v) false, or cloud.ErrNoBucket %v", tc.kind, !tc.noBucket)
			}
			if !errors.Is(err, tc.err) {
				t.Error("errors.Is cannot reach the SDK error")
			}
		})
	}
}
