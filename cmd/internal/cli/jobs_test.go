package cli

import (
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// --jobs below 1 is a usage error, from the command line or the
// environment; above 4 per core it is capped, with one warning line.
func TestJobs(t *testing.T) {
	var got int
	cmds := []*Command{{
		Name: "gbc-test", MinArgs: 0, MaxArgs: 0, Flags: []ucli.Flag{JobsFlag()},
		Action: func(_ context.Context, e *Env) error { got = e.Jobs(); return nil },
	}}
	maxJobs := 4 * runtime.NumCPU()
	for _, tc := range []struct {
		argv  []string
		env   string // GBC_JOBS
		code  int
		jobs  int
		warns bool
	}{
		{argv: []string{"gbc-test"}, jobs: runtime.NumCPU()},
		{argv: []string{"gbc-test", "--jobs", "1"}, jobs: 1},
		{argv: []string{"gbc-test", "--jobs", strconv.Itoa(maxJobs)}, jobs: maxJobs},
		{argv: []string{"gbc-test", "--jobs", "100000"}, jobs: maxJobs, warns: true},
		{argv: []string{"gbc-test", "--jobs", "0"}, code: ExitUsage},
		{argv: []string{"gbc-test", "--jobs", "-3"}, code: ExitUsage},
		{argv: []string{"gbc-test"}, env: "0", code: ExitUsage},
		{argv: []string{"gbc-test"}, env: "100000", jobs: maxJobs, warns: true},
	} {
		t.Setenv("GBC_JOBS", tc.env)
		if tc.env == "" {
			os.Unsetenv("GBC_JOBS")
		}
		got = 0
		var code int
		stderr := captureStderr(t, func() { code = Run(cmds, tc.argv) })
		if code != tc.code || (tc.code == ExitOK && got != tc.jobs) {
			t.Errorf("%v GBC_JOBS=%q: exit %d, jobs %d; want exit %d, jobs %d (stderr %q)", tc.argv, tc.env, code, got, tc.code, tc.jobs, stderr)
		}
		lines := strings.Count(stderr, "\n")
		switch {
		case tc.code == ExitUsage && (lines != 1 || !strings.Contains(stderr, "--jobs")):
			t.Errorf("%v: want one line naming --jobs, got %q", tc.argv, stderr)
		case tc.warns && (lines != 1 || !strings.Contains(stderr, "warning: --jobs 100000 is more than 4 per core: using "+strconv.Itoa(maxJobs))):
			t.Errorf("%v: want one warning line, got %q", tc.argv, stderr)
		case tc.code == ExitOK && !tc.warns && stderr != "":
			t.Errorf("%v: unexpected output %q", tc.argv, stderr)
		}
	}
}

// captureStderr runs f with os.Stderr sent to a pipe, and returns what f
// wrote there (commands log to os.Stderr).
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	os.Stderr = saved
	w.Close()
	return <-done
}
