package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
)

// walSegmentSize is PostgreSQL's default, which initdb keeps here.
const walSegmentSize = 16 << 20

// cluster is one PostgreSQL cluster of the run.
type cluster struct {
	e      *env
	name   string
	dir    string // PGDATA
	port   int    // 0 until the first start picks one
	sock   string // unix socket directory
	log    string // server log
	server string // the SERVER_NAME / stanza its WAL and backups go under
	// settings are given on the server's command line (they win over
	// every configuration file).
	settings map[string]string
	srv      *pgrun.Server // the running server, nil when stopped
}

// sqlQuote quotes a string for a configuration file or an SQL literal.
func sqlQuote(s string) string { return pgrun.Quote(s) }

// shellQuote quotes one word for sh, leaving simple words (and PostgreSQL's
// %p/%f placeholders) bare.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=%,@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// newCluster runs initdb for a cluster named name under the run's
// directory, with settings appended to postgresql.conf. The port and the
// socket are set on the server's command line when it starts.
func (e *env) newCluster(ctx context.Context, name string, settings map[string]string) (*cluster, error) {
	c := e.clusterAt(name, filepath.Join(e.dir, "pg", name))
	if err := e.mkdir(filepath.Join(e.dir, "pg")); err != nil {
		return nil, err
	}
	if err := e.pg.InitDB(ctx, e.user, c.dir, pgrun.InitOptions{Env: e.procEnv}); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	base := map[string]string{
		"archive_mode":    "on",
		"archive_command": "true",
		"log_checkpoints": "on",
	}
	for k, v := range settings {
		base[k] = v
	}
	if err := pgrun.AppendConf(filepath.Join(c.dir, "postgresql.conf"), "gbc bench", base); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return c, nil
}

// clusterAt is a cluster on an existing data directory.
func (e *env) clusterAt(name, dir string) *cluster {
	return &cluster{e: e, name: name, server: name, dir: dir,
		sock: filepath.Join(e.dir, "sock"),
		log:  filepath.Join(e.dir, "pg", name+".log"),
	}
}

// launch starts the server and leaves it to the caller to wait (wait:
// until it accepts connections). The server gets the run's environment,
// so its archive_command and restore_command see the S3 credentials.
func (c *cluster) launch(ctx context.Context, wait bool) error {
	if err := c.e.mkdir(c.sock); err != nil {
		return err
	}
	cfg := pgrun.Config{
		Install:   c.e.pg,
		User:      c.e.user,
		DataDir:   c.dir,
		Port:      c.port,
		SocketDir: c.sock,
		Settings:  c.settings,
		LogPath:   c.log,
		Env:       c.e.procEnv,
		Dir:       c.e.dir,
		// A large backup's end-of-recovery checkpoint may take long.
		StartTimeout: 10 * time.Minute,
	}
	var srv *pgrun.Server
	var err error
	if wait {
		srv, err = pgrun.Start(ctx, cfg)
	} else {
		srv, err = pgrun.Launch(cfg)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	c.srv, c.port = srv, srv.Port()
	c.e.mu.Lock()
	c.e.clusters[c] = struct{}{}
	c.e.mu.Unlock()
	return nil
}

// start starts the server and waits until it accepts connections.
func (c *cluster) start(ctx context.Context) error { return c.launch(ctx, true) }

// startNoWait starts the server without waiting (a recovering server).
func (c *cluster) startNoWait(ctx context.Context) error { return c.launch(ctx, false) }

// stop stops the server (mode fast or immediate); stopping a stopped
// server is not an error. Nothing of it is left running either way.
func (c *cluster) stop(_ context.Context, mode string) error {
	c.e.mu.Lock()
	delete(c.e.clusters, c)
	c.e.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	var err error
	if mode == "fast" {
		err = c.srv.Stop(5 * time.Minute)
	} else {
		err = c.srv.Halt()
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	return nil
}

// conninfo is a libpq connection string for the cluster.
func (c *cluster) conninfo() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", c.sock, c.port)
}

// sql runs statements with psql, each in its own transaction, and returns
// the output of the last one (unaligned, tuples only).
func (c *cluster) sql(ctx context.Context, statements ...string) (string, error) {
	argv := []string{c.e.pg.Path("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", c.sock, "-p", strconv.Itoa(c.port), "-U", "postgres", "-d", "postgres"}
	for _, s := range statements {
		argv = append(argv, "-c", s)
	}
	m, err := c.e.run(ctx, command{argv: argv})
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.name, err)
	}
	out := strings.TrimSpace(m.Stdout)
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	return out, nil
}

// set changes settings with ALTER SYSTEM and reloads.
func (c *cluster) set(ctx context.Context, settings map[string]string) error {
	var st []string
	for k, v := range settings {
		st = append(st, fmt.Sprintf("ALTER SYSTEM SET %s = %s", k, sqlQuote(v)))
	}
	st = append(st, "SELECT pg_reload_conf()")
	_, err := c.sql(ctx, st...)
	// The archiver reads the new archive_command at its next loop.
	time.Sleep(300 * time.Millisecond)
	return err
}

// pgbench runs pgbench with args against the cluster.
func (c *cluster) pgbench(ctx context.Context, args ...string) (measurement, error) {
	argv := append([]string{c.e.pg.Path("pgbench"), "-h", c.sock, "-p", strconv.Itoa(c.port), "-U", "postgres"}, args...)
	argv = append(argv, "postgres")
	return c.e.run(ctx, command{argv: argv})
}

// lsn returns the current WAL insert location as a byte position.
func (c *cluster) lsn(ctx context.Context) (int64, error) {
	out, err := c.sql(ctx, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSuffix(out, ".0"), 10, 64)
}

// archived returns pg_stat_archiver's archived_count and failed_count.
func (c *cluster) archived(ctx context.Context) (ok, failed int64, err error) {
	out, err := c.sql(ctx, "SELECT archived_count || ' ' || failed_count FROM pg_stat_archiver")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("bench: pg_stat_archiver: %q", out)
	}
	ok, _ = strconv.ParseInt(f[0], 10, 64)
	failed, _ = strconv.ParseInt(f[1], 10, 64)
	return ok, failed, nil
}

// readyFiles counts the segments waiting for archive_command.
func (c *cluster) readyFiles() (int, error) {
	ents, err := os.ReadDir(filepath.Join(c.dir, "pg_wal", "archive_status"))
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n, nil
}

// waitArchived waits until no segment is waiting for archive_command.
func (c *cluster) waitArchived(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.readyFiles()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d segments still not archived after %v; see %s", c.name, n, timeout, c.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dataSize is the size and file count of PGDATA without pg_wal.
func (c *cluster) dataSize() (int64, int, error) {
	return dirSize(c.dir, "pg_wal")
}

// generateWAL writes at least segments WAL segments of bulk inserts (text
// that compresses about as well as OLTP WAL does) and switches to a new
// segment, so that every segment written is complete.
func (c *cluster) generateWAL(ctx context.Context, segments int) error {
	start, err := c.lsn(ctx)
	if err != nil {
		return err
	}
	if _, err := c.sql(ctx, "CREATE TABLE IF NOT EXISTS wal_load (id bigint, payload text)"); err != nil {
		return err
	}
	target := start + int64(segments)*walSegmentSize
	for {
		// About 16 MB of WAL per statement; truncate now and then so that
		// the table (and a restore replaying it) stays small.
		if _, err := c.sql(ctx, insertWAL(50000), "TRUNCATE wal_load"); err != nil {
			return err
		}
		now, err := c.lsn(ctx)
		if err != nil {
			return err
		}
		if now >= target {
			break
		}
	}
	_, err = c.sql(ctx, "SELECT pg_switch_wal()")
	return err
}

// insertWAL is a bulk insert of rows of about 250 bytes: an md5 of random
// input (incompressible hex) and a compressible filler, which gives WAL
// that zstd shrinks to roughly a tenth, like pgbench OLTP WAL.
func insertWAL(rows int) string {
	return fmt.Sprintf("INSERT INTO wal_load SELECT g, md5(random()::text) || repeat('x', 200) FROM generate_series(1, %d) g", rows)
}

// waitLog waits until the server log holds a line containing want, and
// fails early when it shows a FATAL or PANIC line. It returns the time the
// line was seen.
func (c *cluster) waitLog(ctx context.Context, want string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	off := 0 // bytes of complete lines already looked at
	for {
		if b, err := os.ReadFile(c.log); err == nil && len(b) > off {
			chunk := b[off:]
			if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
				chunk = chunk[:i+1]
				off += i + 1
				for _, line := range strings.Split(string(chunk), "\n") {
					if strings.Contains(line, want) {
						return time.Now(), nil
					}
					if strings.Contains(line, "FATAL:") || strings.Contains(line, "PANIC:") {
						return time.Time{}, fmt.Errorf("%s: %s%s", c.name, line, tail(pgrun.Tail(c.log, 20), 3000))
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: no %q in the log after %v%s", c.name, want, timeout, tail(pgrun.Tail(c.log, 20), 3000))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// segmentName is the WAL file name of byte position lsn on timeline tli.
func segmentName(tli int, lsn int64) string {
	seg := lsn / walSegmentSize
	return fmt.Sprintf("%08X%08X%08X", tli, seg/0x100, seg%0x100)
}

// isSegment reports whether name is a WAL segment file name.
func isSegment(name string) bool {
	if len(name) != 24 {
		return false
	}
	for _, r := range name {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}
