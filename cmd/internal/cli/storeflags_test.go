package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cloud"
	// Every provider, for the tests that open s3://, gs:// and azblob:// stores.
	_ "github.com/gbc-backup/gbc/cloud/providers"
)

// storeFlagSamples are values, other than each flag's default, that the
// flags' own checks accept. A flag of a type not handled below, or whose
// check refuses the generic sample, needs an entry here.
var storeFlagSamples = map[string]string{
	"max-bandwidth": "4M",
	"sse":           "aws:kms:dsse",
}

func sampleValue(t *testing.T, f ucli.Flag) string {
	t.Helper()
	name := f.Names()[0]
	if v, ok := storeFlagSamples[name]; ok {
		return v
	}
	switch f.(type) {
	case *ucli.StringFlag:
		// Spaces, a quote and a %: what restore_command must quote.
		return "it's a %" + name
	case *ucli.BoolFlag:
		return "true"
	case *ucli.DurationFlag:
		return "1m30s"
	case *ucli.IntFlag:
		return "7"
	}
	t.Fatalf("--%s is a %T: give it a sample value in storeFlagSamples", name, f)
	return ""
}

// values runs a command with StoreFlags on argv and returns what each
// store flag parsed to, and StoreArgs.
func values(t *testing.T, argv []string) (map[string]string, []string) {
	t.Helper()
	got := map[string]string{}
	var args []string
	cmds := []*Command{{Name: "gbc-test", Flags: StoreFlags(), MaxArgs: -1, Action: func(_ context.Context, e *Env) error {
		for _, f := range StoreFlags() {
			got[f.Names()[0]] = fmt.Sprint(e.Value(f.Names()[0]))
		}
		args = e.StoreArgs()
		return nil
	}}}
	var code int
	stderr := captureStderr(t, func() { code = Run(cmds, append([]string{"gbc-test"}, argv...)) })
	if code != ExitOK {
		t.Fatalf("%q: exit %d: %s", argv, code, stderr)
	}
	return got, args
}

// Every store flag that is set reaches another gbc process (restore_command's
// gbc-wal-restore) with the same value, and none that is not set does: the
// list is StoreFlags itself, so a new flag needs no one to remember it.
func TestStoreArgsForwardEveryStoreFlag(t *testing.T) {
	for _, f := range StoreFlags() {
		// Unset, not empty: an empty variable counts as set.
		v := envVars(f.Names()[0])[0]
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	if _, args := values(t, nil); len(args) != 0 {
		t.Errorf("no store flag set: StoreArgs = %q, want none", args)
	}

	var argv []string
	for _, f := range StoreFlags() {
		argv = append(argv, "--"+f.Names()[0]+"="+sampleValue(t, f))
	}
	set, args := values(t, argv)
	for _, f := range StoreFlags() {
		name := f.Names()[0]
		if !slices.ContainsFunc(args, func(a string) bool { return a == "--"+name || strings.HasPrefix(a, "--"+name+"=") }) {
			t.Errorf("--%s was set but StoreArgs %q does not pass it on", name, args)
		}
	}
	// Parsed again, the arguments give every flag the same value.
	again, _ := values(t, args)
	for name, v := range set {
		if again[name] != v {
			t.Errorf("--%s: %q given, %q after forwarding as %q", name, v, again[name], args)
		}
	}

	// Set through the environment, as a systemd unit would, they are
	// passed on too: PostgreSQL's environment may not have them.
	t.Setenv("GBC_ENDPOINT_URL", "http://127.0.0.1:9000")
	t.Setenv("GBC_MAX_BANDWIDTH", "10M")
	if _, args := values(t, nil); !slices.Equal(args, []string{"--endpoint-url=http://127.0.0.1:9000", "--max-bandwidth=10M"}) {
		t.Errorf("from the environment: StoreArgs = %q, want --endpoint-url and --max-bandwidth", args)
	}
}

// The background pusher and prefetcher get every flag that was set, store
// flags included, rendered the same way.
func TestPassedFlagsIncludeStoreFlags(t *testing.T) {
	var args []string
	cmds := []*Command{{Name: "gbc-test", Flags: append(StoreFlags(), JobsFlag()), Action: func(_ context.Context, e *Env) error {
		args = passedFlags(e.Context, []string{"--worker=1"})
		return nil
	}}}
	if code := Run(cmds, []string{"gbc-test", "--max-bandwidth", "2M", "--s3-path-style", "--retry-timeout", "90s", "--jobs", "3"}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	want := []string{"--s3-path-style", "--retry-timeout=1m30s", "--max-bandwidth=2M", "--jobs=3"}
	if !slices.Equal(args, want) {
		t.Errorf("passedFlags = %q, want %q", args, want)
	}
}

func TestParseBandwidth(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "0": 0, "1K": 1 << 10, "100M": 100 << 20, "100m": 100 << 20, "2G": 2 << 30,
		"512KiB": 512 << 10, "4MB/s": 4 << 20, "1048576": 1 << 20, " 8M ": 8 << 20,
	} {
		if got, err := ParseBandwidth(in); err != nil || got != want {
			t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// Bad values of --max-bandwidth are refused before anything is done, with
// exit 2 and one line naming the option and what it takes.
func TestMaxBandwidthRefused(t *testing.T) {
	ran := false
	cmds := []*Command{{Name: "gbc-test", Flags: StoreFlags(), Action: func(context.Context, *Env) error { ran = true; return nil }}}
	for _, tc := range []struct{ argv, env, want string }{
		{argv: "fast", want: `--max-bandwidth "fast": not a rate`},
		{argv: "-5M", want: `--max-bandwidth "-5M": not a rate`},
		{argv: "1.5M", want: "not a rate"},
		{argv: "10T", want: "not a rate"},
		{argv: "100", want: `--max-bandwidth "100": less than 1K: give bytes per second such as 100M`},
		{argv: "9999999999G", want: "too large"},
		{env: "lots", want: `--max-bandwidth "lots": not a rate`},
	} {
		t.Setenv("GBC_MAX_BANDWIDTH", tc.env)
		argv := []string{"gbc-test"}
		if tc.argv != "" {
			argv = append(argv, "--max-bandwidth", tc.argv)
		}
		ran = false
		var code int
		stderr := captureStderr(t, func() { code = Run(cmds, argv) })
		if code != ExitUsage || ran || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q GBC_MAX_BANDWIDTH=%q: exit %d (action ran: %v), stderr %q; want exit %d and one line with %q", argv, tc.env, code, ran, stderr, ExitUsage, tc.want)
		}
	}
}

// The store options reach cloud.Options, and cloud's own check decides what
// OpenStore refuses: aws:kms:dsse is accepted like the other SSE modes, and
// a bad mode is a usage error in one line that lists them.
func TestOpenStoreOptions(t *testing.T) {
	var opts cloud.Options
	var openErr error
	cmds := []*Command{{Name: "gbc-test", Flags: StoreFlags(), MinArgs: 1, MaxArgs: 1, Action: func(ctx context.Context, e *Env) error {
		opts = e.StoreOptions()
		s, err := e.OpenStore(ctx, e.Args[0], func(o *cloud.Options) { o.PartSize = 8 << 20 })
		openErr = err
		if err != nil {
			return err
		}
		return s.Close()
	}}}
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	t.Setenv("AWS_REGION", "us-east-1")
	code := Run(cmds, []string{"gbc-test", "--max-bandwidth", "3M", "--sse", "aws:kms:dsse", "--sse-kms-key-id", "k", "--io-timeout", "7s", "s3://bucket/p"})
	if code != ExitOK || openErr != nil {
		t.Fatalf("--sse aws:kms:dsse: exit %d, %v", code, openErr)
	}
	if opts.MaxBandwidth != 3<<20 || opts.SSE != "aws:kms:dsse" || opts.SSEKMSKeyID != "k" || opts.IOTimeout != 7*time.Second {
		t.Errorf("StoreOptions = %+v", opts)
	}
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"--sse", "aws:kms:DSSE", "s3://bucket/p"}, `--sse "aws:kms:DSSE": want AES256 or aws:kms, or aws:kms:dsse`},
		{[]string{"--sse", "AES256", "file:///tmp/x"}, "apply to s3:// stores only"},
		{[]string{"--sse-kms-key-id", "k", "s3://bucket/p"}, "needs --sse aws:kms or aws:kms:dsse"},
		{[]string{"ftp://bucket/p"}, `unknown scheme "ftp"`},
	} {
		var code int
		stderr := captureStderr(t, func() { code = Run(cmds, append([]string{"gbc-test"}, tc.argv...)) })
		if code != ExitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and one line with %q", tc.argv, code, stderr, ExitUsage, tc.want)
		}
	}
}
