package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// Block-level incremental and differential backups on PostgreSQL 15, with
// --method local and --method stream: a full backup, then changes of every
// kind the block map must see (updates of a few pages, a table truncated
// and re-extended, a dropped table, a new database copied with
// STRATEGY FILE_COPY, pgbench load), incrementals and a differential.
// Every backup of the chain is restored to its own end and compared with
// the source as it was then, table by table, then checked by
// pg_verifybackup and pg_amcheck; and a PITR replays through the chain.

// incrTables are the tables compared.
var incrTables = []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history", "marks", "regrow", "hinty"}

// incrState is a fingerprint of every table: its row count and a sum of
// row hashes, and the new database's table.
func incrState(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	var parts []string
	for _, tbl := range incrTables {
		exists := c.QueryInt(t, "SELECT count(*) FROM pg_class WHERE relname = $1 AND relkind = 'r'", tbl)
		if exists == 0 {
			parts = append(parts, tbl+"=absent")
			continue
		}
		parts = append(parts, tbl+"="+c.QueryString(t, fmt.Sprintf("SELECT count(*) || ':' || coalesce(sum(hashtext(x::text)::bigint), 0) FROM %s x", tbl)))
	}
	if c.QueryInt(t, "SELECT count(*) FROM pg_database WHERE datname = 'copied'") == 1 {
		out := c.Run(t, "psql", "-X", "-At", "-d", "copied", "-c", "SELECT count(*) || ':' || coalesce(sum(hashtext(x::text)::bigint), 0) FROM incopy x")
		parts = append(parts, "copied="+strings.TrimSpace(out))
	}
	return strings.Join(parts, " ")
}

func TestIncrementalBackup(t *testing.T) {
	t.Run("local", func(t *testing.T) { testIncremental(t, harness.NewStore(t, "file"), "local") })
	t.Run("stream", func(t *testing.T) { testIncremental(t, harness.NewStore(t, "s3"), "stream") })
	t.Run("refusals", func(t *testing.T) { testIncrementalRefusals(t, harness.NewStore(t, "file")) })
}

// testIncrementalRefusals: every refusal is one line and a clean exit,
// before any record is written.
func testIncrementalRefusals(t *testing.T, st harness.Store) {
	pg := rstPrimary(t, st)
	refuse := func(code int, want string, flags ...string) {
		t.Helper()
		out, errOut, got := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), flags, rstServer)...)
		if got != code || !strings.Contains(errOut, want) {
			t.Errorf("gbc-backup %v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", flags, got, code, want, out, errOut)
		}
	}
	refuse(4, "take a --type full backup first", "--type", "incr")
	refuse(4, "take a --type full backup first", "--type", "diff")
	refuse(2, "--parent needs --type incr", "--parent", "x")
	refuse(2, "use full, incr or diff", "--type", "partial")
	retGBC(t, pg, st, "gbc-backup", nil, rstServer)
	refuse(4, "no such backup", "--type", "incr", "--parent", "nosuchname")
	// A cluster of another system, archiving under the same server name,
	// finds no parent of its own.
	other := rstPrimary(t, st)
	out, errOut, code := other.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), []string{"--type", "incr"}, rstServer)...)
	if code != 4 || !strings.Contains(errOut, "another system") {
		t.Errorf("incremental of another system: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out = retGBC(t, pg, st, "gbc-backup-list", []string{"--format", "json"}, rstServer)
	if n := strings.Count(out, `"id"`); n != 1 {
		t.Errorf("the refusals left records behind: %d backups listed\n%s", n, out)
	}
}

func testIncremental(t *testing.T, st harness.Store, method string) {
	pg := rstPrimary(t, st)
	pg.PgBench(t, "-i", "-s", "4", "-q")
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	pg.Exec(t, "CREATE TABLE regrow (id int, pad text)")
	pg.Exec(t, "INSERT INTO regrow SELECT g, repeat('x', 500) FROM generate_series(1, 5000) g")
	pg.Exec(t, "CREATE TABLE doomed AS SELECT g FROM generate_series(1, 10000) g")
	// Rows whose hint bits are first set after the full backup, by a
	// plain read.
	pg.Exec(t, "CREATE TABLE hinty AS SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g")
	// An unlogged table: backed up as its init fork only, empty after
	// any restore.
	pg.Exec(t, "CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 5000) g")
	pg.Exec(t, "CHECKPOINT")
	backup := func(flags ...string) *catalog.Backup {
		t.Helper()
		return incrBackupJSON(t, pg, st, append([]string{"--method", method}, flags...)...)
	}
	type point struct {
		b     *catalog.Backup
		state string
	}
	var points []point
	take := func(flags ...string) *catalog.Backup {
		t.Helper()
		state := incrState(t, pg) // nothing writes while the backup runs
		b := backup(flags...)
		points = append(points, point{b, state})
		return b
	}

	full := take()
	if full.Kind() != catalog.TypeFull || full.BlockMap == nil {
		t.Fatalf("full backup: type %q, block map %v", full.Type, full.BlockMap)
	}

	// 1% of the accounts' pages, a truncated and re-extended table, a
	// dropped one, a new database copied file by file, and a mark.
	pg.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid % 6000 = 1")
	pg.Exec(t, "DELETE FROM regrow")
	pg.Exec(t, "VACUUM regrow") // truncates the file to nothing
	pg.Exec(t, "INSERT INTO regrow SELECT g, repeat('y', 300) FROM generate_series(1, 3000) g")
	pg.Exec(t, "DROP TABLE doomed")
	pg.Exec(t, "SELECT count(*) FROM hinty WHERE h <> ''")
	pg.Exec(t, "INSERT INTO scratch SELECT g FROM generate_series(1, 5000) g")
	pg.Exec(t, "CREATE DATABASE copied STRATEGY FILE_COPY")
	pg.Run(t, "psql", "-X", "-q", "-d", "copied", "-c", "CREATE TABLE incopy AS SELECT g, md5(g::text) FROM generate_series(1, 2000) g")
	pg.Exec(t, "INSERT INTO marks VALUES ('a')")
	pg.Exec(t, "CHECKPOINT")
	incr1 := take("--type", "incr")
	if incr1.Kind() != catalog.TypeIncr || incr1.ParentID != full.ID {
		t.Fatalf("incr1: type %q parent %q, want incr on %s", incr1.Type, incr1.ParentID, full.ID)
	}
	if incr1.StoredSize*4 > full.StoredSize {
		t.Errorf("incr1 stores %d bytes, more than a quarter of the full's %d", incr1.StoredSize, full.StoredSize)
	}

	pg.PgBench(t, "-c", "2", "-t", "300", "-n")
	pg.Exec(t, "INSERT INTO marks VALUES ('b')")
	incr2 := take("--type", "incr")
	if incr2.ParentID != incr1.ID {
		t.Fatalf("incr2's parent is %q, want %s", incr2.ParentID, incr1.ID)
	}
	diff := take("--type", "diff", "--name", "diff1")
	if diff.Kind() != catalog.TypeDiff || diff.ParentID != full.ID {
		t.Fatalf("diff: type %q parent %q, want diff on %s", diff.Type, diff.ParentID, full.ID)
	}
	explicit := take("--type", "incr", "--parent", "diff1")
	if explicit.ParentID != diff.ID {
		t.Fatalf("--parent diff1 gave parent %q", explicit.ParentID)
	}

	// Each backup restores to the source as it was.
	for i, p := range points {
		dest := rstRestore(t, pg, st, p.b.ID, "--target-immediate", "--target-action", "promote")
		pg.Run(t, "pg_verifybackup", "-n", dest)
		c := rstStart(t, pg, dest)
		if got := incrState(t, c); got != p.state {
			t.Errorf("backup %d (%s %s): restored state\n%s\nwant\n%s", i, p.b.Kind(), p.b.ID, got, p.state)
		}
		if n := c.QueryInt(t, "SELECT count(*) FROM scratch"); n != 0 {
			t.Errorf("backup %d: the unlogged table has %d rows after the restore, want 0", i, n)
		}
		c.Exec(t, "INSERT INTO scratch VALUES (1)")
		if p.b.ID == incr2.ID {
			c.Run(t, "pg_amcheck", "--all", "--heapallindexed")
		}
		c.Stop(t)
	}

	// PITR through the chain: the newest incremental to the end of the
	// archive.
	pg.Exec(t, "INSERT INTO marks VALUES ('z')")
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)
	dest := rstRestore(t, pg, st, explicit.ID)
	c := rstStart(t, pg, dest)
	if got := rstMarks(t, c); got != "a,b,z" {
		t.Errorf("PITR through the chain: marks %q, want a,b,z", got)
	}
	c.Stop(t)
}

// incrBackupJSON runs gbc-backup --format json and returns the record.
func incrBackupJSON(t *testing.T, pg *harness.Cluster, st harness.Store, flags ...string) *catalog.Backup {
	t.Helper()
	out := retGBC(t, pg, st, "gbc-backup", append([]string{"--format", "json"}, flags...), rstServer)
	var b catalog.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("gbc-backup JSON: %v\n%s", err, out)
	}
	t.Logf("backup %s: type %s parent %q, %d bytes stored", b.ID, b.Kind(), b.ParentID, b.StoredSize)
	return &b
}
