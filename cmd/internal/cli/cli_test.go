package cli

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitFailure},
		{Usagef("bad"), ExitUsage},
		{fmt.Errorf("open: %w", cloud.ErrPermission), ExitStore},
		{fmt.Errorf("get: %w", cloud.ErrNotFound), ExitNotFound},
		{fmt.Errorf("get: %w", errors.Join(cloud.ErrNotFound, cloud.ErrNoBucket)), ExitStore},
		{fmt.Errorf("put: %w", cloud.ErrExists), ExitConflict},
		{fmt.Errorf("write: %w", syscall.ENOSPC), ExitNoSpace},
		// An explicit code wins over the store's classification.
		{Exit(ExitConflict, fmt.Errorf("x: %w", cloud.ErrPermission)), ExitConflict},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Errorf("CodeOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// Run dispatches on the link name and on the first argument, checks the
// argument count, and never returns a code above 125 for ordinary errors.
func TestRunDispatch(t *testing.T) {
	var got []string
	cmds := []*Command{{
		Name: "gbc-test", ArgsUsage: "A B", MinArgs: 2, MaxArgs: 2,
		Action: func(_ context.Context, e *Env) error {
			got = e.Args
			if e.Args[0] == "fail" {
				return Exitf(ExitConflict, "refused")
			}
			return nil
		},
	}}
	for _, tc := range []struct {
		argv []string
		want int
	}{
		{[]string{"/usr/bin/gbc-test", "a", "b"}, ExitOK},
		{[]string{"gbc", "test", "a", "b"}, ExitOK},
		{[]string{"gbc", "gbc-test", "a", "b"}, ExitOK},
		{[]string{"gbc-test", "a"}, ExitUsage},
		{[]string{"gbc-test", "--no-such-flag", "a", "b"}, ExitUsage},
		{[]string{"gbc-test", "fail", "b"}, ExitConflict},
		{[]string{"gbc", "nope"}, ExitUsage},
		{[]string{"gbc", "--list-commands"}, ExitOK},
	} {
		got = nil
		if code := Run(cmds, tc.argv); code != tc.want {
			t.Errorf("Run(%q) = %d, want %d", tc.argv, code, tc.want)
		}
	}
	Run(cmds, []string{"gbc-test", "x", "y"})
	if len(got) != 2 || got[0] != "x" || got[1] != "y" {
		t.Errorf("positional arguments = %q, want [x y]", got)
	}
}

func TestEnvVars(t *testing.T) {
	if got := envVars("sse-kms-key-id"); len(got) != 1 || got[0] != "GBC_SSE_KMS_KEY_ID" {
		t.Fatalf("envVars = %q", got)
	}
	if CheckServerName("main") != nil || CheckServerName("a/b") == nil || CheckServerName("..") == nil || CheckServerName("") == nil {
		t.Fatal("CheckServerName accepts or refuses the wrong names")
	}
}
