// Command demo is `make demo`: a point-in-time recovery drill on a
// throwaway PostgreSQL cluster.
//
// It initdb's a cluster, archives its WAL with gbc-wal-archive into a
// file:// store, loads pgbench data, takes a backup with gbc-backup, writes
// more, notes the time, drops a table, then restores to that time with
// gbc-restore into a new directory, starts it, waits for the end of
// recovery, and checks that the table is back with the rows it had.
// Everything lives in one temporary directory, removed at the end
// (-keep, or GBC_DEMO_KEEP=1, keeps it), and no server outlives the demo,
// whether it passes, fails or is interrupted. As root, PostgreSQL and gbc
// run as an unprivileged user (postgres, or a gbcdemo system user created
// for it). PostgreSQL itself is run by package pgrun.
//
//	go run ./scripts/demo [-gbc-bin bin] [-pg-bindir DIR] [-scale N] [-keep]
//
// GBC_DEMO_SCALE is the default of -scale, the pgbench scale (10: about
// 150 MB).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
)

const server = "demo" // the SERVER_NAME in the store

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	gbcBin := fs.String("gbc-bin", "bin", "directory of the gbc build (make build)")
	pgBinDir := fs.String("pg-bindir", "", "PostgreSQL's bindir (default: pg_config --bindir, else postgres in PATH)")
	scale := fs.Int("scale", envInt("GBC_DEMO_SCALE", 10), "pgbench scale (default $GBC_DEMO_SCALE, else 10: about 150 MB)")
	keep := fs.Bool("keep", os.Getenv("GBC_DEMO_KEEP") != "", "keep the temporary directory (default: $GBC_DEMO_KEEP set)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := setUp(*gbcBin, *pgBinDir)
	if err == nil {
		defer d.cleanUp(*keep)
		err = d.drill(ctx, *scale)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// demo is one run: its directory, who runs PostgreSQL and gbc, and the
// servers to stop at the end.
type demo struct {
	pg      *pgrun.Install
	user    *pgrun.User
	work    string // everything of the run, removed at the end
	bin     string // the copy of the gbc build, reachable by user
	store   string // file:// URL of the store
	servers []*pgrun.Server
}

func setUp(gbcBin, pgBinDir string) (*demo, error) {
	pg, err := pgrun.Find(pgBinDir)
	if err != nil {
		return nil, fmt.Errorf("%w: install postgresql-15 (initdb, pgbench)", err)
	}
	if err := pg.Require("initdb", "pgbench"); err != nil {
		return nil, fmt.Errorf("%w: install postgresql-15 and postgresql-contrib", err)
	}
	if _, err := os.Stat(filepath.Join(gbcBin, "gbc")); err != nil {
		return nil, fmt.Errorf("%s not found: run make build (make demo does)", filepath.Join(gbcBin, "gbc"))
	}
	// PostgreSQL refuses to run as root.
	u, err := pgrun.ServerUser("postgres", "gbcdemo")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "gbc-demo.")
	if err != nil {
		return nil, err
	}
	d := &demo{pg: pg, user: u, work: work, bin: filepath.Join(work, "bin"), store: "file://" + filepath.Join(work, "store")}
	// The gbc binaries go where the unprivileged user can run them (the
	// checkout may sit in a private home directory), and a concurrent
	// `make build` cannot swap them.
	err = os.Chmod(work, 0o755)
	if err == nil {
		err = copyDir(gbcBin, d.bin)
	}
	if err == nil {
		err = os.Mkdir(filepath.Join(work, "store"), 0o755)
	}
	if err == nil {
		err = u.ChownAll(work)
	}
	if err != nil {
		_ = os.RemoveAll(work)
		return nil, err
	}
	return d, nil
}

// cleanUp stops every server and removes the run's directory.
func (d *demo) cleanUp(keep bool) {
	for _, s := range d.servers {
		if err := s.Halt(); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		}
	}
	if keep {
		fmt.Printf("demo: kept %s\n", d.work)
		return
	}
	_ = os.RemoveAll(d.work)
}

func (d *demo) drill(ctx context.Context, scale int) error {
	primary := filepath.Join(d.work, "primary")
	restored := filepath.Join(d.work, "restored")

	say("initdb a throwaway PostgreSQL cluster (%s)", d.pg.Version)
	if err := d.pg.InitDB(ctx, d.user, primary, pgrun.InitOptions{Env: d.env()}); err != nil {
		return err
	}
	archive := fmt.Sprintf("%s %s %s %%p", filepath.Join(d.bin, "gbc-wal-archive"), d.store, server)
	err := pgrun.AppendConf(filepath.Join(primary, "postgresql.conf"), "gbc demo", map[string]string{
		"wal_level":       "replica",
		"archive_mode":    "on",
		"archive_command": archive,
	})
	if err != nil {
		return err
	}
	fmt.Printf("archive_command = %s\n", pgrun.Quote(archive))
	p, err := d.start(ctx, primary, "primary.log")
	if err != nil {
		return err
	}
	pgEnv := []string{"PGHOST=" + d.work, "PGPORT=" + strconv.Itoa(p.Port()), "PGUSER=" + pgrun.Superuser, "PGDATABASE=postgres"}

	say("pgbench -i -s %d", scale)
	out, err := d.output(ctx, pgEnv, d.pg.Path("pgbench"), "-q", "-i", "-s", strconv.Itoa(scale))
	if err != nil {
		return err
	}
	fmt.Println(lastLine(out))

	say("gbc-backup %s %s", d.store, server)
	t0 := time.Now()
	if err := d.show(ctx, pgEnv, "gbc-backup", "--name", "before-the-mistake", d.store, server); err != nil {
		return err
	}
	backup := time.Since(t0)
	if err := d.show(ctx, nil, "gbc-backup-list", d.store, server); err != nil {
		return err
	}

	say("more writes after the backup (pgbench -T 5)")
	out, err = d.output(ctx, pgEnv, d.pg.Path("pgbench"), "-T", "5", "-c", "2")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		if pgbenchSummary.MatchString(l) {
			fmt.Println(l)
		}
	}
	rows, balance, err := accounts(ctx, p)
	if err != nil {
		return err
	}
	target, err := p.Query(ctx, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
	if err != nil {
		return err
	}
	fmt.Printf("pgbench_accounts: %s rows, sum(abalance) = %s at %s\n", rows, balance, target)
	time.Sleep(time.Second) // the mistake comes strictly after the target

	say("the mistake: DROP TABLE pgbench_accounts")
	if _, err := p.Query(ctx, "DROP TABLE pgbench_accounts"); err != nil {
		return err
	}
	seg, last, err := switchAndWaitArchived(ctx, p, time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("WAL up to %s archived (last archived: %s)\n", seg, last)

	say("gbc-restore --target-time '%s' %s %s auto %s", target, d.store, server, restored)
	t0 = time.Now()
	err = d.show(ctx, nil, "gbc-restore", "--target-time", target, "--target-action", "promote", "--disable-archiving",
		d.store, server, "auto", restored)
	if err != nil {
		return err
	}
	restore := time.Since(t0)

	say("start the restored cluster and let it replay WAL up to the target")
	t0 = time.Now()
	r, err := d.start(ctx, restored, "restored.log")
	if err != nil {
		return err
	}
	if err := r.WaitRecovered(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("the restored cluster did not finish recovery: %w", err)
	}
	replay := time.Since(t0)
	gotRows, gotBalance, err := accounts(ctx, r)
	if err != nil {
		return err
	}
	fmt.Printf("restored pgbench_accounts: %s rows, sum(abalance) = %s\n", gotRows, gotBalance)

	say("result")
	for _, m := range []struct {
		what string
		took time.Duration
	}{{"backup (gbc-backup):", backup}, {"restore (gbc-restore):", restore}, {"WAL replay to the target + start:", replay}} {
		fmt.Printf("%-34s %.2f s\n", m.what, m.took.Seconds())
	}
	if gotRows != rows || gotBalance != balance {
		return fmt.Errorf("MISMATCH: expected %s rows and balance %s, got %s and %s", rows, balance, gotRows, gotBalance)
	}
	fmt.Printf("OK: the dropped table is back with all %s rows, as they were at %s.\n", rows, target)
	return nil
}

var pgbenchSummary = regexp.MustCompile(`^(number of transactions actually processed|tps)`)

// start starts a server on dataDir (a free port, the socket in the run's
// directory, no TCP), to be stopped by cleanUp.
func (d *demo) start(ctx context.Context, dataDir, log string) (*pgrun.Server, error) {
	s, err := pgrun.Start(ctx, pgrun.Config{
		Install:      d.pg,
		User:         d.user,
		DataDir:      dataDir,
		SocketDir:    d.work,
		LogPath:      filepath.Join(d.work, log),
		Env:          d.env(),
		StartTimeout: 5 * time.Minute,
		Chown:        true,
	})
	if err != nil {
		return nil, err
	}
	d.servers = append(d.servers, s)
	return s, nil
}

// accounts returns the row count and the balance sum of pgbench_accounts.
func accounts(ctx context.Context, s *pgrun.Server) (rows, balance string, err error) {
	if rows, err = s.Query(ctx, "SELECT count(*) FROM pgbench_accounts"); err != nil {
		return "", "", err
	}
	balance, err = s.Query(ctx, "SELECT sum(abalance) FROM pgbench_accounts")
	return rows, balance, err
}

// switchAndWaitArchived completes the current WAL segment and waits until
// the archiver has stored it.
func switchAndWaitArchived(ctx context.Context, s *pgrun.Server, timeout time.Duration) (seg, last string, err error) {
	if seg, err = s.Query(ctx, "SELECT pg_walfile_name(pg_switch_wal())"); err != nil {
		return "", "", err
	}
	deadline := time.Now().Add(timeout)
	for {
		if last, err = s.Query(ctx, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"); err != nil {
			return "", "", err
		}
		if last >= seg || time.Now().After(deadline) {
			return seg, last, nil
		}
		select {
		case <-ctx.Done():
			return "", "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// env is the environment of everything run as the PostgreSQL user: HOME
// in the run's directory (root's is not readable by it).
func (d *demo) env() []string { return append(os.Environ(), "HOME="+d.work) }

// command prepares a program run as the PostgreSQL user in the run's
// directory, killed with the demo.
func (d *demo) command(ctx context.Context, env []string, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(d.env(), env...)
	cmd.Dir = d.work
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d.user.Apply(cmd)
	return cmd
}

// show runs a gbc command with its output on the terminal.
func (d *demo) show(ctx context.Context, env []string, name string, args ...string) error {
	cmd := d.command(ctx, env, filepath.Join(d.bin, name), args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// output runs a program and returns its combined output.
func (d *demo) output(ctx context.Context, env []string, path string, args ...string) (string, error) {
	out, err := d.command(ctx, env, path, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", filepath.Base(path), err, out)
	}
	return string(out), nil
}

func say(format string, args ...any) { fmt.Printf("\n== %s\n", fmt.Sprintf(format, args...)) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// copyDir copies the regular files (mode a+rx) and symlinks (the gbc-*
// links of the multi-call binary) of src into a new directory dst.
func copyDir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(from)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				return err
			}
		case e.Type().IsRegular():
			if err := copyFile(from, to); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(from, to string) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	_, err = io.Copy(out, in)
	return err
}
