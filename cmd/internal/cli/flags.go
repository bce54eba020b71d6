package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// envVars gives every option a GBC_* environment variable, so that a
// systemd unit or PostgreSQL's environment can set options without long
// archive_command lines.
func envVars(flag string) []string {
	return []string{"GBC_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// String, Int, Bool and Duration build flags that also read GBC_<NAME>.
func String(name, usage, value string) *ucli.StringFlag {
	return &ucli.StringFlag{Name: name, Usage: usage, Value: value, EnvVars: envVars(name)}
}

// Int builds an int flag that also reads GBC_<NAME>.
func Int(name, usage string, value int) *ucli.IntFlag {
	return &ucli.IntFlag{Name: name, Usage: usage, Value: value, EnvVars: envVars(name)}
}

// Bool builds a bool flag that also reads GBC_<NAME>.
func Bool(name, usage string) *ucli.BoolFlag {
	return &ucli.BoolFlag{Name: name, Usage: usage, EnvVars: envVars(name)}
}

// Duration builds a duration flag that also reads GBC_<NAME> and refuses,
// as a usage error naming the option, a value below min: a negative
// timeout would otherwise be taken silently for "none" or "the default",
// or fail later as if the store or the server were at fault.
func Duration(name, usage string, value, min time.Duration, accepted string) *ucli.DurationFlag {
	return &ucli.DurationFlag{Name: name, Usage: usage, Value: value, EnvVars: envVars(name),
		Action: func(_ *ucli.Context, d time.Duration) error {
			if d < min {
				return Usagef("--%s %v: give %s", name, d, accepted)
			}
			return nil
		}}
}

// StoreFlags are the options of every command that opens a store: the one
// list of them. None takes a secret: credentials come from each SDK's
// standard chain. Whatever is set of them reaches the other gbc processes
// that open the same store (StoreArgs, SpawnDetached) without a second list.
func StoreFlags() []ucli.Flag {
	return []ucli.Flag{
		String("endpoint-url", "endpoint of an S3-compatible store, Azurite or a GCS emulator (e.g. http://127.0.0.1:9000)", ""),
		String("s3-region", "S3 region (default: the AWS SDK's configuration, or us-east-1 with --endpoint-url)", ""),
		Bool("s3-path-style", "address S3 buckets by path instead of virtual host (on by default with --endpoint-url)"),
		String("sse", "S3 server-side encryption of new objects: "+strings.Join(cloud.SSEModes(), ", "), ""),
		String("sse-kms-key-id", "KMS key for --sse aws:kms or aws:kms:dsse", ""),
		String("azure-encryption-scope", "Azure encryption scope for new blobs", ""),
		Duration("retry-timeout", "give up retrying transient store errors after this long; gbc-wal-archive, gbc-wal-restore, gbc-backup-list, gbc-backup-show and gbc-backup-keep end within it as a whole (default: 1m for gbc-wal-archive and gbc-wal-restore, 5m otherwise)",
			0, 0, "a duration such as 30s, 5m or 1h (0: the command's default)"),
		Duration("io-timeout", "fail one request to the store that waits this long without a byte moving, and retry it",
			cloud.DefaultIOTimeout, time.Nanosecond, "a positive duration such as 30s or 2m"),
		bandwidthFlag(),
	}
}

// bandwidthFlag is --max-bandwidth, refused at parse time when malformed.
func bandwidthFlag() *ucli.StringFlag {
	f := String("max-bandwidth", "limit this process's uploads to this many bytes per second in all, and its downloads too (e.g. 100M; K, M, G: powers of 1024; 0: no limit); a background pusher or prefetcher has the same limit of its own", "")
	f.Action = func(_ *ucli.Context, v string) error {
		_, err := ParseBandwidth(v)
		return err
	}
	return f
}

// minBandwidth is the smallest --max-bandwidth: below it, "100" given for
// "100M" would stretch a backup over weeks without a word.
const minBandwidth = 1 << 10

// ParseBandwidth reads --max-bandwidth: bytes per second, with a K, M or G
// suffix (powers of 1024, with or without B, iB or /s), at least 1K; 0 or
// "" means no limit. A malformed value is a usage error.
func ParseBandwidth(v string) (int64, error) {
	bad := func(why string) error {
		return Usagef("--max-bandwidth %q: %s: give bytes per second such as 100M or 512K (K, M, G: powers of 1024), or 0 for no limit", v, why)
	}
	t := strings.TrimSuffix(strings.TrimSpace(v), "/s")
	if t == "" || t == "0" {
		return 0, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "iB"), "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	switch {
	case err != nil || n < 0 || strings.HasPrefix(t, "+"):
		return 0, bad("not a rate")
	case n > math.MaxInt64/mult:
		return 0, bad("too large")
	case n*mult < minBandwidth && n != 0:
		return 0, bad("less than 1K")
	}
	return n * mult, nil
}

// CompressionFlags choose the codec of new objects. Readers never need
// them: an object's extension names its codec.
func CompressionFlags() []ucli.Flag {
	return []ucli.Flag{
		String("compression", "codec for new objects: "+strings.Join(compress.Names(), ", "), compress.Default),
		Int("compression-level", "codec level (0: the codec's fast default)", 0),
	}
}

// MaxJobs is the most workers --jobs gets: 4 per core. Every job holds
// its own buffers (compression frames, parts in flight), so the bound is
// what keeps a command's memory fixed whatever is asked (--jobs 100000 once
// took 3.5 GiB), and more jobs than that cannot make a pipeline bound by
// the CPU or the network faster.
func MaxJobs() int { return 4 * runtime.NumCPU() }

// JobsFlag is the parallelism of pipelines. Values below 1 are refused as
// usage errors; values above MaxJobs are capped by Jobs.
func JobsFlag() ucli.Flag {
	f := Int("jobs", fmt.Sprintf("parallel jobs, from 1 to 4 per core (%d here); more is capped", MaxJobs()), runtime.NumCPU())
	f.Action = func(_ *ucli.Context, n int) error {
		if n < 1 {
			return Usagef("--jobs %d: give 1 or more (the default is the number of cores, %d)", n, runtime.NumCPU())
		}
		return nil
	}
	return f
}

// Codec returns the codec and level chosen by CompressionFlags.
func (e *Env) Codec() (compress.Codec, int, error) {
	c, err := compress.Lookup(e.String("compression"))
	if err != nil {
		return nil, 0, Exit(ExitUsage, err)
	}
	level := e.Int("compression-level")
	if e.IsSet("compression-level") {
		// A level the codec refuses would otherwise fail the first
		// write, as if the store or the disk were at fault.
		w, err := c.NewWriter(io.Discard, level)
		if err != nil {
			return nil, 0, Usagef("--compression-level %d: %v: give a level %s accepts, or 0 for its default", level, err, c.Name())
		}
		w.Close()
	}
	return c, level, nil
}

// Jobs returns --jobs, capped at MaxJobs with a warning.
func (e *Env) Jobs() int {
	n := e.Int("jobs")
	if m := MaxJobs(); n > m {
		e.Log.Warnf("--jobs %d is more than 4 per core: using %d", n, m)
		return m
	}
	return max(n, 1)
}

// StoreOptions maps StoreFlags onto cloud.Options.
func (e *Env) StoreOptions() cloud.Options {
	// Checked when the flags were parsed.
	bw, _ := ParseBandwidth(e.String("max-bandwidth"))
	return cloud.Options{
		EndpointURL:     e.String("endpoint-url"),
		Region:          e.String("s3-region"),
		PathStyle:       e.Bool("s3-path-style"),
		SSE:             e.String("sse"),
		SSEKMSKeyID:     e.String("sse-kms-key-id"),
		EncryptionScope: e.String("azure-encryption-scope"),
		RetryTimeout:    e.RetryTimeout(),
		IOTimeout:       e.Duration("io-timeout"),
		MaxBandwidth:    bw,
		Logf:            e.Log.Debugf,
	}
}

// StoreArgs renders the store options set for this call (on the command
// line or through GBC_* variables) as arguments for another gbc command
// that must reach the same store the same way: gbc-restore writes them
// into restore_command for gbc-wal-restore. It walks StoreFlags, so a new
// store option is passed on without anyone adding it to a second list.
// Each element is one argument, unquoted; the caller quotes them for the
// shell it writes to.
func (e *Env) StoreArgs() []string {
	var args []string
	for _, f := range StoreFlags() {
		if e.IsSet(f.Names()[0]) {
			args = append(args, flagArgs(e.Context, f)...)
		}
	}
	return args
}

// RetryTimeout is --retry-timeout, or the command's default.
func (e *Env) RetryTimeout() time.Duration {
	if d := e.Duration("retry-timeout"); d != 0 {
		return d
	}
	if e.retryDefault > 0 {
		return e.retryDefault
	}
	return cloud.DefaultRetryTimeout
}

// Bound limits the whole call to --retry-timeout, for commands that
// someone waits on: PostgreSQL for its archive and restore commands
// (pg_wal fills up behind a hung archive_command; recovery behind a hung
// restore_command stands still without a word), monitoring for a listing.
// Each attempt is also cut short by the I/O timeout, so a stalled store
// is retried on a fresh connection within the bound.
func (e *Env) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	d := e.RetryTimeout()
	if d <= 0 {
		return ctx, func() {}
	}
	e.bound = d
	return context.WithTimeout(ctx, d)
}

// OpenStore opens the store at rawURL with the command's store options,
// adjusted by tune (a command's own part sizes, say). A malformed URL or a
// bad option is a usage error, found by cloud's own check (the one place
// that knows what each provider accepts) before anything is opened;
// anything else keeps the store's classification.
func (e *Env) OpenStore(ctx context.Context, rawURL string, tune ...func(*cloud.Options)) (cloud.Store, error) {
	opts := e.StoreOptions()
	for _, t := range tune {
		t(&opts)
	}
	if err := opts.Check(rawURL); err != nil {
		return nil, Exit(ExitUsage, err)
	}
	s, err := cloud.Open(ctx, rawURL, opts)
	if err != nil {
		if errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrTransient) {
			return nil, fmt.Errorf("open store %s: %w", rawURL, err)
		}
		return nil, Exit(ExitUsage, fmt.Errorf("store URL %q: %w", rawURL, err))
	}
	return s, nil
}

// CheckServerName refuses a server name that would escape its prefix or
// collide with the layout.
func CheckServerName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\") || strings.TrimSpace(name) != name {
		return Usagef("invalid server name %q: use a plain name such as \"main\" (no slashes or spaces)", name)
	}
	return nil
}
