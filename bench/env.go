package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// env is one run's world: its directory, the user that runs PostgreSQL and
// the tools, the binaries, the S3 server, and what must be stopped at the
// end.
type env struct {
	log    *logger
	dir    string // the run's working directory, readable by the PostgreSQL user
	cred   *syscall.Credential
	uid    int
	gid    int
	pgBin  string // PostgreSQL's bindir (pg_config --bindir)
	gbcBin string // directory holding the copy of gbc and its gbc-* links
	s3     *s3Server

	// procEnv is the whole environment of every tool, server and client
	// the harness runs.
	procEnv []string

	mu       sync.Mutex
	clusters map[*cluster]struct{} // started and not yet stopped
	bgs      []*background
}

// logger writes progress lines with the time since the start of the run.
type logger struct {
	mu      sync.Mutex
	w       io.Writer
	start   time.Time
	verbose bool
}

func (l *logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "bench %6.1fs  %s\n", time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}

func (l *logger) debugf(format string, args ...any) {
	if l.verbose {
		l.printf(format, args...)
	}
}

// newEnv creates the working directory and finds the binaries. gbcDir is the
// directory holding the gbc build ("" = look gbc up in PATH); it is needed
// only when gbc is benchmarked.
func newEnv(o Options, log *logger, needGBC bool) (*env, error) {
	e := &env{log: log, uid: os.Getuid(), gid: os.Getgid(), clusters: map[*cluster]struct{}{}}
	pgConfig, err := exec.LookPath("pg_config")
	if err != nil {
		return nil, errors.New("bench: pg_config is not in PATH: install PostgreSQL 15 (postgresql-15, postgresql-contrib)")
	}
	out, err := exec.Command(pgConfig, "--bindir").Output()
	if err != nil {
		return nil, fmt.Errorf("bench: pg_config --bindir: %w", err)
	}
	e.pgBin = strings.TrimSpace(string(out))
	for _, b := range []string{"initdb", "pg_ctl", "postgres", "psql", "pgbench"} {
		if _, err := os.Stat(filepath.Join(e.pgBin, b)); err != nil {
			return nil, fmt.Errorf("bench: %s is not in %s: install postgresql-15 and postgresql-contrib", b, e.pgBin)
		}
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup(o.pgUser())
		if err != nil {
			return nil, fmt.Errorf("bench: running as root, PostgreSQL needs an unprivileged user: %w", err)
		}
		e.uid, _ = strconv.Atoi(u.Uid)
		e.gid, _ = strconv.Atoi(u.Gid)
		e.cred = &syscall.Credential{Uid: uint32(e.uid), Gid: uint32(e.gid), NoSetGroups: true}
	}
	parent := o.WorkDir
	if parent == "" {
		parent = os.TempDir()
	}
	e.dir, err = os.MkdirTemp(parent, "gbc-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := e.chown(e.dir); err != nil {
		_ = os.RemoveAll(e.dir)
		return nil, err
	}
	if err := os.Chmod(e.dir, 0o755); err != nil {
		_ = os.RemoveAll(e.dir)
		return nil, fmt.Errorf("bench: %w", err)
	}
	home := filepath.Join(e.dir, "home")
	if err := e.mkdir(home); err != nil {
		_ = os.RemoveAll(e.dir)
		return nil, err
	}
	e.gbcBin = filepath.Join(e.dir, "bin")
	if err := os.Mkdir(e.gbcBin, 0o755); err != nil {
		_ = os.RemoveAll(e.dir)
		return nil, fmt.Errorf("bench: %w", err)
	}
	if needGBC {
		if err := copyGBC(o.GBCDir, e.gbcBin); err != nil {
			_ = os.RemoveAll(e.dir)
			return nil, err
		}
	}
	path := e.gbcBin + string(os.PathListSeparator) + e.pgBin + string(os.PathListSeparator) + os.Getenv("PATH")
	e.procEnv = []string{
		"PATH=" + path,
		"HOME=" + home,
		"LANG=C.UTF-8",
		"TZ=UTC",
	}
	return e, nil
}

// mkdir creates a directory owned by the PostgreSQL user.
func (e *env) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return e.chown(dir)
}

// mkdir0700 creates a private directory owned by the PostgreSQL user, as
// PostgreSQL wants its data directories.
func (e *env) mkdir0700(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return e.chown(dir)
}

func (e *env) chown(path string) error {
	if e.cred == nil {
		return nil
	}
	if err := os.Chown(path, e.uid, e.gid); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// writeFile writes a file owned by the PostgreSQL user.
func (e *env) writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return e.chown(path)
}

// removeAll removes a directory the harness made (a data directory the
// PostgreSQL user owns is removable by root or by that same user).
func (e *env) removeAll(dir string) {
	if err := os.RemoveAll(dir); err != nil {
		e.log.printf("warning: remove %s: %v", dir, err)
	}
}

// close stops everything still running and, unless keep, removes the run's
// directory.
func (e *env) close(keep bool) {
	e.mu.Lock()
	cs := make([]*cluster, 0, len(e.clusters))
	for c := range e.clusters {
		cs = append(cs, c)
	}
	bgs := e.bgs
	e.bgs = nil
	e.mu.Unlock()
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := c.stop(ctx, "immediate"); err != nil {
			e.log.printf("warning: %v", err)
		}
		cancel()
	}
	for i := len(bgs) - 1; i >= 0; i-- {
		bgs[i].stop(10 * time.Second)
	}
	if keep {
		e.log.printf("kept %s", e.dir)
		return
	}
	e.removeAll(e.dir)
}

// track remembers a background server so that close stops it.
func (e *env) track(b *background) {
	e.mu.Lock()
	e.bgs = append(e.bgs, b)
	e.mu.Unlock()
}

// copyGBC copies the multi-call gbc binary into dst and recreates its gbc-*
// links: the checkout may sit under a home directory the PostgreSQL user
// cannot enter, and a concurrent `make build` must not swap the binary in
// the middle of a run.
func copyGBC(srcDir, dst string) error {
	src := ""
	if srcDir != "" {
		src = filepath.Join(srcDir, "gbc")
	} else if p, err := exec.LookPath("gbc"); err == nil {
		src = p
	}
	if src == "" {
		return errors.New("bench: gbc is not in PATH: run `make build` and put ./bin in PATH (make bench does)")
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("bench: no gbc binary: run `make build`: %w", err)
	}
	to := filepath.Join(dst, "gbc")
	if err := copyFile(src, to, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(to, "--list-commands").Output()
	if err != nil {
		return fmt.Errorf("bench: %s --list-commands: %w", to, err)
	}
	for _, name := range strings.Fields(string(out)) {
		if !strings.HasPrefix(name, "gbc-") || strings.Contains(name, "/") {
			continue
		}
		if err := os.Symlink("gbc", filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("bench: copy %s: %w", from, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return os.Chmod(to, mode)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// dirSize returns the bytes and regular files under dir, skipping the
// top-level entries named in skip.
func dirSize(dir string, skip ...string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // a file removed under us (temp files of a live cluster)
			}
			return err
		}
		if d.IsDir() && filepath.Dir(p) == dir {
			for _, s := range skip {
				if d.Name() == s {
					return filepath.SkipDir
				}
			}
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return nil
			}
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files, err
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
