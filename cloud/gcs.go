package cloud

import (
	"context"
	"net/url"
	"os"
	"strings"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"
)

// gcsMaxAttempts bounds the storage client's own retries of one request.
const gcsMaxAttempts = 4

// openGCS returns the gs:// provider. The storage client, and with it the
// search for Application Default Credentials (which on a machine outside
// Google Cloud probes the metadata server over the network), is made on
// first use, not here.
func openGCS(bucket string, opts Options) (Store, error) {
	var copts []option.ClientOption
	if opts.EndpointURL != "" {
		ep, err := gcsEndpoint(opts.EndpointURL)
		if err != nil {
			return nil, err
		}
		copts = append(copts, option.WithEndpoint(ep))
		// Emulators (fake-gcs-server...) take no credentials; a private
		// endpoint to the real service gets them from the usual file.
		if os.Getenv("GOOGLE_APPLICATION_CREDENTIALS") == "" {
			copts = append(copts, option.WithoutAuthentication())
		}
	}
	if opts.EndpointURL != "" || os.Getenv("STORAGE_EMULATOR_HOST") != "" {
		// Reads over the XML API go to a host an emulator must be told
		// about separately (fake-gcs-server's -public-host); the JSON API
		// uses the endpoint itself.
		copts = append(copts, storage.WithJSONReads())
	}
	return openGCSWith(bucket, opts, func(ctx context.Context) (*storage.Client, error) {
		return storage.NewClient(ctx, copts...)
	}), nil
}

// openGCSWith builds the provider over a client made by newClient on first
// use; tests pass an in-process fake's client.
func openGCSWith(bucket string, opts Options, newClient func(context.Context) (*storage.Client, error)) Store {
	partSize := opts.partSize()
	return &bucketStore{
		base: "gs://" + bucket,
		open: func(ctx context.Context) (*blob.Bucket, func() error, error) {
			client, err := newClient(ctx)
			if err != nil {
				// NewClient fails only on configuration: unreadable or
				// missing credentials, a bad option.
				return nil, nil, &credentialsError{err}
			}
			// Writes that overwrite are not idempotent in GCS's eyes, so
			// by default a failed chunk fails the upload. Ours are safe to
			// resend: the retried request carries the same bytes. The
			// client would also retry forever (until ctx is done); a few
			// attempts absorb a blip, and WithRetry's deadline does the rest.
			client.SetRetry(storage.WithPolicy(storage.RetryAlways), storage.WithMaxAttempts(gcsMaxAttempts))
			b, err := gcsblob.OpenBucket(ctx, nil, bucket, &gcsblob.Options{Client: client})
			if err != nil {
				_ = client.Close()
				return nil, nil, err
			}
			return b, client.Close, nil
		},
		writerOptions: func(po PutOptions) *blob.WriterOptions {
			// GCS has no part limit: a resumable upload sends ChunkSize
			// (BufferSize) bytes at a time, buffered in memory, one chunk
			// in flight per object.
			return &blob.WriterOptions{
				ContentType: "application/octet-stream",
				Metadata:    po.Metadata,
				IfNotExist:  po.IfNotExists,
				BufferSize:  int(partSizeFor(partSize, po.SizeHint, gcsNoChunkLimit)),
			}
		},
	}
}

// gcsNoChunkLimit stands for "any number of chunks": a resumable upload
// has no limit, so only a small object's hint makes the buffer smaller.
const gcsNoChunkLimit = 1 << 40

// gcsEndpoint turns --endpoint-url (e.g. http://127.0.0.1:4443) into the
// JSON API base the storage client wants.
func gcsEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if !strings.Contains(u.Path, "/storage/v1") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/storage/v1/"
	}
	return u.String(), nil
}
