package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGSuperuser is the superuser initdb creates (-U).
const PGSuperuser = "postgres"

// PGOptions configure StartPostgres (and StartFrom).
type PGOptions struct {
	// Version is the major version to run, e.g. 17 or 18 for a feature
	// they bring; 0 runs the default installation (15 on CI). The package
	// documentation says where each version is found.
	Version int
	// ArchiveCommand, when set, turns archive_mode on with this command.
	// Store.CommandLine builds one.
	ArchiveCommand string
	// ArchiveMode overrides archive_mode ("on", "always", "off").
	ArchiveMode string
	// WALSegmentSizeMB is initdb's --wal-segsize (a power of 2, 1 to 1024);
	// 0 keeps PostgreSQL's 16.
	WALSegmentSizeMB int
	// DataChecksums runs initdb with --data-checksums.
	DataChecksums bool
	// Settings are extra postgresql.conf settings, written after the
	// harness's own (so they win). Values are quoted by the harness.
	Settings map[string]string
	// Env (KEY=VALUE) is added to the server's environment, and so to
	// archive_command and restore_command: pass Store.Env here.
	Env []string
	// Port to listen on; 0 picks a free one.
	Port int
	// StartTimeout bounds the wait for the server to accept connections
	// (default 2 minutes; StartFrom: 5 minutes, for recovery).
	StartTimeout time.Duration
}

// Cluster is a running (or stopped) PostgreSQL server owned by one test.
// It runs as PGUser (never root), listens on 127.0.0.1:Port and on a unix
// socket in SocketDir, trusts every local connection, and is stopped and
// removed when the test ends. pgrun runs it; the Cluster adds the test's
// view (t.Fatal, a connection pool, the gbc commands' environment).
type Cluster struct {
	DataDir   string
	Port      int
	SocketDir string
	LogPath   string // the server's stderr, kept across restarts
	BinDir    string // PostgreSQL's bindir
	Version   int    // major version, e.g. 15

	opts PGOptions
	base string // per-cluster temp dir: socket, log, HOME
	pg   *pgrun.Install
	user *pgrun.User

	mu      sync.Mutex
	srv     *pgrun.Server // the last start; nil before the first
	pool    *pgxpool.Pool
	started bool // once: the port is then fixed
}

// StartPostgres initdb's a new cluster in a temp dir and starts it.
//
// When the tests run as root, initdb, the server and every tool the
// Cluster runs use the unprivileged PGUser. The server's PATH starts with
// the copy of the gbc commands (BinDir) when a build is present, so
// archive_command may name gbc-wal-archive bare.
func StartPostgres(t testing.TB, opts PGOptions) *Cluster {
	t.Helper()
	c := newCluster(t, opts)
	c.DataDir = filepath.Join(c.base, "data")
	start := time.Now()
	err := c.pg.InitDB(context.Background(), c.user, c.DataDir, pgrun.InitOptions{
		Superuser:        PGSuperuser,
		WALSegmentSizeMB: opts.WALSegmentSizeMB,
		DataChecksums:    opts.DataChecksums,
		Env:              c.serverEnv(),
	})
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Logf("$ initdb -D %s  # %v", c.DataDir, time.Since(start).Round(time.Millisecond))
	conf := map[string]string{
		"wal_level":             "replica",
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"max_connections":       "50",
		"shared_buffers":        "32MB",
		"fsync":                 "off",
		"log_line_prefix":       "%m [%p] ",
	}
	mode := opts.ArchiveMode
	if mode == "" && opts.ArchiveCommand != "" {
		mode = "on"
	}
	if mode != "" {
		conf["archive_mode"] = mode
	}
	if opts.ArchiveCommand != "" {
		conf["archive_command"] = opts.ArchiveCommand
	}
	c.appendConf(t, "written by the gbc e2e harness", conf)
	c.Start(t)
	return c
}

// StartFrom starts a second cluster on dataDir, e.g. one gbc-restore wrote
// into a NewEmptyDataDir, with this cluster's options (and so its Env).
// dataDir and its tablespaces are chmod'ed 0700 and given to PGUser. port
// 0 picks a free port. Port, socket and listen address are set on the
// server's command line, so they override the restored configuration.
func (c *Cluster) StartFrom(t testing.TB, dataDir string, port int) *Cluster {
	t.Helper()
	opts := c.opts
	opts.Port = port
	opts.ArchiveCommand, opts.ArchiveMode, opts.Settings = "", "", nil
	return StartPostgresFrom(t, dataDir, opts)
}

// StartPostgresFrom starts a cluster on an existing data directory (see
// StartFrom). opts.ArchiveCommand, ArchiveMode and Settings, when set, are
// appended to its postgresql.conf; postgresql.auto.conf, where gbc-restore
// writes the recovery settings, still wins over them.
func StartPostgresFrom(t testing.TB, dataDir string, opts PGOptions) *Cluster {
	t.Helper()
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 5 * time.Minute
	}
	c := newCluster(t, opts)
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	c.DataDir = abs
	conf := map[string]string{}
	if opts.ArchiveMode != "" {
		conf["archive_mode"] = opts.ArchiveMode
	}
	if opts.ArchiveCommand != "" {
		conf["archive_command"] = opts.ArchiveCommand
	}
	if len(conf) > 0 || len(opts.Settings) > 0 {
		c.appendConf(t, "added by the gbc e2e harness", conf)
	}
	c.Start(t)
	return c
}

// StartStandby makes a hot standby of this running cluster the way an
// operator does, and starts it: pg_basebackup -R into a NewEmptyDataDir
// (which writes standby.signal, and primary_conninfo pointing at this
// cluster into postgresql.auto.conf), then StartFrom, so that it has this
// cluster's options (and so its Env) and a port of its own. It has the
// primary's postgresql.conf: its archive_mode = on archives on a primary
// only, so the standby archives nothing until it is promoted.
func (c *Cluster) StartStandby(t testing.TB) *Cluster {
	t.Helper()
	dir := NewEmptyDataDir(t)
	c.Run(t, "pg_basebackup", "-D", dir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	return c.StartFrom(t, dir, 0)
}

// WaitReplayed waits until this standby has replayed the WAL up to lsn,
// e.g. its primary's pg_current_wal_lsn(), and fails the test after
// timeout.
func (c *Cluster) WaitReplayed(t testing.TB, lsn string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.QueryString(t, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn) != "t" {
		if time.Now().After(deadline) {
			t.Fatalf("harness: standby has not replayed up to %s after %v (at %s); log tail:\n%s",
				lsn, timeout, c.QueryString(t, "SELECT pg_last_wal_replay_lsn()"), pgrun.Tail(c.LogPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pgInstall finds PostgreSQL once per test binary: $GBC_PG_BINDIR, else
// `pg_config --bindir`, else PATH.
func pgInstall() (*pgrun.Install, error) {
	return reg.pg.get(func() (*pgrun.Install, error) {
		inst, err := pgrun.Find(os.Getenv("GBC_PG_BINDIR"))
		if err != nil {
			return nil, fmt.Errorf("harness: %w; install the PostgreSQL 15 server (Debian: postgresql-15; "+
				"scripts/test-deps.sh does it) or set GBC_PG_BINDIR", err)
		}
		if err := inst.Require("initdb"); err != nil {
			return nil, fmt.Errorf("harness: %w", err)
		}
		return inst, nil
	})
}

func newCluster(t testing.TB, opts PGOptions) *Cluster {
	t.Helper()
	inst, err := pgInstall()
	if opts.Version != 0 {
		inst, err = pgInstallMajor(opts.Version)
	}
	if err != nil {
		t.Fatal(err)
	}
	u, err := pgUser()
	if err != nil {
		t.Fatal(err)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	c := &Cluster{BinDir: inst.BinDir, Version: inst.Major, opts: opts, Port: opts.Port, pg: inst, user: u}
	c.base = tempDir(t, "gbc-pg-")
	c.SocketDir = c.base
	if len(c.SocketDir) > 80 {
		t.Fatalf("harness: socket directory %s is too long for a unix socket: set TMPDIR to a shorter path", c.SocketDir)
	}
	c.LogPath = filepath.Join(c.base, "postgres.log")
	if c.Port == 0 {
		c.Port = FreePort(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the PostgreSQL log %s:\n%s", c.LogPath, pgrun.Tail(c.LogPath, 50))
		}
		c.halt()
	})
	return c
}

// appendConf appends settings, then opts.Settings (which win), to
// postgresql.conf.
func (c *Cluster) appendConf(t testing.TB, comment string, settings map[string]string) {
	t.Helper()
	for k, v := range c.opts.Settings {
		settings[k] = v
	}
	if err := pgrun.AppendConf(filepath.Join(c.DataDir, "postgresql.conf"), comment, settings); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// serverEnv is the environment of the server and of every tool run as
// PGUser: this process's, with HOME set to the cluster's own directory
// (the PostgreSQL user may not read root's), PATH starting with the gbc
// commands and PostgreSQL's bindir, libpq variables for this cluster, then
// opts.Env.
func (c *Cluster) serverEnv() []string {
	path := c.BinDir + string(os.PathListSeparator) + os.Getenv("PATH")
	if d, ok := gbcDir(); ok {
		path = d + string(os.PathListSeparator) + path
	}
	env := append(os.Environ(), "HOME="+c.base, "PATH="+path, "LC_ALL=C")
	env = append(env, c.Env()...)
	return append(env, c.opts.Env...)
}

// Env returns libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE) that
// point a client, such as gbc-backup, at this cluster over TCP.
func (c *Cluster) Env() []string {
	return []string{
		"PGHOST=127.0.0.1",
		"PGPORT=" + strconv.Itoa(c.Port),
		"PGUSER=" + PGSuperuser,
		"PGDATABASE=postgres",
		"PGSSLMODE=disable",
	}
}

// ConnString is a libpq key/value connection string for this cluster.
func (c *Cluster) ConnString() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=postgres sslmode=disable", c.Port, PGSuperuser)
}

// Start starts the (stopped) server and waits until it accepts
// connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	for i := 1; ; i++ {
		err := c.start()
		if err == nil {
			c.started = true
			return
		}
		// A first start on a port of our choosing may pick another one;
		// a restart keeps the port the test knows.
		if !errors.Is(err, pgrun.ErrPortInUse) || c.started || c.opts.Port != 0 || i == portAttempts {
			t.Fatal(err)
		}
		c.Port = FreePort(t)
	}
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil && !c.srv.Exited() {
		return errors.New("harness: PostgreSQL is already running")
	}
	start := time.Now()
	srv, err := pgrun.Start(context.Background(), pgrun.Config{
		Install:      c.pg,
		User:         c.user,
		DataDir:      c.DataDir,
		Port:         c.Port,
		SocketDir:    c.SocketDir,
		Listen:       "127.0.0.1",
		LogPath:      c.LogPath,
		Env:          c.serverEnv(),
		Dir:          c.base,
		Superuser:    PGSuperuser,
		StartTimeout: c.opts.StartTimeout,
		// Before the first start: a directory a gbc command run as root
		// may have restored.
		Chown: !c.started,
	})
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	if err := reg.track(srv.Process()); err != nil {
		return err
	}
	c.srv = srv
	logStart("PostgreSQL", c.DataDir, start)
	return nil
}

// Stop shuts the server down (fast mode: SIGINT) and waits for it.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop(func(s *pgrun.Server) error { return s.Stop(2 * time.Minute) }); err != nil {
		t.Fatal(err)
	}
}

// Kill crashes the server: SIGKILL to the postmaster and every backend.
// The next Start goes through crash recovery.
func (c *Cluster) Kill(t testing.TB) {
	t.Helper()
	_ = c.stop(func(s *pgrun.Server) error { s.Kill(); return nil })
}

// Restart stops and starts the server.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}

// Running reports whether the postmaster is running.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv != nil && !c.srv.Exited()
}

// WaitExit waits for the server to stop by itself (e.g. a recovery target
// with recovery_target_action = shutdown) and fails the test on timeout.
func (c *Cluster) WaitExit(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if srv != nil && !srv.WaitExit(timeout) {
		t.Fatalf("harness: PostgreSQL still running after %v", timeout)
	}
	c.mu.Lock()
	c.closePool()
	c.mu.Unlock()
}

// stop closes the pool and stops the server with how (a pgrun.Server
// method), which leaves nothing of it running.
func (c *Cluster) stop(how func(*pgrun.Server) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closePool()
	if c.srv == nil {
		return nil
	}
	err := how(c.srv)
	reg.untrack(c.srv.Process())
	if err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	return nil
}

// halt stops the server at the end of the test: immediate shutdown, then
// SIGKILL.
func (c *Cluster) halt() {
	if err := c.stop((*pgrun.Server).Halt); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

func (c *Cluster) closePool() {
	if c.pool != nil {
		c.pool.Close()
		c.pool = nil
	}
}

// Pool returns a connection pool to this cluster (database postgres, user
// postgres), closed when the server stops.
func (c *Cluster) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := c.getPool()
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func (c *Cluster) getPool() (*pgxpool.Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil {
		return c.pool, nil
	}
	cfg, err := pgxpool.ParseConfig(c.ConnString())
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("harness: connect to PostgreSQL on port %d: %w", c.Port, err)
	}
	c.pool = pool
	return pool, nil
}

// sqlTimeout bounds one Exec or QueryString.
const sqlTimeout = 5 * time.Minute

// Exec runs SQL (several statements are allowed when there are no
// arguments) and fails the test on error.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if err := c.ExecErr(sql, args...); err != nil {
		t.Fatalf("harness: %s: %v", shortSQL(sql), err)
	}
}

// ExecErr is Exec returning the error, for statements expected to fail.
func (c *Cluster) ExecErr(sql string, args ...any) error {
	pool, err := c.getPool()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	_, err = pool.Exec(ctx, sql, args...)
	return err
}

// QueryRow runs a query returning one row; Scan it. Errors surface from
// Scan.
func (c *Cluster) QueryRow(t testing.TB, sql string, args ...any) pgx.Row {
	t.Helper()
	return c.Pool(t).QueryRow(context.Background(), sql, args...)
}

// QueryString runs a query returning one value and returns it in
// PostgreSQL's text form ("" for NULL). It fails the test on error.
func (c *Cluster) QueryString(t testing.TB, sql string, args ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sqlTimeout)
	defer cancel()
	var s *string
	all := append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
	if err := c.Pool(t).QueryRow(ctx, sql, all...).Scan(&s); err != nil {
		t.Fatalf("harness: %s: %v", shortSQL(sql), err)
	}
	if s == nil {
		return ""
	}
	return *s
}

// QueryInt is QueryString for an integer result.
func (c *Cluster) QueryInt(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	s := c.QueryString(t, sql, args...)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("harness: %s: %q is not an integer", shortSQL(sql), s)
	}
	return n
}

func shortSQL(sql string) string {
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 120 {
		sql = sql[:120] + "..."
	}
	return sql
}

// SwitchWAL writes a little WAL (so the switch is never a no-op), switches
// to a new segment, and returns the name of the segment it completed.
func (c *Cluster) SwitchWAL(t testing.TB) string {
	t.Helper()
	c.Exec(t, "SELECT pg_current_xact_id()")
	return c.QueryString(t, "SELECT pg_walfile_name(pg_switch_wal())")
}

// WaitArchived waits until PostgreSQL reports walName (a segment or a
// history file) archived, and fails the test with the archiver's state
// after timeout.
func (c *Cluster) WaitArchived(t testing.TB, walName string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	done := filepath.Join(c.DataDir, "pg_wal", "archive_status", walName+".done")
	for {
		if _, err := os.Stat(done); err == nil {
			return
		}
		var last, failed, failedAt *string
		var nfail int64
		err := c.Pool(t).QueryRow(context.Background(),
			"SELECT last_archived_wal, failed_count, last_failed_wal, last_failed_time::text FROM pg_stat_archiver").
			Scan(&last, &nfail, &failed, &failedAt)
		if err != nil {
			t.Fatalf("harness: read pg_stat_archiver: %v", err)
		}
		if last != nil && (*last == walName || (len(*last) == 24 && len(walName) == 24 && *last >= walName)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: %s not archived after %v: last archived %s, %d failures, last failed %s at %s; log tail:\n%s",
				walName, timeout, deref(last), nfail, deref(failed), deref(failedAt), pgrun.Tail(c.LogPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitRecovered waits until the server has left recovery (promoted).
func (c *Cluster) WaitRecovered(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if srv == nil {
		t.Fatal("harness: WaitRecovered on a cluster never started")
	}
	if err := srv.WaitRecovered(context.Background(), timeout); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// NewEmptyDataDir returns a fresh, empty directory (mode 0700, owned by
// PGUser) for a restore to fill; StartFrom starts it. It is removed when
// the test ends.
func (c *Cluster) NewEmptyDataDir(t testing.TB) string {
	t.Helper()
	return NewEmptyDataDir(t)
}

// NewEmptyDataDir is Cluster.NewEmptyDataDir without a cluster.
func NewEmptyDataDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(tempDir(t, "gbc-pgdata-"), "data")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	ChownToPG(t, d)
	return d
}
