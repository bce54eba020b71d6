package gcs

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/bucket"
	"github.com/gbc-backup/gbc/cloud/internal/stall"
)

func init() {
	cloud.Register(cloud.Provider{Scheme: "gs", Open: open, Classify: classify, Summary: summary})
}

// gcsMaxAttempts bounds the storage client's own retries of one request.
const gcsMaxAttempts = 4

// open returns the gs:// provider. The storage client, and with it the
// search for Application Default Credentials (which on a machine outside
// Google Cloud probes the metadata server over the network), is made on
// first use, not here.
func open(_ context.Context, bucketName string, opts cloud.Options) (cloud.Store, error) {
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
	emulator := os.Getenv("STORAGE_EMULATOR_HOST") != ""
	streak := new(failStreak)
	return openWith(bucketName, opts, streak, func(ctx context.Context) (*storage.Client, error) {
		// The stall watchdog sits under the authenticating transport, so
		// that every request to the store has it; the storage client takes
		// a ready-made client as is, so the authentication the client would
		// have set up is set up here, with the same scopes.
		topts := append([]option.ClientOption{option.WithScopes(storage.ScopeFullControl, "https://www.googleapis.com/auth/cloud-platform")}, copts...)
		if emulator {
			topts = append(topts, option.WithoutAuthentication())
		}
		base := &streakTransport{base: stall.Client(opts.IOTimeout).Transport, streak: streak}
		tr, err := htransport.NewTransport(ctx, base, topts...)
		if err != nil {
			return nil, err
		}
		return storage.NewClient(ctx, append(copts, option.WithHTTPClient(&http.Client{Transport: tr}))...)
	}), nil
}

// openWith builds the provider over a client made by newClient on first
// use; tests pass an in-process fake's client. streak is told of every
// failed attempt, and should be told of every answer by the client's
// transport (streakTransport).
func openWith(bucketName string, opts cloud.Options, streak *failStreak, newClient func(context.Context) (*storage.Client, error)) cloud.Store {
	partSize := bucket.PartSize(opts)
	retryLimit := opts.RetryTimeout
	if retryLimit <= 0 {
		retryLimit = cloud.DefaultRetryTimeout
	}
	return &bucket.Store{
		Base: "gs://" + bucketName,
		Open: func(ctx context.Context) (*blob.Bucket, func() error, error) {
			client, err := newClient(ctx)
			if err != nil {
				// NewClient fails only on configuration: unreadable or
				// missing credentials, a bad option.
				return nil, nil, &cloud.CredentialsError{Err: err}
			}
			// Writes that overwrite are not idempotent in GCS's eyes, so
			// by default a failed chunk fails the upload. Ours are safe to
			// resend: the retried request carries the same bytes. The
			// client would also retry forever (until ctx is done); a few
			// attempts absorb a blip, and WithRetry's deadline does the rest.
			//
			// The client's attempt limit does not reach a one-shot
			// upload's retries, which go on until ctx ends: a store that
			// is down or stalled would hold the call forever. So every
			// retry in the client is bounded by the time the store has
			// been failing (see failStreak), and WithRetry decides after.
			client.SetRetry(storage.WithPolicy(storage.RetryAlways), storage.WithMaxAttempts(gcsMaxAttempts),
				storage.WithErrorFunc(func(err error) bool {
					return storage.ShouldRetry(err) && streak.fail() < retryLimit
				}))
			b, err := gcsblob.OpenBucket(ctx, nil, bucketName, &gcsblob.Options{Client: client})
			if err != nil {
				_ = client.Close()
				return nil, nil, err
			}
			return b, client.Close, nil
		},
		ReaderTag: func(r *blob.Reader) string {
			var sr *storage.Reader
			if r.As(&sr) && sr.Attrs.Generation != 0 {
				return strconv.FormatInt(sr.Attrs.Generation, 10)
			}
			return ""
		},
		WriterOptions: func(po cloud.PutOptions) *blob.WriterOptions {
			// GCS has no part limit: a resumable upload sends ChunkSize
			// (BufferSize) bytes at a time, buffered in memory, one chunk
			// in flight per object.
			return &blob.WriterOptions{
				ContentType: "application/octet-stream",
				Metadata:    po.Metadata,
				IfNotExist:  po.IfNotExists,
				BufferSize:  int(bucket.PartSizeFor(partSize, po.SizeHint, gcsNoChunkLimit)),
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

// failStreak measures how long a client's requests have been failing
// without one answer in between. It bounds retries that no attempt
// counter reaches, whatever the number of operations in flight.
type failStreak struct {
	since atomic.Int64 // UnixNano of the first failure of the streak; 0: healthy
}

// fail records a failed attempt and returns how long the streak has lasted.
func (f *failStreak) fail() time.Duration {
	now := time.Now().UnixNano()
	f.since.CompareAndSwap(0, now)
	return time.Duration(now - f.since.Load())
}

// ok ends the streak: the store answered.
func (f *failStreak) ok() { f.since.Store(0) }

// streakTransport tells a failStreak of every answer that is not a
// server-side failure.
type streakTransport struct {
	base   http.RoundTripper
	streak *failStreak
}

func (t *streakTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		t.streak.ok()
	}
	return resp, err
}
