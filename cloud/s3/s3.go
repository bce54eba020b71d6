package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/bucket"
	"github.com/gbc-backup/gbc/cloud/internal/stall"
)

func init() {
	cloud.Register(cloud.Provider{Scheme: "s3", Open: open, Classify: classify, Summary: summary})
}

const (
	// s3MaxParts is S3's limit on the parts of one multipart upload.
	s3MaxParts = 10000
	// s3MaxPartSize is S3's limit on a part's size.
	s3MaxPartSize = 5 << 30
	// s3DeleteBatch is the most keys one DeleteObjects request takes.
	s3DeleteBatch = 1000
	// s3AbortTimeout bounds the AbortMultipartUpload sent after a failed or
	// cancelled upload; it runs on a fresh context, since the upload's own
	// may be the one that was cancelled.
	s3AbortTimeout = 30 * time.Second
)

// s3Store holds what the S3 hooks of bucket.Store need.
type s3Store struct {
	client      *awss3.Client
	bucket      string
	base        string
	partSize    int64
	concurrency int
}

// open returns the s3:// provider. It reads the AWS configuration (env,
// shared files) but sends nothing over the network: credentials are
// resolved on the first request.
func open(ctx context.Context, bucketName string, opts cloud.Options) (cloud.Store, error) {
	// The SDK's own logger prints warnings (an IMDSv1 fallback, say) to
	// stderr before the request fails; the failure itself comes back as an
	// error that carries the cause, and a command prints that as one line.
	load := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: loading the AWS configuration (environment, ~/.aws/config, ~/.aws/credentials): %w", err)
	}
	// The SDK also takes an endpoint from the environment; treat it as
	// --endpoint-url (path style, a default region).
	custom := opts.EndpointURL != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != "" || cfg.BaseEndpoint != nil
	if cfg.Region == "" {
		if !custom {
			return nil, errors.New("s3: no AWS region configured: pass --s3-region, or set AWS_REGION or a region in the AWS profile")
		}
		// S3-compatible stores mostly ignore the region, but SigV4
		// signing needs one.
		cfg.Region = "us-east-1"
	}
	if cfg.Credentials != nil {
		cfg.Credentials = aws.NewCredentialsCache(markCredentials{cfg.Credentials})
	}
	// The SDK's own client holds what the configuration asked for (a CA
	// bundle, a proxy); the stall watchdog goes on top of its transport.
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		cfg.HTTPClient = stall.Watched(bc.GetTransport(), opts.IOTimeout)
	} else {
		cfg.HTTPClient = stall.Client(opts.IOTimeout)
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.EndpointURL != "" {
			o.BaseEndpoint = aws.String(opts.EndpointURL)
		}
		if custom {
			// Custom endpoints (MinIO, Ceph, ...) rarely have the
			// wildcard DNS that virtual-hosted addressing needs.
			o.UsePathStyle = true
		}
		if opts.PathStyle {
			o.UsePathStyle = true
		}
		// Since early 2025 the SDK adds CRC checksums to every upload and
		// validates them on download; many S3-compatible stores reject
		// or mangle those. Checksum only where the API requires it.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})

	st := &s3Store{
		client:      client,
		bucket:      bucketName,
		base:        "s3://" + bucketName,
		partSize:    bucket.PartSize(opts),
		concurrency: bucket.Concurrency(opts),
	}
	bopts := &s3blob.Options{
		EncryptionType:             types.ServerSideEncryption(opts.SSE),
		KMSEncryptionID:            opts.SSEKMSKeyID,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	}
	return &bucket.Store{
		Base: st.base,
		Open: func(ctx context.Context) (*blob.Bucket, func() error, error) {
			b, err := s3blob.OpenBucket(ctx, client, bucketName, bopts)
			return b, nil, err
		},
		WriterOptions: st.writerOptions,
		ReaderTag: func(r *blob.Reader) string {
			var out awss3.GetObjectOutput
			if r.As(&out) {
				return aws.ToString(out.ETag)
			}
			return ""
		},
		DeleteMany: st.deleteMany,
		Sweep:      st.sweepStale,
	}, nil
}

// markCredentials marks failures of the AWS credential chain, so that they
// are reported as cloud.ErrPermission with a hint rather than as the network
// error that the chain's last resort (instance metadata) ends with.
type markCredentials struct{ p aws.CredentialsProvider }

func (m markCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.p.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		err = &cloud.CredentialsError{Err: fmt.Errorf("%w (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance role)", err)}
	}
	return c, err
}

func (st *s3Store) writerOptions(opts cloud.PutOptions) *blob.WriterOptions {
	part := min(bucket.PartSizeFor(st.partSize, opts.SizeHint, s3MaxParts), s3MaxPartSize)
	return &blob.WriterOptions{
		// A fixed type: no sniffing, which would buffer the first bytes.
		ContentType: "application/octet-stream",
		Metadata:    opts.Metadata,
		IfNotExist:  opts.IfNotExists,
		BufferSize:  int(part),
		// gocloud builds the transfer manager before BeforeWrite runs and
		// exposes only a few of its options; replace it with one that has
		// all of ours.
		BeforeWrite: func(as func(any) bool) error {
			var tm *transfermanager.Client
			if !as(&tm) {
				return errors.New("s3: gocloud did not expose the transfer manager")
			}
			*tm = *transfermanager.New(st.client, func(o *transfermanager.Options) {
				o.PartSizeBytes = part
				o.Concurrency = st.concurrency
				// Up to one part goes up as a single PutObject: one
				// request instead of three for every WAL segment.
				o.MultipartUploadThreshold = part + 1
				o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
				// Abort the multipart upload even when the failure is our
				// own cancellation, so that no parts linger (and cost).
				o.FailTimeout = s3AbortTimeout
			})
			return nil
		},
	}
}

// deleteMany deletes keys with DeleteObjects, 1,000 per request, and
// reports every key the store refused. Stores without DeleteObjects get
// concurrent single deletes instead.
func (st *s3Store) deleteMany(ctx context.Context, keys []string) error {
	if len(keys) == 1 {
		return st.deleteOne(ctx, keys[0])
	}
	var errs []error
	for start := 0; start < len(keys); start += s3DeleteBatch {
		batch := keys[start:min(start+s3DeleteBatch, len(keys))]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := st.client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{
			Bucket: aws.String(st.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		}, withContentMD5)
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotImplemented" {
			return st.deleteEach(ctx, keys[start:])
		}
		if err != nil {
			return cloud.NewError("delete", fmt.Sprintf("%s (%d keys from %s)", st.base, len(batch), batch[0]), err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			errs = append(errs, cloud.NewError("delete", st.base+"/"+aws.ToString(e.Key),
				&smithy.GenericAPIError{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message)}))
		}
	}
	return bucket.JoinErrors(errs)
}

// deleteOne uses DeleteObject: one request as well, and supported by every
// S3-compatible store (gocloud's Delete would add a HEAD first).
func (st *s3Store) deleteOne(ctx context.Context, key string) error {
	_, err := st.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(st.bucket), Key: aws.String(key)})
	return bucket.IgnoreMissing(cloud.NewError("delete", st.base+"/"+key, err))
}

func (st *s3Store) deleteEach(ctx context.Context, keys []string) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bucket.DeleteConcurrency)
	for _, key := range keys {
		g.Go(func() error {
			if err := st.deleteOne(gctx, key); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return bucket.JoinErrors(errs)
}

// withContentMD5 adds a Content-MD5 header to a request with a seekable
// body. DeleteObjects requires an integrity header; the SDK now sends only
// a CRC32 checksum, which many S3-compatible stores (older MinIO, Ceph,
// ...) do not accept in place of Content-MD5.
func withContentMD5(o *awss3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		// The Build step runs after serialization (the body exists) and
		// before signing (the header is signed with the rest).
		return stack.Build.Add(middleware.BuildMiddlewareFunc("gbc:ContentMD5", addContentMD5), middleware.After)
	})
}

func addContentMD5(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok || req.Header.Get("Content-MD5") != "" || !req.IsStreamSeekable() {
		return next.HandleBuild(ctx, in)
	}
	if body := req.GetStream(); body != nil {
		h := md5.New()
		if _, err := io.Copy(h, body); err != nil {
			return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("computing Content-MD5: %w", err)
		}
		if err := req.RewindStream(); err != nil {
			return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("computing Content-MD5: %w", err)
		}
		req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	return next.HandleBuild(ctx, in)
}
