package cloud_test

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

	"github.com/gbc-backup/gbc/cloud"
	// Every SDK provider, registered with cloud.Open and the error
	// classification, for every test of this package.
	_ "github.com/gbc-backup/gbc/cloud/providers"
)

// classify is the classification NewError gives err: its kind, and
// whether it says the bucket is missing.
func classify(err error) (kind error, noBucket bool) {
	var e *cloud.Error
	if !errors.As(cloud.NewError("get", "s3://bkt/key", err), &e) {
		return nil, false
	}
	return e.Kind, errors.Is(e, cloud.ErrNoBucket)
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
		{&smithy.GenericAPIError{Code: "NoSuchKey"}, want{cloud.ErrNotFound, false}},
		{&smithy.GenericAPIError{Code: "NoSuchBucket"}, want{cloud.ErrNotFound, true}},
		{&smithy.GenericAPIError{Code: "PreconditionFailed"}, want{cloud.ErrExists, false}},
		{&smithy.GenericAPIError{Code: "AccessDenied"}, want{cloud.ErrPermission, false}},
		{&smithy.GenericAPIError{Code: "InvalidAccessKeyId"}, want{cloud.ErrPermission, false}},
		{&smithy.GenericAPIError{Code: "SlowDown"}, want{cloud.ErrTransient, false}},
		{&smithy.GenericAPIError{Code: "InvalidArgument"}, want{nil, false}},
		{&azcore.ResponseError{ErrorCode: "BlobNotFound", StatusCode: 404}, want{cloud.ErrNotFound, false}},
		{&azcore.ResponseError{ErrorCode: "ContainerNotFound", StatusCode: 404}, want{cloud.ErrNotFound, true}},
		{&azcore.ResponseError{ErrorCode: "BlobAlreadyExists", StatusCode: 409}, want{cloud.ErrExists, false}},
		{&azcore.ResponseError{ErrorCode: "ConditionNotMet", StatusCode: 412}, want{cloud.ErrExists, false}},
		{&azcore.ResponseError{ErrorCode: "AuthorizationPermissionMismatch", StatusCode: 403}, want{cloud.ErrPermission, false}},
		{&azcore.ResponseError{ErrorCode: "ServerBusy", StatusCode: 503}, want{cloud.ErrTransient, false}},
		{&azcore.ResponseError{ErrorCode: "LeaseIdMissing", StatusCode: 409}, want{nil, false}},
		{&azcore.ResponseError{StatusCode: 502}, want{cloud.ErrTransient, false}},
		{storage.ErrObjectNotExist, want{cloud.ErrNotFound, false}},
		{storage.ErrBucketNotExist, want{cloud.ErrNotFound, true}},
		{&googleapi.Error{Code: 403}, want{cloud.ErrPermission, false}},
		{&googleapi.Error{Code: 412}, want{cloud.ErrExists, false}},
		{&googleapi.Error{Code: 429}, want{cloud.ErrTransient, false}},
		{&googleapi.Error{Code: 400}, want{nil, false}},
		{&cloud.CredentialsError{Err: errors.New("no EC2 IMDS role found: dial tcp: connection refused")}, want{cloud.ErrPermission, false}},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), want{cloud.ErrTransient, false}},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, want{cloud.ErrTransient, false}},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), want{cloud.ErrTransient, false}},
		{&net.DNSError{Err: "no such host", Name: "typo.example", IsNotFound: true}, want{nil, false}},
		{&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, want{cloud.ErrTransient, false}},
		{context.DeadlineExceeded, want{cloud.ErrTransient, false}},
		{context.Canceled, want{nil, false}},
		{errors.New("something else"), want{nil, false}},
		{fmt.Errorf("wrapped: %w", cloud.ErrPermission), want{cloud.ErrPermission, false}},
	} {
		kind, noBucket := classify(tc.err)
		if kind != tc.want.kind || noBucket != tc.want.noBucket {
			t.Errorf("classify(%T %v) = %v, %v; want %v, %v", tc.err, tc.err, kind, noBucket, tc.want.kind, tc.want.noBucket)
		}
	}
}

func TestErrorType(t *testing.T) {
	cause := &smithy.GenericAPIError{Code: "NoSuchBucket", Message: "The specified bucket does not exist"}
	err := cloud.NewError("get", "s3://bkt/key", cause)
	for _, target := range []error{cloud.ErrNotFound, cloud.ErrNoBucket} {
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
	if d := err.(*cloud.Error).Detail(); !strings.Contains(d, "The specified bucket does not exist") {
		t.Errorf("Detail %q lacks the provider's message", d)
	}
	// Wrapping again (a nested store) keeps the first wrapping.
	if again := cloud.NewError("get", "s3://bkt/other", err); again != err {
		t.Errorf("NewError re-wrapped an *Error: %v", again)
	}
}
