package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
)

// CommandTimeout bounds one RunGBC call.
const CommandTimeout = 10 * time.Minute

// BinDir returns the directory holding this test binary's copy of the gbc
// commands: the multi-call `gbc` and its `gbc-*` links, readable and
// executable by the PostgreSQL user.
//
// The source is $GBC_BIN (set by `make test`), or the repository's ./bin.
// It is copied once per test binary into a world-readable temp dir because
// the checkout may live under a home directory PostgreSQL cannot enter,
// and so that a concurrent `make build` cannot change the binaries under a
// running test. A missing build fails the test with a hint.
func BinDir(t testing.TB) string {
	t.Helper()
	needMain(t)
	d, err := reg.bins.get(copyBins)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Bin returns the path of the usable copy of one gbc command, e.g.
// Bin(t, "gbc-wal-archive").
func Bin(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(BinDir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("harness: %s is not in the gbc build (%s): run `make build`", name, binSource())
	}
	return p
}

// binSource is where the built gbc binaries are: $GBC_BIN, else bin/ at the
// root of the module that contains the working directory.
func binSource() string {
	if d := os.Getenv("GBC_BIN"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return "bin"
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "bin")
		}
		parent := filepath.Dir(d)
		if parent == d {
			return filepath.Join(dir, "..", "bin")
		}
		d = parent
	}
}

func copyBins() (string, error) {
	src := binSource()
	if _, err := os.Stat(filepath.Join(src, "gbc")); err != nil {
		return "", fmt.Errorf("harness: no gbc binary in %s: run `make build` (or set GBC_BIN to the directory holding gbc): %w", src, err)
	}
	dst, err := sharedTempDir("gbc-bin-")
	if err != nil {
		return "", err
	}
	reg.addDir(dst)
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", fmt.Errorf("harness: read %s: %w", src, err)
	}
	for _, e := range entries {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			// Relative links inside bin (gbc-x -> gbc) are kept as links,
			// so that the multi-call binary sees its argv[0].
			if target, err := os.Readlink(from); err == nil && !strings.Contains(target, "/") {
				if err := os.Symlink(target, to); err != nil {
					return "", fmt.Errorf("harness: link %s: %w", to, err)
				}
				continue
			}
		}
		st, err := os.Stat(from)
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			continue
		}
		if err := copyFile(from, to, 0o755); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("harness: copy %s: %w", from, err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("harness: copy to %s: %w", to, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("harness: copy %s to %s: %w", from, to, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("harness: copy to %s: %w", to, err)
	}
	return os.Chmod(to, mode)
}

// RunGBC runs a gbc command as the current user and returns its output and
// exit code; it fails the test only when the command cannot be started or
// runs longer than CommandTimeout. args[0] is the command name (e.g.
// "gbc-wal-archive", looked up with Bin) or a path. env (KEY=VALUE) is added
// to this process's environment, e.g. Store.Env. The copy of the gbc
// commands comes first in PATH.
func RunGBC(t testing.TB, env []string, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	r := RunGBCWith(t, RunOptions{Env: env}, args...)
	return r.Stdout, r.Stderr, r.ExitCode
}

// RunOptions tune RunGBCWith.
type RunOptions struct {
	Env     []string      // added to the environment (KEY=VALUE)
	Dir     string        // working directory; "" for the current one
	Stdin   io.Reader     // nil: no input
	Timeout time.Duration // 0: CommandTimeout
	AsPG    bool          // run as PGUser (when root), as PostgreSQL would
}

// Result is the outcome of one command.
type Result struct {
	Stdout, Stderr string
	ExitCode       int // -1 when killed by a signal
	Elapsed        time.Duration
	MaxRSSKiB      int64 // peak resident set size of the command
}

// RunGBCWith is RunGBC with options, returning timing and peak memory too.
func RunGBCWith(t testing.TB, opts RunOptions, args ...string) Result {
	t.Helper()
	var as *pgrun.User // nil: the current user
	if opts.AsPG {
		var err error
		if as, err = pgUser(); err != nil {
			t.Fatal(err)
		}
	}
	return runGBC(t, as, opts, args)
}

func runGBC(t testing.TB, as *pgrun.User, opts RunOptions, args []string) Result {
	t.Helper()
	if len(args) == 0 {
		t.Fatal("harness: RunGBC needs a command name")
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		path = Bin(t, path)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = CommandTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	cmd.Env = append(os.Environ(), "PATH="+gbcPath())
	cmd.Env = append(cmd.Env, opts.Env...)
	cmd.Dir = opts.Dir
	cmd.Stdin = opts.Stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	as.Apply(cmd)
	// Kill the whole group on timeout, not only the direct child.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("harness: %s timed out after %v; stderr:\n%s", strings.Join(args, " "), timeout, errb.String())
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	case err != nil:
		t.Fatalf("harness: run %s: %v", strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
	t.Logf("$ %s  # exit %d in %v%s", strings.Join(args, " "), r.ExitCode, r.Elapsed.Round(time.Millisecond), indentOutput(r.Stderr))
	return r
}

// gbcPath is $PATH with the copy of the gbc commands first, when there is
// a build to copy.
func gbcPath() string {
	if d, ok := gbcDir(); ok {
		return d + string(os.PathListSeparator) + os.Getenv("PATH")
	}
	return os.Getenv("PATH")
}

// gbcDir is BinDir without failing: false when there is no build (or no
// harness.Main to remove the copy).
func gbcDir() (string, bool) {
	if !reg.mainCalled.Load() {
		return "", false
	}
	d, err := reg.bins.get(copyBins)
	return d, err == nil
}

// indentOutput formats a command's stderr for t.Logf, shortened.
func indentOutput(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	if len(s) > 4000 {
		s = s[:2000] + "\n[...]\n" + s[len(s)-2000:]
	}
	return "\n\t" + strings.ReplaceAll(s, "\n", "\n\t")
}
