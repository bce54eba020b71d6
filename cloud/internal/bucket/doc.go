// Package bucket adapts gocloud.dev's *blob.Bucket to cloud.Store for the
// SDK providers (s3, gcs, azure), which differ only in a few hooks: how the
// bucket is opened, the options of one upload, batch deletes, version tags
// and stale-upload sweeps. It also holds what those providers share: the
// part size for an upload of a given size, and the classification of a
// bare HTTP status. It lives outside package cloud so that a binary that
// links no SDK provider does not link gocloud either.
package bucket
