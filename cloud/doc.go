// Package cloud is gbc's blob layer: it moves bytes to and from object
// stores (Amazon S3 and S3-compatible stores, Google Cloud Storage, Azure
// Blob Storage, and a local directory) behind the small Store interface.
//
// Open picks the provider from the URL scheme. Providers classify their
// errors (ErrNotFound, ErrExists, ErrPermission, ErrTransient); behaviour
// such as retries or a key prefix is added by wrapping one Store in another.
// Key naming belongs to package catalog, not here.
package cloud
