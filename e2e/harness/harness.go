package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gbc-backup/gbc/pgrun"
)

// registry is the one piece of package-level state: the servers and files
// shared by every test of one test binary, and every process the harness
// started, so that Main (or a signal) can stop them all.
type registry struct {
	mainCalled atomic.Bool
	seq        atomic.Int64

	mu      sync.Mutex
	procs   map[*pgrun.Process]struct{}
	dirs    []string // removed by Main after the run
	stopped bool

	minio   lazy[*S3Server]
	azurite lazy[*AzureServer]
	gcs     lazy[*GCSServer]
	bins    lazy[string]
	pgUser  lazy[*pgrun.User]
	pg      lazy[*pgrun.Install]
	// pgMajors holds a *lazy[*pgrun.Install] per PGOptions.Version.
	pgMajors sync.Map
}

var reg = &registry{procs: map[*pgrun.Process]struct{}{}}

// lazy is a value computed once, error included, so that a server that
// failed to start is not retried (and waited for) by every later test.
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (l *lazy[T]) get(f func() (T, error)) (T, error) {
	l.once.Do(func() { l.v, l.err = f() })
	return l.v, l.err
}

// Main runs the tests of a package and then stops the servers shared by
// them. Call it from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// It does not return. On SIGINT or SIGTERM it kills every process the
// harness started before exiting, so no server outlives an interrupted run.
func Main(m *testing.M) {
	reg.mainCalled.Store(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "harness: %v: stopping every server\n", s)
		reg.shutdown(false)
		os.Exit(130)
	}()
	code := m.Run()
	signal.Stop(sigs)
	reg.shutdown(code != 0)
	os.Exit(code)
}

// shutdown kills every process still running and removes shared files.
// With dumpLogs, the tail of each shared server's log goes to stderr.
func (r *registry) shutdown(dumpLogs bool) {
	r.mu.Lock()
	r.stopped = true
	procs := make([]*pgrun.Process, 0, len(r.procs))
	for p := range r.procs {
		procs = append(procs, p)
	}
	dirs := r.dirs
	r.dirs = nil
	r.mu.Unlock()
	for _, p := range procs {
		if dumpLogs {
			if tail := p.LogTail(50); tail != "" {
				fmt.Fprintf(os.Stderr, "--- last lines of %s log (%s) ---\n%s\n", p.Name(), p.LogPath(), tail)
			}
		}
		p.Kill()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

// track registers a started process, so that shutdown kills it; one
// started while shutting down is killed at once.
func (r *registry) track(p *pgrun.Process) error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		p.Kill()
		return errors.New("harness is shutting down")
	}
	r.procs[p] = struct{}{}
	r.mu.Unlock()
	return nil
}

func (r *registry) untrack(p *pgrun.Process) {
	r.mu.Lock()
	delete(r.procs, p)
	r.mu.Unlock()
}

func (r *registry) addDir(d string) {
	r.mu.Lock()
	r.dirs = append(r.dirs, d)
	r.mu.Unlock()
}

// needMain fails the test when shared resources are asked for without
// harness.Main in TestMain: nothing would stop them.
func needMain(t testing.TB) {
	t.Helper()
	if !reg.mainCalled.Load() {
		t.Fatal("harness: shared servers need `func TestMain(m *testing.M) { harness.Main(m) }` in this test package")
	}
}

// toolsHint is appended to every "binary not found" failure.
const toolsHint = "run scripts/test-deps.sh (or `make test`, which runs it) and put its bin directory " +
	"($GBC_TOOLS/bin, default $HOME/.cache/gbc-tools/bin) on PATH"

// LookTool finds a test server binary: in PATH first, then in
// $GBC_TOOLS/bin and $HOME/.cache/gbc-tools/bin, where scripts/test-deps.sh
// installs them. A missing tool fails the test; it never skips it.
func LookTool(t testing.TB, name string) string {
	t.Helper()
	p, err := lookTool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GBC_TOOLS"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "gbc-tools", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("harness: %s not found in PATH: %s", name, toolsHint)
}

// portAttempts is how many free ports a server start tries.
const portAttempts = 3

// withPortRetry runs start again, on a new port, when the port it picked
// was taken (pgrun.WaitFor reports that as pgrun.ErrPortInUse).
func withPortRetry[T any](start func() (T, error)) (T, error) {
	for i := 1; ; i++ {
		v, err := start()
		if err == nil || !errors.Is(err, pgrun.ErrPortInUse) || i == portAttempts {
			return v, err
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := pgrun.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// UniqueName returns a name unique in this test binary, made of lower-case
// letters, digits and dashes, 3 to 63 characters long: valid as an S3 or GCS
// bucket and an Azure container name. It starts with a readable form of the
// test's name.
func UniqueName(t testing.TB) string {
	n := reg.seq.Add(1)
	base := strings.ToLower(t.Name())
	base = nonName.ReplaceAllString(base, "-")
	base = strings.Trim(base, "-")
	if len(base) > 40 {
		base = strings.Trim(base[len(base)-40:], "-")
	}
	if base == "" {
		base = "t"
	}
	return fmt.Sprintf("%s-%d-%d", base, os.Getpid()%100000, n)
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// tempDir creates a directory under os.TempDir that the PostgreSQL user can
// use (mode 0755, owned by that user when running as root), removed when
// the test ends. t.TempDir is not enough: its parents are 0700.
func tempDir(t testing.TB, pattern string) string {
	t.Helper()
	d, err := sharedTempDir(pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if keep() {
			t.Logf("harness: keeping %s (GBC_E2E_KEEP is set)", d)
			return
		}
		if err := os.RemoveAll(d); err != nil {
			t.Logf("harness: remove %s: %v", d, err)
		}
	})
	return d
}

// TempDir returns a fresh directory that the PostgreSQL user may read and
// write (see tempDir), removed when the test ends. Use it for anything a
// server or a gbc command run by PostgreSQL must reach: file:// stores,
// tablespaces, restore targets.
func TempDir(t testing.TB) string {
	t.Helper()
	return tempDir(t, "gbc-e2e-")
}

func sharedTempDir(pattern string) (string, error) {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("harness: create temp dir: %w", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return "", fmt.Errorf("harness: chmod %s: %w", d, err)
	}
	u, err := pgUser()
	if err == nil {
		err = u.Chown(d)
	}
	if err != nil {
		return "", err
	}
	return d, nil
}

// keep reports whether GBC_E2E_KEEP asks to leave test directories behind.
func keep() bool { return os.Getenv("GBC_E2E_KEEP") != "" }
