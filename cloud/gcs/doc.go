// Package gcs is the gs:// provider of package cloud: Google Cloud Storage
// (and emulators such as fake-gcs-server) through the storage client's
// JSON API and gocloud's gcsblob, with its retries bounded by a failure
// streak. Importing it (blank, if nothing else is used) registers it with
// cloud.Open; see cloud.Provider for why it is apart.
package gcs
