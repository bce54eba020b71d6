package gcs

import (
	"errors"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/bucket"
)

// classify reads the storage client's errors and those of Google's
// credential chain (cloud.Provider.Classify).
func classify(err error) (cloud.Class, bool) {
	if errors.Is(err, storage.ErrBucketNotExist) {
		return cloud.Class{Kind: cloud.ErrNotFound, NoBucket: true}, true
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return cloud.Class{Kind: cloud.ErrNotFound}, true
	}
	var gErr *googleapi.Error
	if errors.As(err, &gErr) {
		if k := bucket.ClassifyStatus(gErr.Code); k != nil {
			return cloud.Class{Kind: k}, true
		}
	}
	var gAuth *auth.Error
	if errors.As(err, &gAuth) {
		if gAuth.Response != nil && bucket.ClassifyStatus(gAuth.Response.StatusCode) == cloud.ErrTransient {
			return cloud.Class{Kind: cloud.ErrTransient}, true
		}
		return cloud.Class{Kind: cloud.ErrPermission}, true
	}
	var oauthErr *oauth2.RetrieveError
	if errors.As(err, &oauthErr) {
		if oauthErr.Response != nil && bucket.ClassifyStatus(oauthErr.Response.StatusCode) == cloud.ErrTransient {
			return cloud.Class{Kind: cloud.ErrTransient}, true
		}
		return cloud.Class{Kind: cloud.ErrPermission}, true
	}
	return cloud.Class{}, false
}

// summary renders the storage client's errors (cloud.Provider.Summary).
func summary(err error, _ bool) (string, bool) {
	var gErr *googleapi.Error
	if errors.As(err, &gErr) {
		reason := ""
		if len(gErr.Errors) > 0 {
			reason = gErr.Errors[0].Reason
		}
		return bucket.Join(bucket.Status(gErr.Code), reason), true
	}
	if errors.Is(err, storage.ErrBucketNotExist) || errors.Is(err, storage.ErrObjectNotExist) {
		// The class ("bucket not found") says it all.
		return "", true
	}
	var gAuth *auth.Error
	var oauthErr *oauth2.RetrieveError
	if errors.As(err, &gAuth) || errors.As(err, &oauthErr) {
		return "token request failed", true
	}
	return "", false
}
