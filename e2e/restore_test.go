package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// Backup and restore end to end on a real PostgreSQL 15 cluster, on every
// provider: a full restore, point-in-time restores by time, LSN and restore
// point, pg_verifybackup on the restored directory and pg_amcheck on the
// restored cluster; a relocated tablespace; and the refusals.

const rstServer = "main"

// rstPrimary starts a cluster archiving into st with gbc-wal-archive, with
// amcheck installed so that pg_amcheck can check the restored copies.
func rstPrimary(t *testing.T, st harness.Store) *harness.Cluster {
	t.Helper()
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, rstServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
		DataChecksums:    true,
	})
	pg.Exec(t, "CREATE EXTENSION amcheck")
	return pg
}

// rstRestore restores into a new directory and returns it.
func rstRestore(t *testing.T, pg *harness.Cluster, st harness.Store, backupID string, flags ...string) string {
	t.Helper()
	dest := pg.NewEmptyDataDir(t)
	// A restored copy must not archive into the primary's server prefix:
	// its new timeline would be seen by the next restore's recovery.
	flags = append([]string{"--disable-archiving"}, flags...)
	start := time.Now()
	retGBC(t, pg, st, "gbc-restore", flags, rstServer, backupID, dest)
	t.Logf("gbc-restore %v: %s", flags, time.Since(start).Round(time.Millisecond))
	return dest
}

// rstStart starts a restored directory, waits for the end of recovery
// (every restore here promotes), and returns the running copy.
func rstStart(t *testing.T, pg *harness.Cluster, dest string) *harness.Cluster {
	t.Helper()
	c := pg.StartFrom(t, dest, 0)
	c.WaitRecovered(t, 3*time.Minute)
	return c
}

func rstMarks(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	return c.QueryString(t, "SELECT coalesce(string_agg(mark, ',' ORDER BY mark), '') FROM marks")
}

func TestRestore(t *testing.T) {
	for _, st := range harness.Stores(t) {
		t.Run(st.Name, func(t *testing.T) { testRestore(t, st) })
	}
}

func testRestore(t *testing.T, st harness.Store) {
	pg := rstPrimary(t, st)
	pg.PgBench(t, "-i", "-s", "1", "-q")
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	// A server that was itself once recovered to a target keeps the setting
	// in postgresql.auto.conf, and its backups carry it: a restore must not
	// inherit it (it would stop at a restore point that never comes, or
	// clash with the restore's own target).
	pg.Exec(t, "ALTER SYSTEM SET recovery_target_name = 'left_by_an_earlier_recovery'")
	start := time.Now()
	id := strings.TrimSpace(retGBC(t, pg, st, "gbc-backup", []string{"--name", "base"}, rstServer))
	t.Logf("gbc-backup: %s in %s", id, time.Since(start).Round(time.Millisecond))

	// After the backup: mark a, then the three kinds of targets, then
	// mark b. Every target must give a alone; the full restore a and b.
	pg.Exec(t, "INSERT INTO marks VALUES ('a')")
	lsn := pg.QueryString(t, "SELECT pg_current_wal_lsn()")
	pg.Exec(t, "SELECT pg_create_restore_point('after_a')")
	targetTime := pg.QueryString(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
	time.Sleep(1100 * time.Millisecond) // commit timestamps of b must be later
	pg.Exec(t, "INSERT INTO marks VALUES ('b')")
	pg.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10")
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)

	// The listing and the record show the backup.
	var listing struct {
		Server  string `json:"server"`
		Backups []struct {
			ID, Name, Status string
			EndTime          *time.Time `json:"end_time"`
			DataSize         int64      `json:"data_size"`
		} `json:"backups"`
	}
	out := retGBC(t, pg, st, "gbc-backup-list", []string{"--format", "json"}, rstServer)
	if err := json.Unmarshal([]byte(out), &listing); err != nil {
		t.Fatalf("list JSON: %v\n%s", err, out)
	}
	if listing.Server != rstServer || len(listing.Backups) != 1 || listing.Backups[0].ID != id || listing.Backups[0].Name != "base" ||
		listing.Backups[0].Status != "DONE" || listing.Backups[0].EndTime == nil || listing.Backups[0].DataSize == 0 {
		t.Fatalf("list JSON: %s", out)
	}
	if text := retGBC(t, pg, st, "gbc-backup-list", nil, rstServer); !strings.Contains(text, id) || !strings.Contains(text, "base") {
		t.Errorf("list text:\n%s", text)
	}
	var rec catalog.Backup
	out = retGBC(t, pg, st, "gbc-backup-show", []string{"--format", "json"}, rstServer, "base")
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.ID != id || len(rec.Parts) == 0 || rec.BackupLabel == "" {
		t.Fatalf("show JSON (%v): %s", err, out)
	}
	if text := retGBC(t, pg, st, "gbc-backup-show", nil, rstServer, "latest"); !strings.Contains(text, rec.Parts[0].SHA256) {
		t.Errorf("show text lacks the parts:\n%s", text)
	}

	wantRows := pg.QueryString(t, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts")
	for _, c := range []struct {
		name   string
		ref    string
		flags  []string
		marks  string
		verify bool
	}{
		{"full", id, nil, "a,b", true}, // no target: replay all archived WAL, then promote
		{"time", "auto", []string{"--target-time", targetTime, "--target-action", "promote"}, "a", false},
		{"lsn", "latest", []string{"--target-lsn", lsn, "--target-action", "promote"}, "a", false},
		{"restore point", "base", []string{"--target-name", "after_a", "--target-action", "promote"}, "a", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := rstRestore(t, pg, st, c.ref, c.flags...)
			if c.verify {
				// Before the start, which changes files: the restored
				// directory matches the backup's manifest.
				pg.Run(t, "pg_verifybackup", "-n", dest)
			}
			r := rstStart(t, pg, dest)
			if got := rstMarks(t, r); got != c.marks {
				t.Errorf("marks = %q, want %q", got, c.marks)
			}
			if c.marks == "a,b" {
				if got := r.QueryString(t, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts"); got != wantRows {
					t.Errorf("pgbench_accounts: %s, want %s", got, wantRows)
				}
				r.Run(t, "pg_amcheck", "--all", "--heapallindexed")
			}
		})
	}
}

// TestRestoreTablespace relocates a tablespace with --tablespace.
func TestRestoreTablespace(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) {
			st := harness.NewStore(t, provider)
			pg := rstPrimary(t, st)
			tsDir := harness.TempDir(t)
			pg.Exec(t, fmt.Sprintf("CREATE TABLESPACE fast LOCATION '%s'", tsDir))
			pg.Exec(t, "CREATE TABLE hot (id int PRIMARY KEY, v text) TABLESPACE fast")
			pg.Exec(t, "INSERT INTO hot SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
			pg.Exec(t, "CREATE INDEX hot_v ON hot (v) TABLESPACE fast")
			id := strings.TrimSpace(retGBC(t, pg, st, "gbc-backup", nil, rstServer))
			pg.Exec(t, "INSERT INTO hot VALUES (0, 'after the backup')")
			seg := pg.SwitchWAL(t)
			pg.WaitArchived(t, seg, 2*time.Minute)

			newTS := filepath.Join(harness.TempDir(t), "moved")
			dest := rstRestore(t, pg, st, id, "--tablespace", "fast:"+newTS)
			link, err := os.Readlink(filepath.Join(dest, "pg_tblspc", pg.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'fast'")))
			if err != nil || link != newTS {
				t.Fatalf("tablespace link -> %q (%v), want %s", link, err, newTS)
			}
			if entries, _ := os.ReadDir(tsDir); len(entries) == 0 {
				t.Fatal("the original tablespace directory is empty: the test broke it")
			}
			pg.Run(t, "pg_verifybackup", "-n", dest)
			r := rstStart(t, pg, dest)
			if got := r.QueryString(t, "SELECT count(*) || ' ' || pg_tablespace_location(oid) FROM hot, pg_tablespace WHERE spcname = 'fast' GROUP BY oid"); got != "20001 "+newTS {
				t.Errorf("restored: %q, want 20001 rows in %s", got, newTS)
			}
			r.Run(t, "pg_amcheck", "--all", "--heapallindexed")
		})
	}
}

// TestRestoreRefusals checks the restores gbc-restore must refuse, with
// their exit codes, and that a refusal writes nothing.
func TestRestoreRefusals(t *testing.T) {
	// S3: the test writes into the store itself, which a file:// store
	// would leave unreadable for PostgreSQL's user.
	st := harness.NewStore(t, "s3")
	pg := rstPrimary(t, st)
	id := strings.TrimSpace(retGBC(t, pg, st, "gbc-backup", nil, rstServer))
	rec := catalog.Backup{}
	if err := json.Unmarshal([]byte(retGBC(t, pg, st, "gbc-backup-show", []string{"--format", "json"}, rstServer, id)), &rec); err != nil {
		t.Fatal(err)
	}
	before := rec.EndTime.Add(-time.Hour).UTC().Format("2006-01-02 15:04:05+00")

	// A record claiming another cluster's system identifier, with the same
	// parts: its WAL in the store is not its own.
	s := openRetStore(t, st)
	foreign := rec
	foreign.ID, foreign.SystemIdentifier = "20000101T000000Z", "1234567890"
	if err := catalog.Save(context.Background(), s, catalog.Layout{Server: rstServer}, &foreign); err != nil {
		t.Fatal(err)
	}

	run := func(flags []string, backupID, dest string) (string, int) {
		t.Helper()
		_, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-restore"), flags, rstServer, backupID, dest)...)
		return errOut, code
	}
	nonEmpty := pg.NewEmptyDataDir(t)
	if err := os.WriteFile(filepath.Join(nonEmpty, "PG_VERSION"), []byte("15\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, id string
		flags    []string
		dest     string
		code     int
		msg      string
	}{
		{"non-empty directory", id, nil, nonEmpty, exitConflict, "not empty"},
		{"another system identifier", foreign.ID, nil, "", exitConflict, "system identifier mismatch"},
		{"unknown id", "20200101T000000Z", nil, "", exitNotFound, "gbc-backup-list"},
		{"unknown name", "nightly", nil, "", exitNotFound, "gbc-backup-list"},
		{"target before the backup end", id, []string{"--target-time", before}, "", exitUsage, "before the end of backup"},
		{"auto with no backup before the target", "auto", []string{"--target-time", before}, "", exitNotFound, "suits the recovery target"},
		{"two targets", id, []string{"--target-time", before, "--target-name", "x"}, "", exitUsage, "at most one"},
		{"time without a zone", id, []string{"--target-time", "2026-01-01 00:00:00"}, "", exitUsage, "zone"},
		{"unknown tablespace", id, []string{"--tablespace", "nope:/tmp/x"}, "", exitUsage, "no tablespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := c.dest
			if dest == "" {
				dest = filepath.Join(harness.TempDir(t), "never")
			}
			errOut, code := run(c.flags, c.id, dest)
			if code != c.code || !strings.Contains(errOut, c.msg) {
				t.Errorf("exit %d, want %d, with %q in:\n%s", code, c.code, c.msg, errOut)
			}
			if c.dest == "" {
				if _, err := os.Stat(dest); !os.IsNotExist(err) {
					t.Errorf("a refused restore created %s", dest)
				}
			}
		})
	}
}
