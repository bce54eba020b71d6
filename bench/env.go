package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
)

// env is one run's world: its directory, the user that runs PostgreSQL and
// the tools, the binaries, the S3 server, and what must be stopped at the
// end.
type env struct {
	log    *logger
	dir    string      // the run's working directory, readable by the PostgreSQL user
	user   *pgrun.User // runs PostgreSQL and the tools
	pg     *pgrun.Install
	gbcBin string // directory holding the copy of gbc and its gbc-* links
	s3     *s3Server

	// procEnv is the whole environment of every tool, server and client
	// the harness runs.
	procEnv []string

	mu       sync.Mutex
	clusters map[*cluster]struct{} // started and not yet stopped
	bgs      []*pgrun.Process      // background servers (MinIO)
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
	e := &env{log: log, clusters: map[*cluster]struct{}{}}
	var err error
	if e.pg, err = pgrun.Find(o.PGBinDir); err != nil {
		return nil, fmt.Errorf("bench: %w (PostgreSQL 15: postgresql-15, postgresql-contrib)", err)
	}
	if err := e.pg.Require("initdb", "postgres", "psql", "pgbench"); err != nil {
		return nil, fmt.Errorf("bench: %w: install postgresql-15 and postgresql-contrib", err)
	}
	// PostgreSQL refuses to run as root.
	if e.user, err = pgrun.ServerUser(o.pgUser()); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
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
	path := e.gbcBin + string(os.PathListSeparator) + e.pg.BinDir + string(os.PathListSeparator) + os.Getenv("PATH")
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
	if err := e.user.Chown(path); err != nil {
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
	cs := slices.Collect(maps.Keys(e.clusters))
	bgs := slices.Clone(e.bgs)
	e.mu.Unlock()
	for _, c := range cs {
		if err := c.stop(context.Background(), "immediate"); err != nil {
			e.log.printf("warning: %v", err)
		}
	}
	for i := len(bgs) - 1; i >= 0; i-- {
		bgs[i].Terminate(10 * time.Second)
	}
	if keep {
		e.log.printf("kept %s", e.dir)
		return
	}
	e.removeAll(e.dir)
}

// track remembers a background server so that close stops it.
func (e *env) track(b *pgrun.Process) {
	e.mu.Lock()
	e.bgs = append(e.bgs, b)
	e.mu.Unlock()
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
