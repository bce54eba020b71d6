package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MinVersion is the oldest server gbc supports (server_version_num): the
// backup API it uses, pg_backup_start/pg_backup_stop and the new-style
// BASE_BACKUP options, appeared in PostgreSQL 15.
const MinVersion = 150000

// ErrUnsupportedVersion is wrapped by the error for a server older than
// MinVersion.
var ErrUnsupportedVersion = errors.New("unsupported PostgreSQL version")

// Conn is one SQL session with the server. The backup API must run on one
// held session: a non-exclusive backup started by pg_backup_start belongs to
// its session, is ended by pg_backup_stop on that same session, and is
// aborted by the server if the session ends first (so a killed gbc-backup
// never leaves the server in backup mode).
type Conn struct {
	c             *pgx.Conn
	version       int
	versionString string
}

// ParseConnString parses a libpq connection string or URI. Whatever it does
// not set comes from the libpq environment (PGHOST, PGPORT, PGUSER,
// PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE, ...) and defaults, which
// pgx reads the way libpq does. appName becomes application_name unless the
// string or PGAPPNAME chose one, so that pg_stat_activity shows who is there.
func ParseConnString(connString, appName string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, connStringError(err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok && appName != "" {
		cfg.RuntimeParams["application_name"] = appName
	}
	return cfg, nil
}

// Connect opens a session and refuses servers older than MinVersion.
func Connect(ctx context.Context, connString, appName string) (*Conn, error) {
	cfg, err := ParseConnString(connString, appName)
	if err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	conn := &Conn{c: c}
	if err := conn.checkVersion(); err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// connStringError reports a connection string that cannot be parsed without
// quoting it: pgx redacts passwords only on a best-effort basis, and the
// message ends up in logs.
func connStringError(err error) error {
	msg := "invalid connection string: use libpq's key=value or postgres:// URI syntax"
	if u := errors.Unwrap(err); u != nil {
		msg += " (" + u.Error() + ")"
	}
	return errors.New(msg)
}

func (c *Conn) checkVersion() error {
	pc := c.c.PgConn()
	v, s, err := parseServerVersion(pc.ParameterStatus("server_version"))
	if err != nil {
		return err
	}
	c.version, c.versionString = v, s
	return checkVersion(v, s)
}

func checkVersion(v int, s string) error {
	if v < MinVersion {
		return fmt.Errorf("%w: the server runs PostgreSQL %s; gbc needs PostgreSQL 15 or later (it uses pg_backup_start/pg_backup_stop)", ErrUnsupportedVersion, s)
	}
	return nil
}

// parseServerVersion turns the server_version parameter ("15.18",
// "15.18 (Debian 15.18-1.pgdg120+1)", "16beta1") into a
// server_version_num-like number (150018) and the short version string.
func parseServerVersion(s string) (int, string, error) {
	short, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	digits := func(x string) string {
		i := 0
		for i < len(x) && x[i] >= '0' && x[i] <= '9' {
			i++
		}
		return x[:i]
	}
	majorS, rest, _ := strings.Cut(short, ".")
	major, err := strconv.Atoi(digits(majorS))
	if err != nil {
		return 0, "", fmt.Errorf("cannot parse server_version %q", s)
	}
	minor, _ := strconv.Atoi(digits(rest)) // "16beta1" has none: minor 0
	return major*10000 + minor, short, nil
}

// Close ends the session. A backup still in progress on it is aborted by
// the server.
func (c *Conn) Close(ctx context.Context) error { return c.c.Close(ctx) }

// Ping checks that the session is still alive. A backup whose session died
// was aborted by the server and is worth stopping at once.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.c.Ping(ctx); err != nil {
		return fmt.Errorf("PostgreSQL session: %w", err)
	}
	return nil
}

// Version is server_version_num, e.g. 150018.
func (c *Conn) Version() int { return c.version }

// VersionString is the server's version as people write it, e.g. "15.18".
func (c *Conn) VersionString() string { return c.versionString }

// SystemIdentifier is the cluster's database system identifier, in decimal
// as pg_controldata prints it. It tells clusters apart: WAL and backups of
// one cluster are useless to another.
func (c *Conn) SystemIdentifier(ctx context.Context) (string, error) {
	var id int64
	if err := c.c.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&id); err != nil {
		return "", fmt.Errorf("read system identifier (pg_control_system): %w", err)
	}
	// The identifier is an unsigned 64-bit number that SQL shows as bigint.
	return strconv.FormatUint(uint64(id), 10), nil
}

// CatalogVersion is the catalog version number (catalog_version_no), which
// names a tablespace's version directory: PG_<major>_<catalog version>.
func (c *Conn) CatalogVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := c.c.QueryRow(ctx, "SELECT catalog_version_no::int8 FROM pg_control_system()").Scan(&v); err != nil {
		return 0, fmt.Errorf("read catalog version (pg_control_system): %w", err)
	}
	return v, nil
}

// Checkpoint returns the redo LSN and timeline of the last checkpoint (or,
// on a standby, restartpoint) in the control file. Every backup started
// afterwards begins at or after that redo point, which makes it a safe lower
// bound for the WAL a backup about to start will need.
func (c *Conn) Checkpoint(ctx context.Context) (redo LSN, tli uint32, err error) {
	var s string
	var t int32
	if err := c.c.QueryRow(ctx, "SELECT redo_lsn::text, timeline_id FROM pg_control_checkpoint()").Scan(&s, &t); err != nil {
		return 0, 0, fmt.Errorf("read last checkpoint (pg_control_checkpoint): %w", err)
	}
	redo, err = ParseLSN(s)
	return redo, uint32(t), err
}

// InRecovery tells whether the server is a standby (or still recovering).
func (c *Conn) InRecovery(ctx context.Context) (bool, error) {
	var b bool
	if err := c.c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&b); err != nil {
		return false, fmt.Errorf("pg_is_in_recovery: %w", err)
	}
	return b, nil
}

// Settings returns the current value of each named setting, as
// current_setting() shows it (with units, e.g. "16MB"). Unknown names are
// absent from the map; settings the role may not read are an error.
func (c *Conn) Settings(ctx context.Context, names ...string) (map[string]string, error) {
	rows, err := c.c.Query(ctx, "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1)", names)
	if err != nil {
		return nil, fmt.Errorf("read settings %s: %w", strings.Join(names, ", "), err)
	}
	m := make(map[string]string, len(names))
	var name, value string
	_, err = pgx.ForEachRow(rows, []any{&name, &value}, func() error {
		m[name] = value
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read settings %s: %w", strings.Join(names, ", "), err)
	}
	return m, nil
}

// Setting returns one setting's current value.
func (c *Conn) Setting(ctx context.Context, name string) (string, error) {
	var v string
	if err := c.c.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "", fmt.Errorf("read setting %s: %w", name, err)
	}
	return v, nil
}

// WALSegmentSize is wal_segment_size in bytes.
func (c *Conn) WALSegmentSize(ctx context.Context) (int64, error) {
	var setting, unit string
	// pg_settings has the raw number and its unit, which avoids parsing
	// current_setting's "16MB".
	err := c.c.QueryRow(ctx, "SELECT setting, coalesce(unit, '') FROM pg_settings WHERE name = 'wal_segment_size'").Scan(&setting, &unit)
	if err != nil {
		return 0, fmt.Errorf("read wal_segment_size: %w", err)
	}
	return segmentSize(setting, unit)
}

func segmentSize(setting, unit string) (int64, error) {
	n, err := strconv.ParseInt(setting, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("wal_segment_size %q: %w", setting, err)
	}
	mult, err := unitBytes(unit)
	if err != nil {
		return 0, fmt.Errorf("wal_segment_size: %w", err)
	}
	n *= mult
	if !ValidSegmentSize(n) {
		return 0, fmt.Errorf("wal_segment_size %d is not a power of two from 1 MiB to 1 GiB", n)
	}
	return n, nil
}

// unitBytes is the size of a pg_settings memory unit ("B", "kB", "8kB",
// "MB", ...).
func unitBytes(unit string) (int64, error) {
	num := int64(1)
	i := 0
	for i < len(unit) && unit[i] >= '0' && unit[i] <= '9' {
		i++
	}
	if i > 0 {
		n, err := strconv.ParseInt(unit[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unit %q: %w", unit, err)
		}
		num = n
	}
	switch unit[i:] {
	case "B", "":
		return num, nil
	case "kB":
		return num << 10, nil
	case "MB":
		return num << 20, nil
	case "GB":
		return num << 30, nil
	}
	return 0, fmt.Errorf("unknown unit %q", unit)
}

// DataDirectory is the server's data_directory. Reading it needs superuser
// or pg_read_all_settings.
func (c *Conn) DataDirectory(ctx context.Context) (string, error) {
	return c.Setting(ctx, "data_directory")
}

// Tablespace is a user tablespace (pg_default and pg_global live inside the
// data directory and are not listed).
type Tablespace struct {
	OID      uint32
	Name     string
	Location string
}

// Tablespaces lists the user tablespaces, in OID order.
func (c *Conn) Tablespaces(ctx context.Context) ([]Tablespace, error) {
	rows, err := c.c.Query(ctx, `SELECT oid::int8, spcname, pg_tablespace_location(oid)
		FROM pg_tablespace WHERE pg_tablespace_location(oid) <> '' ORDER BY oid`)
	if err != nil {
		return nil, fmt.Errorf("list tablespaces: %w", err)
	}
	var out []Tablespace
	var oid int64
	var t Tablespace
	_, err = pgx.ForEachRow(rows, []any{&oid, &t.Name, &t.Location}, func() error {
		t.OID = uint32(oid)
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tablespaces: %w", err)
	}
	return out, nil
}

// DatabaseSize is the sum of every database's size, a cheap estimate of a
// backup's size for progress reports.
func (c *Conn) DatabaseSize(ctx context.Context) (int64, error) {
	var n int64
	if err := c.c.QueryRow(ctx, "SELECT coalesce(sum(pg_database_size(oid)), 0)::int8 FROM pg_database WHERE datallowconn").Scan(&n); err != nil {
		return 0, fmt.Errorf("estimate database size: %w", err)
	}
	return n, nil
}

// BackupStart starts a non-exclusive backup on this session
// (pg_backup_start) and returns its start LSN. fast asks for an immediate
// checkpoint instead of a spread one.
func (c *Conn) BackupStart(ctx context.Context, label string, fast bool) (LSN, error) {
	var s string
	if err := c.c.QueryRow(ctx, "SELECT pg_backup_start($1, $2)::text", label, fast).Scan(&s); err != nil {
		return 0, fmt.Errorf("pg_backup_start: %w", err)
	}
	return ParseLSN(s)
}

// StopResult is what pg_backup_stop returns: the backup's end LSN and the
// contents of the backup_label and tablespace_map files the backup must
// contain (tablespace_map is empty without user tablespaces).
type StopResult struct {
	LSN           LSN
	BackupLabel   string
	TablespaceMap string
}

// BackupStop ends the backup started on this session (pg_backup_stop).
// With waitForArchive it returns only once the last WAL segment the backup
// needs is archived, which is what makes the backup restorable from the
// archive alone.
func (c *Conn) BackupStop(ctx context.Context, waitForArchive bool) (*StopResult, error) {
	var r StopResult
	var lsn string
	var spc *string
	err := c.c.QueryRow(ctx, "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop($1)", waitForArchive).Scan(&lsn, &r.BackupLabel, &spc)
	if err != nil {
		return nil, fmt.Errorf("pg_backup_stop: %w", err)
	}
	if spc != nil {
		r.TablespaceMap = *spc
	}
	r.LSN, err = ParseLSN(lsn)
	if err != nil {
		return nil, fmt.Errorf("pg_backup_stop: %w", err)
	}
	return &r, nil
}

// SwitchWAL forces a switch to a new WAL segment (pg_switch_wal), so that
// the current one is archived now.
func (c *Conn) SwitchWAL(ctx context.Context) (LSN, error) {
	var s string
	if err := c.c.QueryRow(ctx, "SELECT pg_switch_wal()::text").Scan(&s); err != nil {
		return 0, fmt.Errorf("pg_switch_wal: %w", err)
	}
	return ParseLSN(s)
}

// Exec runs a statement without results; tests and tools use it.
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) error {
	if _, err := c.c.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", firstWord(sql), err)
	}
	return nil
}

// PgConn exposes the low-level connection for callers that need protocol
// details (notices, parameters).
func (c *Conn) PgConn() *pgconn.PgConn { return c.c.PgConn() }

func firstWord(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return "statement"
	}
	return strings.ToUpper(f[0])
}
