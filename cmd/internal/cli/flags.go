package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

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

// StoreFlags are the options of every command that opens a store. None
// takes a secret: credentials come from each SDK's standard chain.
func StoreFlags() []ucli.Flag {
	return []ucli.Flag{
		String("endpoint-url", "endpoint of an S3-compatible store, Azurite or a GCS emulator (e.g. http://127.0.0.1:9000)", ""),
		String("s3-region", "S3 region (default: the AWS SDK's configuration, or us-east-1 with --endpoint-url)", ""),
		Bool("s3-path-style", "address S3 buckets by path instead of virtual host (on by default with --endpoint-url)"),
		String("sse", "S3 server-side encryption: AES256 or aws:kms", ""),
		String("sse-kms-key-id", "KMS key for --sse aws:kms", ""),
		String("azure-encryption-scope", "Azure encryption scope for new blobs", ""),
		&ucli.DurationFlag{Name: "retry-timeout", Usage: "give up retrying transient store errors after this long", Value: 0, EnvVars: envVars("retry-timeout")},
	}
}

// CompressionFlags choose the codec of new objects. Readers never need
// them: an object's extension names its codec.
func CompressionFlags() []ucli.Flag {
	return []ucli.Flag{
		String("compression", "codec for new objects: "+strings.Join(compress.Names(), ", "), compress.Default),
		Int("compression-level", "codec level (0: the codec's fast default)", 0),
	}
}

// JobsFlag is the parallelism of pipelines.
func JobsFlag() ucli.Flag {
	return Int("jobs", "parallel jobs (default: number of CPU cores)", runtime.NumCPU())
}

// Codec returns the codec and level chosen by CompressionFlags.
func (e *Env) Codec() (compress.Codec, int, error) {
	c, err := compress.Lookup(e.String("compression"))
	if err != nil {
		return nil, 0, Exit(ExitUsage, err)
	}
	return c, e.Int("compression-level"), nil
}

// Jobs returns --jobs, at least 1.
func (e *Env) Jobs() int {
	if n := e.Int("jobs"); n > 0 {
		return n
	}
	return 1
}

// StoreOptions maps StoreFlags onto cloud.Options.
func (e *Env) StoreOptions() cloud.Options {
	sse := e.String("sse")
	return cloud.Options{
		EndpointURL:     e.String("endpoint-url"),
		Region:          e.String("s3-region"),
		PathStyle:       e.Bool("s3-path-style"),
		SSE:             sse,
		SSEKMSKeyID:     e.String("sse-kms-key-id"),
		EncryptionScope: e.String("azure-encryption-scope"),
		RetryTimeout:    e.Duration("retry-timeout"),
		Logf:            e.Log.Debugf,
	}
}

// OpenStore opens the store at rawURL with the command's store options. A
// malformed URL or option is a usage error; anything else keeps the store's
// classification.
func (e *Env) OpenStore(ctx context.Context, rawURL string) (cloud.Store, error) {
	switch e.String("sse") {
	case "", "AES256", "aws:kms":
	default:
		return nil, Usagef("--sse %q: use AES256 or aws:kms", e.String("sse"))
	}
	s, err := cloud.Open(ctx, rawURL, e.StoreOptions())
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
