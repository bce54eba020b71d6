package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults for Options' zero values.
const (
	// DefaultPartSize is the size of one part (S3), block (Azure) or chunk
	// (GCS). Objects up to this size go up in a single request. With
	// unknown sizes it caps an S3 object at 10,000 parts: 156 GiB (and
	// an Azure one at 50,000 blocks: 781 GiB); PutOptions.SizeHint lifts
	// the cap by choosing larger parts.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is the number of parts in flight per Put.
	DefaultConcurrency = 4
	// DefaultRetryTimeout is how long Open's retry wrapper keeps retrying
	// one operation.
	DefaultRetryTimeout = 5 * time.Minute
)

// minPartSize and maxPartSize bound Options.PartSize: S3's limits on a
// part, the strictest of the providers'.
const (
	minPartSize = 5 << 20
	maxPartSize = 5 << 30
)

// AcceptedURLs lists the store URL forms, for help texts and errors.
const AcceptedURLs = "s3://bucket/prefix, gs://bucket/prefix, azblob://container/prefix, file:///absolute/dir"

// Options configure Open. The zero value is usable: credentials always come
// from each SDK's standard chain (environment, profile, instance identity),
// never from here, so that no secret shows in a command line.
type Options struct {
	// EndpointURL points the provider at another server: an S3-compatible
	// store (MinIO...), Azurite, or a GCS emulator (fake-gcs-server). The
	// SDKs' own variables (AWS_ENDPOINT_URL_S3, STORAGE_EMULATOR_HOST)
	// work too.
	EndpointURL string
	// Region is the S3 region; the AWS configuration's otherwise. With
	// EndpointURL and no region anywhere, "us-east-1".
	Region string
	// PathStyle forces path-style S3 addressing (bucket in the path, not
	// the host name). It is implied by EndpointURL.
	PathStyle bool
	// SSE asks S3 for server-side encryption of new objects, one of
	// SSEModes: "AES256" (S3-managed keys), "aws:kms" (KMS keys) or
	// "aws:kms:dsse" (dual-layer, with KMS keys). Reads need nothing.
	SSE string
	// SSEKMSKeyID is the KMS key for SSE "aws:kms" or "aws:kms:dsse" (the
	// account's AWS-managed key when empty).
	SSEKMSKeyID string
	// EncryptionScope is the Azure encryption scope for new blobs.
	EncryptionScope string
	// PartSize is the size of one part (S3), block (Azure) or chunk (GCS)
	// of an upload; 0 means DefaultPartSize. S3 needs at least 5 MiB.
	PartSize int64
	// Concurrency is the number of parts in flight per Put (S3, Azure);
	// 0 means DefaultConcurrency. Memory per Put is about
	// (Concurrency+3) x PartSize on S3 and Concurrency x PartSize on
	// Azure; GCS uploads one chunk at a time.
	Concurrency int
	// RetryTimeout bounds the retries of one operation (see WithRetry);
	// 0 means DefaultRetryTimeout, a negative value disables retries.
	RetryTimeout time.Duration
	// IOTimeout fails one HTTP request that waits this long on the store
	// without a byte moving (see package internal/stall); 0 means
	// DefaultIOTimeout. The retry wrapper then tries again, within
	// RetryTimeout.
	IOTimeout time.Duration
	// MaxBandwidth limits the bytes per second of all uploads together,
	// and of all downloads together, through this Store (see
	// WithBandwidth); 0 means no limit.
	MaxBandwidth int64
	// Layers are wrappers that Open adds, in order, around the Store it
	// builds (see Open): later concerns such as client-side encryption or
	// metrics join here instead of in every caller. Each should have an
	// Unwrap() Store method, so that As finds the capabilities beneath it.
	Layers []Layer
	// Logf, when set, receives retry notices (for -v).
	Logf func(format string, args ...any)
}

// A Layer wraps a Store in another that implements the same contract and
// adds one concern (see Options.Layers).
type Layer func(Store) Store

// SSEModes are the values of Options.SSE that S3 accepts, for help texts.
func SSEModes() []string { return []string{"AES256", "aws:kms", "aws:kms:dsse"} }

// Open returns the Store for a store URL, rooted at the URL's prefix and
// wrapped with retries. It reads configuration and credentials settings
// from the environment but does no network round trip: a bad bucket or bad
// credentials show on the first operation. One Store holds one provider
// client; share it rather than opening the same URL twice.
//
// Accepted forms: s3://bucket/prefix, gs://bucket/prefix,
// azblob://container/prefix, file:///absolute/dir (the prefix is optional).
//
// The Store is built as a chain of wrappers, innermost first:
//
//  1. the provider, chosen by the URL's scheme among file:// and the
//     providers linked into the program (see Provider; ErrNotLinked for
//     the others);
//  2. WithBandwidth, with MaxBandwidth (when set): next to the provider,
//     so that it counts every byte sent or received, retries included;
//  3. WithPrefix, with the URL's prefix (when there is one);
//  4. WithRetry, with RetryTimeout (unless negative): above the layers
//     that only pass bytes on, so that one retry replays all of them;
//  5. Options.Layers, in order, each wrapping the one before: they see
//     what callers ask for, once per call, and a Body that rewinds.
//
// Every wrapper has an Unwrap method, so that As and SweepStale find a
// capability (a StaleSweeper) under all of them.
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	loc, err := parseStoreURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := opts.check(loc.scheme); err != nil {
		return nil, err
	}
	var s Store
	if loc.scheme == "file" {
		s = newFileStore(loc.dir)
	} else {
		p, ok := lookup(loc.scheme)
		if !ok {
			return nil, fmt.Errorf("%s:// stores: %w", loc.scheme, ErrNotLinked)
		}
		if s, err = p.Open(ctx, loc.bucket, opts); err != nil {
			return nil, err
		}
	}
	s = WithBandwidth(s, opts.MaxBandwidth)
	if loc.prefix != "" {
		s = WithPrefix(s, loc.prefix)
	}
	if opts.RetryTimeout >= 0 {
		s = WithRetry(s, RetryOptions{Timeout: opts.RetryTimeout, Logf: opts.Logf})
	}
	for _, layer := range opts.Layers {
		s = layer(s)
	}
	return s, nil
}

// Check reports what Open would refuse before it opens anything: a
// malformed store URL, or options that are invalid or do not apply to the
// URL's provider (all of them, in one error). Open runs it itself;
// commands run it first to refuse bad options as usage errors.
func (o Options) Check(rawURL string) error {
	loc, err := parseStoreURL(rawURL)
	if err != nil {
		return err
	}
	return o.check(loc.scheme)
}

// storeURL is a parsed store URL.
type storeURL struct {
	scheme string
	bucket string // bucket or container (s3, gs, azblob)
	prefix string // key prefix without slashes at either end, or ""
	dir    string // file:// root directory
}

func badURL(raw, why string) error {
	return fmt.Errorf("invalid store URL %q: %s; accepted forms: %s", raw, why, AcceptedURLs)
}

func parseStoreURL(raw string) (storeURL, error) {
	if raw == "" {
		return storeURL{}, badURL(raw, "empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return storeURL{}, badURL(raw, strings.TrimPrefix(err.Error(), "parse "+fmt.Sprintf("%q", raw)+": "))
	}
	loc := storeURL{scheme: strings.ToLower(u.Scheme)}
	switch {
	case u.Scheme == "":
		return storeURL{}, badURL(raw, "no scheme")
	case u.Opaque != "":
		return storeURL{}, badURL(raw, "missing \"//\" after \""+u.Scheme+":\"")
	case u.User != nil:
		return storeURL{}, badURL(raw, "credentials do not belong in the URL (they would show in ps); use the provider's environment variables")
	case u.RawQuery != "" || u.ForceQuery:
		return storeURL{}, badURL(raw, "query parameters are not supported; use the command's options")
	case u.Fragment != "":
		return storeURL{}, badURL(raw, "fragments (#...) are not supported")
	}

	switch loc.scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return storeURL{}, badURL(raw, fmt.Sprintf("file URLs take an absolute path, as in file:///%s%s (three slashes)", u.Host, u.Path))
		}
		if !strings.HasPrefix(u.Path, "/") {
			return storeURL{}, badURL(raw, "file URLs take an absolute path, as in file:///var/lib/gbc")
		}
		loc.dir = u.Path
		return loc, nil
	case "s3", "gs", "azblob":
		if u.Host == "" {
			return storeURL{}, badURL(raw, "no bucket or container name after \""+u.Scheme+"://\"")
		}
		if u.Port() != "" {
			return storeURL{}, badURL(raw, "a port is not part of a bucket name; to reach another server use --endpoint-url")
		}
		loc.bucket = u.Host
		if err := checkBucketName(loc.scheme, loc.bucket); err != nil {
			return storeURL{}, badURL(raw, err.Error())
		}
		loc.prefix = strings.Trim(u.Path, "/")
		if loc.prefix != "" {
			if err := checkKey(loc.prefix); err != nil {
				return storeURL{}, badURL(raw, "bad prefix: "+strings.TrimPrefix(err.Error(), errInvalid.Error()+": "))
			}
		}
		return loc, nil
	default:
		return storeURL{}, badURL(raw, "unknown scheme \""+u.Scheme+"\"")
	}
}

// checkBucketName refuses a bucket or container name that the provider
// would refuse on every request: a configuration error that must exit 2
// at once, not be retried by the archiver forever. The rules are the
// providers' own, loosened where an S3-compatible store or a legacy bucket
// may differ (S3 buckets made before 2018 may hold capitals and
// underscores, up to 255 characters).
func checkBucketName(scheme, name string) error {
	var (
		maxLen  int
		allowed func(r rune) bool
		what    string
	)
	lower := func(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }
	switch scheme {
	case "s3":
		maxLen, what = 255, "letters, digits, '.', '-' and '_'"
		allowed = func(r rune) bool { return lower(r) || r >= 'A' && r <= 'Z' || r == '.' || r == '-' || r == '_' }
	case "gs":
		maxLen, what = 222, "lower-case letters, digits, '.', '-' and '_'"
		allowed = func(r rune) bool { return lower(r) || r == '.' || r == '-' || r == '_' }
	case "azblob":
		if name == "$root" || name == "$web" {
			return nil
		}
		maxLen, what = 63, "lower-case letters, digits and '-'"
		allowed = func(r rune) bool { return lower(r) || r == '-' }
	default:
		return nil
	}
	if len(name) < 3 || len(name) > maxLen {
		return fmt.Errorf("bucket or container name %q: must be 3 to %d characters long", name, maxLen)
	}
	for _, r := range name {
		if !allowed(r) {
			return fmt.Errorf("bucket or container name %q: %q is not allowed (use %s)", name, r, what)
		}
	}
	// Legacy S3 names may start or end with a capital; no name anywhere
	// starts or ends with punctuation.
	edge := func(r rune) bool { return lower(r) || scheme == "s3" && r >= 'A' && r <= 'Z' }
	if !edge(rune(name[0])) || !edge(rune(name[len(name)-1])) {
		return fmt.Errorf("bucket or container name %q: must start and end with a letter or digit", name)
	}
	return nil
}

// check rejects options that do not apply to the scheme: a user who asks
// for encryption must not silently get an unencrypted store.
func (o Options) check(scheme string) error {
	var errs []error
	if o.SSE != "" || o.SSEKMSKeyID != "" {
		if scheme != "s3" {
			errs = append(errs, fmt.Errorf("--sse and --sse-kms-key-id apply to s3:// stores only, not %s://", scheme))
		} else {
			switch {
			case slices.Contains(SSEModes(), o.SSE):
			case o.SSE == "":
				errs = append(errs, errors.New("--sse-kms-key-id needs --sse aws:kms or aws:kms:dsse"))
			default:
				errs = append(errs, fmt.Errorf("--sse %q: want AES256 or aws:kms, or aws:kms:dsse for dual-layer encryption (case matters)", o.SSE))
			}
			if o.SSEKMSKeyID != "" && o.SSE == "AES256" {
				errs = append(errs, errors.New("--sse-kms-key-id needs --sse aws:kms, not AES256"))
			}
		}
	}
	if o.EncryptionScope != "" && scheme != "azblob" {
		errs = append(errs, fmt.Errorf("an encryption scope applies to azblob:// stores only, not %s://", scheme))
	}
	if o.EndpointURL != "" {
		if scheme == "file" {
			errs = append(errs, errors.New("--endpoint-url does not apply to file:// stores"))
		} else if u, err := url.Parse(o.EndpointURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--endpoint-url %q: want http://host:port or https://host", o.EndpointURL))
		}
	}
	if o.PartSize < 0 || (o.PartSize > 0 && o.PartSize < minPartSize) {
		errs = append(errs, fmt.Errorf("part size %d: want at least 5 MiB", o.PartSize))
	}
	if o.PartSize > maxPartSize {
		errs = append(errs, fmt.Errorf("part size %d: want at most 5 GiB", o.PartSize))
	}
	if o.IOTimeout < 0 {
		errs = append(errs, fmt.Errorf("I/O timeout %v: want a positive duration", o.IOTimeout))
	}
	if o.MaxBandwidth < 0 {
		errs = append(errs, fmt.Errorf("bandwidth limit %d: want a positive number of bytes per second, or 0 for none", o.MaxBandwidth))
	}
	if o.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1 or more", o.Concurrency))
	}
	return errors.Join(errs...)
}
