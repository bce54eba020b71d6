package cli

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/gbc-backup/gbc/cloud"
)

// A store error is printed as one short line saying what failed, its
// class and what to do, with the exit code of its class; -v adds the
// provider's full answer on a line of its own before it.
func TestStoreErrorLine(t *testing.T) {
	sdk := &smithy.OperationError{ServiceID: "S3", OperationName: "ListObjectsV2", Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 403}},
		Err: &smithy.GenericAPIError{Code: "SignatureDoesNotMatch",
			Message: "The request signature we calculated does not match the signature you provided. Check your key and signing method. " + strings.Repeat("HostID: 3bb318359a827316ffbd0b758dd184f8, ", 6)},
	}}
	storeErr := &cloud.Error{Op: "list", URL: "s3://bkt/pg/main/base/", Kind: cloud.ErrPermission, Err: sdk}
	cmds := []*Command{{
		Name: "gbc-test", Flags: StoreFlags(),
		Action: func(context.Context, *Env) error {
			return fmt.Errorf("list backups of server main: %w", storeErr)
		},
	}}
	var code int
	stderr := captureStderr(t, func() { code = Run(cmds, []string{"gbc-test"}) })
	if code != ExitStore {
		t.Errorf("exit %d, want %d", code, ExitStore)
	}
	line := strings.TrimSuffix(stderr, "\n")
	if strings.Contains(line, "\n") || len(line) > 400 {
		t.Errorf("want one short line, got %d characters: %q", len(line), stderr)
	}
	for _, want := range []string{"gbc-test: error: list backups of server main: list s3://bkt/pg/main/base/: permission denied", "SignatureDoesNotMatch", "check the credentials", "-v"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "HostID") || strings.Contains(line, "operation error") {
		t.Errorf("the SDK's text is on the error line: %q", line)
	}

	stderr = captureStderr(t, func() { code = Run(cmds, []string{"gbc-test", "-v"}) })
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != ExitStore || len(lines) != 2 || !strings.HasPrefix(lines[1], "gbc-test: error: ") ||
		!strings.Contains(lines[0], "HostID") || !strings.Contains(lines[0], "list s3://bkt/pg/main/base/") || strings.Contains(lines[1], "HostID") {
		t.Errorf("-v: exit %d, want the SDK's text on a line before the error line:\n%s", code, stderr)
	}
}

// Bad values of the store's duration options are usage errors naming the
// option and what it takes, from the command line or the environment.
func TestStoreDurationFlags(t *testing.T) {
	cmds := []*Command{{Name: "gbc-test", Flags: StoreFlags(), Action: func(context.Context, *Env) error { return nil }}}
	for _, tc := range []struct {
		argv      []string
		env, want string
	}{
		{argv: []string{"--retry-timeout", "-1s"}, want: "--retry-timeout -1s: give a duration"},
		{argv: []string{"--io-timeout", "0"}, want: "--io-timeout 0s: give a positive duration"},
		{argv: []string{"--io-timeout", "-5s"}, want: "--io-timeout -5s: give a positive duration"},
		{argv: []string{"--io-timeout", "30"}, want: `--io-timeout "30": give a duration with its unit, such as 90s`},
		{env: "5", want: `GBC_RETRY_TIMEOUT="5" (--retry-timeout): give a duration with its unit`},
		{env: "-5m", want: "--retry-timeout -5m0s: give a duration"},
	} {
		t.Setenv("GBC_RETRY_TIMEOUT", tc.env)
		var code int
		stderr := captureStderr(t, func() { code = Run(cmds, append([]string{"gbc-test"}, tc.argv...)) })
		if code != ExitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v GBC_RETRY_TIMEOUT=%q: exit %d, stderr %q; want %d and one line with %q", tc.argv, tc.env, code, stderr, ExitUsage, tc.want)
		}
	}
	t.Setenv("GBC_RETRY_TIMEOUT", "")
	for _, ok := range [][]string{{"--retry-timeout", "0"}, {"--retry-timeout", "10s", "--io-timeout", "500ms"}} {
		if code := Run(cmds, append([]string{"gbc-test"}, ok...)); code != ExitOK {
			t.Errorf("%v: exit %d, want 0", ok, code)
		}
	}
}
