// Package s3 is the s3:// provider of package cloud: Amazon S3 and
// S3-compatible stores (MinIO, Ceph...) through the AWS SDK and gocloud's
// s3blob, with batch deletes, server-side encryption and the sweep of
// stale multipart uploads. Importing it (blank, if nothing else is used)
// registers it with cloud.Open; see cloud.Provider for why it is apart.
package s3
