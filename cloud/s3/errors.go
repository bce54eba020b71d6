package s3

import (
	"errors"
	"net"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/bucket"
)

// classify reads the AWS SDK's errors (cloud.Provider.Classify). The error
// code in the body is more precise than the status (which HEAD responses
// are left with).
func classify(err error) (cloud.Class, bool) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return cloud.Class{Kind: cloud.ErrNotFound}, true
		case "NoSuchBucket":
			return cloud.Class{Kind: cloud.ErrNotFound, NoBucket: true}, true
		case "PreconditionFailed":
			return cloud.Class{Kind: cloud.ErrExists}, true
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
			"ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AccountProblem",
			"AllAccessDisabled", "InvalidSecurity", "AuthorizationHeaderMalformed",
			"KMS.DisabledException", "KMS.NotFoundException":
			return cloud.Class{Kind: cloud.ErrPermission}, true
		case "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled",
			"RequestTimeout", "InternalError", "ServiceUnavailable", "OperationAborted",
			"ConditionalRequestConflict", "RequestTimeTooSkewed", "XMinioServerNotInitialized":
			return cloud.Class{Kind: cloud.ErrTransient}, true
		}
	}
	var awsResp *smithyhttp.ResponseError
	if errors.As(err, &awsResp) {
		if k := bucket.ClassifyStatus(awsResp.HTTPStatusCode()); k != nil {
			return cloud.Class{Kind: k}, true
		}
	}
	// The SDK wraps any failure to send a request (after its own retries)
	// in RequestSendError: a network failure, except for a host name that
	// does not resolve, which the network's classification leaves alone
	// (a typo in --endpoint-url far more often than a DNS outage).
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return cloud.Class{}, true
		}
		return cloud.Class{Kind: cloud.ErrTransient}, true
	}
	return cloud.Class{}, false
}

// summary renders the AWS SDK's API errors (cloud.Provider.Summary): the
// HTTP status and error code, and with message the S3 API's one-sentence
// message.
func summary(err error, message bool) (string, bool) {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return "", false
	}
	var resp *smithyhttp.ResponseError
	code := 0
	if errors.As(err, &resp) {
		code = resp.HTTPStatusCode()
	}
	s := bucket.Join(bucket.Status(code), apiErr.ErrorCode())
	if m := apiErr.ErrorMessage(); message && m != "" && m != apiErr.ErrorCode() {
		s += ": " + m
	}
	return s, true
}
