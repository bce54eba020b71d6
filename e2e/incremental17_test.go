package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// PostgreSQL 17 and 18's native incremental backups through gbc-backup
// --method stream: gbc uploads the parent's backup_manifest, the server
// sends only the blocks its WAL summaries name, and gbc-restore combines
// the chain itself (there is no pg_combinebackup on these machines, and
// combining straight from the store needs no staging copy).

func TestNativeIncremental(t *testing.T) {
	for _, major := range []int{17, 18} {
		t.Run(fmt.Sprint(major), func(t *testing.T) { testNativeIncremental(t, major) })
	}
}

// nativeState fingerprints the tables of the test, over pgx only: the
// 17/18 packages have no psql or pgbench.
func nativeState(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	var parts []string
	for _, tbl := range []string{"accounts", "marks", "regrow"} {
		parts = append(parts, tbl+"="+c.QueryString(t, fmt.Sprintf("SELECT count(*) || ':' || coalesce(sum(hashtext(x::text)::bigint), 0) FROM %s x", tbl)))
	}
	return strings.Join(parts, " ")
}

func testNativeIncremental(t *testing.T, major int) {
	st := harness.NewStore(t, "file")
	pg := harness.StartPostgres(t, harness.PGOptions{
		Version:          major,
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, rstServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
		Settings:         map[string]string{"summarize_wal": "on"},
	})
	pg.Exec(t, "CREATE TABLE accounts AS SELECT g AS id, 0 AS balance, repeat('p', 80) AS pad FROM generate_series(1, 200000) g")
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	pg.Exec(t, "CREATE TABLE regrow AS SELECT g AS id FROM generate_series(1, 20000) g")
	// Hint bits and visibility now, so that they are not the first
	// incremental's changes (data checksums are on by default on 18).
	pg.Exec(t, "VACUUM (FREEZE) accounts")
	pg.Exec(t, "CHECKPOINT")
	backup := func(flags ...string) *catalog.Backup {
		t.Helper()
		return incrBackupJSON(t, pg, st, append([]string{"--method", "stream"}, flags...)...)
	}
	type point struct {
		b     *catalog.Backup
		state string
	}
	var points []point
	take := func(flags ...string) *catalog.Backup {
		t.Helper()
		state := nativeState(t, pg)
		b := backup(flags...)
		points = append(points, point{b, state})
		return b
	}
	full := take()
	pg.Exec(t, "UPDATE accounts SET balance = balance + 1 WHERE id % 5000 = 0")
	pg.Exec(t, "DELETE FROM regrow")
	pg.Exec(t, "VACUUM regrow")
	pg.Exec(t, "INSERT INTO regrow SELECT g FROM generate_series(1, 7000) g")
	pg.Exec(t, "INSERT INTO marks VALUES ('a')")
	incr1 := take("--type", "incr")
	if incr1.Kind() != catalog.TypeIncr || incr1.ParentID != full.ID || incr1.BlockMap != nil {
		t.Fatalf("incr1: type %q parent %q block map %v", incr1.Type, incr1.ParentID, incr1.BlockMap)
	}
	if incr1.StoredSize*4 > full.StoredSize {
		t.Errorf("the native incremental stores %d bytes, more than a quarter of the full's %d", incr1.StoredSize, full.StoredSize)
	}
	pg.Exec(t, "UPDATE accounts SET balance = balance + 1 WHERE id % 7000 = 0")
	pg.Exec(t, "INSERT INTO marks VALUES ('b')")
	incr2 := take("--type", "incr")
	if incr2.ParentID != incr1.ID {
		t.Fatalf("incr2's parent is %q, want %s", incr2.ParentID, incr1.ID)
	}
	diff := take("--type", "diff")
	if diff.ParentID != full.ID {
		t.Fatalf("diff's parent is %q, want %s", diff.ParentID, full.ID)
	}
	for i, p := range points {
		dest := rstRestore(t, pg, st, p.b.ID, "--target-immediate", "--target-action", "promote")
		c := rstStart(t, pg, dest)
		if got := nativeState(t, c); got != p.state {
			t.Errorf("backup %d (%s %s): restored state\n%s\nwant\n%s", i, p.b.Kind(), p.b.ID, got, p.state)
		}
		c.Stop(t)
	}

	// PITR through the chain.
	pg.Exec(t, "INSERT INTO marks VALUES ('z')")
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)
	c := rstStart(t, pg, rstRestore(t, pg, st, incr2.ID))
	if got := rstMarks(t, c); got != "a,b,z" {
		t.Errorf("PITR through the chain: marks %q, want a,b,z", got)
	}
	c.Stop(t)

	// Without WAL summaries, one clear line and no record.
	pg.Exec(t, "ALTER SYSTEM SET summarize_wal = off")
	pg.Exec(t, "SELECT pg_reload_conf()")
	time.Sleep(500 * time.Millisecond)
	before := strings.Count(retGBC(t, pg, st, "gbc-backup-list", []string{"--format", "json"}, rstServer), `"id"`)
	out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), []string{"--method", "stream", "--type", "incr"}, rstServer)...)
	if code != 4 || !strings.Contains(errOut, "summarize_wal = on") || strings.Count(strings.TrimSpace(errOut), "\n") > 2 {
		t.Errorf("incremental with summarize_wal off: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if after := strings.Count(retGBC(t, pg, st, "gbc-backup-list", []string{"--format", "json"}, rstServer), `"id"`); after != before {
		t.Errorf("the refused backup left a record: %d backups, %d before", after, before)
	}
}
