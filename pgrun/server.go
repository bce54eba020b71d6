package pgrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config describes one start of a server.
type Config struct {
	Install *Install // required
	User    *User    // runs the server (nil: the current user)
	DataDir string   // required

	// Port to listen on, on the socket and on Listen; 0 picks a free one
	// (and Start moves to another if it is taken before the server binds
	// it).
	Port int
	// SocketDir holds the unix socket, through which the Server connects
	// (required; keep it short: a socket path has at most 107 bytes).
	SocketDir string
	// Listen is listen_addresses: "" (the default) listens on the socket
	// only; "127.0.0.1" adds loopback TCP.
	Listen string
	// Settings are given as -c options on the command line, so they win
	// over postgresql.conf and postgresql.auto.conf (a restore drill's
	// own port, archive_mode = off...).
	Settings map[string]string

	LogPath string   // the server's stderr, appended (required)
	Env     []string // the server's whole environment (nil: this process's)
	Dir     string   // working directory ("": SocketDir)

	// Superuser is the role the Server connects as (default Superuser);
	// ConnOptions are more libpq key=value pairs for those connections
	// (e.g. a password the data directory's pg_hba.conf wants).
	Superuser   string
	ConnOptions string

	// StartTimeout bounds Start's wait for connections (default 2
	// minutes; a recovery that must replay much WAL before it accepts
	// connections wants more).
	StartTimeout time.Duration

	// Chown, when User switches, gives DataDir (mode 0700) and the targets
	// of its tablespace links to User before the start: for a directory a
	// root process restored.
	Chown bool
}

// Server is one run of the postmaster.
type Server struct {
	cfg  Config
	port int
	p    *Process
}

// portAttempts is how many free ports Start tries.
const portAttempts = 3

// Start starts a server and waits until it accepts connections from
// Superuser as the server of cfg.DataDir (not another one that happens to
// answer on the port). On error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	for i := 1; ; i++ {
		s, err := Launch(cfg)
		if err != nil {
			return nil, err
		}
		err = s.WaitReady(ctx, cfg.StartTimeout)
		if err == nil {
			return s, nil
		}
		_ = s.Halt()
		if cfg.Port != 0 || !errors.Is(err, ErrPortInUse) || i == portAttempts {
			return nil, err
		}
	}
}

// Launch starts a server and returns at once, for a caller that watches
// the start itself (WaitReady, WaitRecovered, the log). The caller must
// stop it (Halt at least).
func Launch(cfg Config) (*Server, error) {
	if cfg.Install == nil || cfg.DataDir == "" || cfg.SocketDir == "" || cfg.LogPath == "" {
		return nil, errors.New("pgrun: Config needs Install, DataDir, SocketDir and LogPath")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgrun: %w", err)
	}
	cfg.DataDir = dir
	if cfg.Chown {
		if err := giveDataDir(cfg.User, dir); err != nil {
			return nil, err
		}
	}
	port := cfg.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if cfg.Dir == "" {
		cfg.Dir = cfg.SocketDir
	}
	args := []string{"-D", dir, "-p", strconv.Itoa(port), "-k", cfg.SocketDir, "-c", "listen_addresses=" + cfg.Listen}
	keys := make([]string, 0, len(cfg.Settings))
	for k := range cfg.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+cfg.Settings[k])
	}
	p, err := StartProcess(ProcessSpec{
		Name:    "postgres",
		Path:    cfg.Install.Path("postgres"),
		Args:    args,
		Env:     cfg.Env,
		Dir:     cfg.Dir,
		LogPath: cfg.LogPath,
		User:    cfg.User,
		// An immediate shutdown, which stops the backends too, if the
		// caller dies without stopping the server.
		DeathSignal: syscall.SIGQUIT,
	})
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, port: port, p: p}, nil
}

// giveDataDir makes dir a data directory u may start: mode 0700, owned
// by u, with the targets of its tablespace links.
func giveDataDir(u *User, dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pgrun: chmod data directory: %w", err)
	}
	if err := u.ChownAll(dir); err != nil {
		return err
	}
	links, _ := filepath.Glob(filepath.Join(dir, "pg_tblspc", "*"))
	for _, l := range links {
		if target, err := filepath.EvalSymlinks(l); err == nil {
			if err := u.ChownAll(target); err != nil {
				return err
			}
		}
	}
	return nil
}

// Port is the port the server listens on.
func (s *Server) Port() int { return s.port }

// DataDir is the absolute path of its data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Process is the postmaster.
func (s *Server) Process() *Process { return s.p }

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string { return Tail(s.cfg.LogPath, n) }

// Exited reports whether the postmaster has ended.
func (s *Server) Exited() bool { return s.p.Exited() }

// WaitExit waits up to timeout for the server to stop by itself (a
// recovery target with recovery_target_action = shutdown), and reports
// whether it did.
func (s *Server) WaitExit(timeout time.Duration) bool { return s.p.WaitExit(timeout) }

// ConnString is a libpq key/value connection string for the server, over
// its unix socket.
func (s *Server) ConnString() string {
	su := s.cfg.Superuser
	if su == "" {
		su = Superuser
	}
	cs := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", s.cfg.SocketDir, s.port, su)
	if s.cfg.ConnOptions != "" {
		cs += " " + s.cfg.ConnOptions
	}
	return cs
}

// WaitReady waits until the server accepts connections as the server of
// its data directory, and fails early when it exits (wrapping ErrPortInUse
// when its port was taken). timeout 0 is the Config's StartTimeout.
func (s *Server) WaitReady(ctx context.Context, timeout time.Duration) error {
	if timeout == 0 {
		timeout = s.cfg.StartTimeout
	}
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	err := WaitFor(ctx, s.p, timeout, func(ctx context.Context) error {
		dir, err := s.query(ctx, 5*time.Second, "SHOW data_directory")
		if err != nil {
			return err
		}
		if dir != s.cfg.DataDir {
			return fmt.Errorf("port %d is served by another cluster (%s)", s.port, dir)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgrun: PostgreSQL on port %d (%s): %w", s.port, s.cfg.DataDir, err)
	}
	return nil
}

// WaitRecovered waits until the server accepts connections and has left
// recovery (pg_is_in_recovery() is false: recovery reached its end or its
// target and promoted), and fails early when it exits. It fails after
// timeout with the end of the server log.
func (s *Server) WaitRecovered(ctx context.Context, timeout time.Duration) error {
	err := WaitFor(ctx, s.p, timeout, func(ctx context.Context) error {
		v, err := s.query(ctx, 5*time.Second, "SELECT pg_is_in_recovery()")
		if err != nil {
			return err
		}
		if v != "f" {
			return errors.New("still in recovery")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgrun: PostgreSQL on port %d (%s): %w", s.port, s.cfg.DataDir, err)
	}
	return nil
}

// Query runs a query that returns one value, on a connection of its own,
// and returns it in PostgreSQL's text form ("" for NULL). Several
// statements are allowed when there are no args (the last one's value is
// returned, or "" when it returns no row).
func (s *Server) Query(ctx context.Context, sql string, args ...any) (string, error) {
	v, err := s.query(ctx, 0, sql, args...)
	if err != nil {
		return "", fmt.Errorf("pgrun: query PostgreSQL on port %d: %w", s.port, err)
	}
	return v, nil
}

func (s *Server) query(ctx context.Context, timeout time.Duration, sql string, args ...any) (string, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := pgx.Connect(ctx, s.ConnString())
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v *string
	all := append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
	if err := conn.QueryRow(ctx, sql, all...).Scan(&v); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	if v == nil {
		return "", nil
	}
	return *v, nil
}

// Stop shuts the server down in fast mode (SIGINT: sessions are ended,
// a shutdown checkpoint is written) and waits up to timeout; a server
// still running then gets an immediate shutdown, and SIGKILL. It returns
// an error, with the end of the log, when the fast shutdown did not
// finish in time; whatever it returns, nothing of the server is left.
// Stopping a stopped server is not an error.
func (s *Server) Stop(timeout time.Duration) error {
	if s.p.Exited() {
		s.p.Kill() // leftovers of the group, if any
		return nil
	}
	if err := s.p.Signal(syscall.SIGINT); err != nil {
		s.p.Kill()
		return err
	}
	if s.p.WaitExit(timeout) {
		s.p.Kill()
		return nil
	}
	tail := s.LogTail(30)
	_ = s.Halt()
	return fmt.Errorf("pgrun: PostgreSQL (%s) did not stop in fast mode within %v (stopped in immediate mode); log tail:\n%s",
		s.cfg.DataDir, timeout, tail)
}

// Halt stops the server in immediate mode (SIGQUIT: no checkpoint; the
// next start runs crash recovery), then SIGKILL after 15 s, and waits
// until every process of it is gone. It is what a caller defers, so that
// nothing outlives it; halting a stopped server is not an error.
func (s *Server) Halt() error {
	var err error
	if !s.p.Exited() {
		err = s.p.Signal(syscall.SIGQUIT)
		if !s.p.WaitExit(15 * time.Second) {
			err = fmt.Errorf("pgrun: PostgreSQL (%s) did not stop in immediate mode within 15s (killed)", s.cfg.DataDir)
		}
	}
	s.p.Kill()
	return err
}

// Kill crashes the server: SIGKILL to the postmaster and every backend.
// The next start runs crash recovery.
func (s *Server) Kill() { s.p.Kill() }
