package azure

import (
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/bucket"
)

// classify reads the Azure SDK's errors and those of its credential chain
// (cloud.Provider.Classify).
func classify(err error) (cloud.Class, bool) {
	var azResp *azcore.ResponseError
	if errors.As(err, &azResp) {
		switch azResp.ErrorCode {
		case "BlobNotFound", "ResourceNotFound":
			return cloud.Class{Kind: cloud.ErrNotFound}, true
		case "ContainerNotFound", "ContainerBeingDeleted":
			return cloud.Class{Kind: cloud.ErrNotFound, NoBucket: true}, true
		case "BlobAlreadyExists", "ConditionNotMet":
			return cloud.Class{Kind: cloud.ErrExists}, true
		case "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
			"AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch",
			"InsufficientAccountPermissions", "AccountIsDisabled", "InvalidAuthenticationInfo",
			"KeyVaultEncryptionKeyNotFound", "KeyVaultAccessTokenCannotBeAcquired":
			return cloud.Class{Kind: cloud.ErrPermission}, true
		case "ServerBusy", "OperationTimedOut", "InternalError":
			return cloud.Class{Kind: cloud.ErrTransient}, true
		}
		if k := bucket.ClassifyStatus(azResp.StatusCode); k != nil {
			return cloud.Class{Kind: k}, true
		}
	}
	var azAuth *azidentity.AuthenticationFailedError
	if errors.As(err, &azAuth) {
		if azAuth.RawResponse != nil && bucket.ClassifyStatus(azAuth.RawResponse.StatusCode) == cloud.ErrTransient {
			return cloud.Class{Kind: cloud.ErrTransient}, true
		}
		return cloud.Class{Kind: cloud.ErrPermission}, true
	}
	// azidentity marks "this credential has nothing to work with" (no
	// managed identity, no CLI login...) as not retriable.
	var azNoRetry interface{ NonRetriable() }
	if errors.As(err, &azNoRetry) {
		return cloud.Class{Kind: cloud.ErrPermission}, true
	}
	return cloud.Class{}, false
}

// summary renders the Azure SDK's errors (cloud.Provider.Summary).
func summary(err error, _ bool) (string, bool) {
	var azResp *azcore.ResponseError
	if errors.As(err, &azResp) {
		return bucket.Join(bucket.Status(azResp.StatusCode), azResp.ErrorCode), true
	}
	var azAuth *azidentity.AuthenticationFailedError
	if errors.As(err, &azAuth) {
		s := "authentication failed"
		if azAuth.RawResponse != nil {
			s += " (" + bucket.Status(azAuth.RawResponse.StatusCode) + ")"
		}
		return s, true
	}
	return "", false
}
