// Package contract holds the rules of the Store contract that every
// provider enforces alike, inside package cloud (file://, mem) and in the
// SDK providers beside it (s3, gcs, azure): the key, prefix, range and
// metadata syntax, and the version a download reads, which the retry
// wrapper compares before it resumes one. It is internal so that these
// stay the blob layer's business, not part of its API.
package contract
