package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// gbc-backup end to end on a real PostgreSQL 15 cluster: the record of a
// DONE backup on every provider, field by field and object by object;
// --method stream; a backup under a concurrent pgbench load restored and
// checked; a backup killed mid-way (no DONE record, the previous backup
// still restorable); a backup whose server crashes (a FAILED record); and
// the refusals. Restores, PITR and relocated tablespaces are covered in
// restore_test.go.

const (
	bkServer       = "main"
	bkExitConflict = 4
)

// bkPrimary starts a cluster archiving into st, with 1 MiB WAL segments so
// that switches are cheap.
func bkPrimary(t *testing.T, st harness.Store, settings map[string]string) *harness.Cluster {
	t.Helper()
	return harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, bkServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
		DataChecksums:    true,
		Settings:         settings,
	})
}

// bkRun runs a gbc command as PostgreSQL's user and returns stdout, failing
// the test on a non-zero exit.
func bkRun(t *testing.T, pg *harness.Cluster, st harness.Store, cmd string, flags []string, pos ...string) string {
	t.Helper()
	out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, cmd), flags, pos...)...)
	if code != 0 {
		t.Fatalf("%s %v %v: exit %d\nstdout: %s\nstderr: %s", cmd, flags, pos, code, out, errOut)
	}
	return out
}

// bkBackup takes a backup with --format json and returns its record.
func bkBackup(t *testing.T, pg *harness.Cluster, st harness.Store, flags ...string) *catalog.Backup {
	t.Helper()
	start := time.Now()
	out := bkRun(t, pg, st, "gbc-backup", append([]string{"--format", "json"}, flags...), bkServer)
	var b catalog.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("gbc-backup --format json: %v\n%s", err, out)
	}
	t.Logf("backup %s: %.1f MiB in %s", b.ID, float64(b.DataSize)/(1<<20), time.Since(start).Round(time.Millisecond))
	return &b
}

// bkOpen opens the test's store in this process, to look at the objects
// themselves.
func bkOpen(t *testing.T, st harness.Store) cloud.Store {
	t.Helper()
	st.Setenv(t)
	s, err := cloud.Open(context.Background(), st.URL, cloud.Options{EndpointURL: st.EndpointURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// bkCheckObject reads a stored object and compares its size and SHA-256
// with the record's.
func bkCheckObject(t *testing.T, s cloud.Store, key string, size int64, sum string) {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Errorf("object %s: %v", key, err)
		return
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		t.Errorf("object %s: %d bytes, sha256 %x (%v); the record says %d bytes, %s", key, n, h.Sum(nil), err, size, sum)
	}
}

// TestBackupRecord takes a backup on every provider and checks its DONE
// record against the server and the stored objects.
func TestBackupRecord(t *testing.T) {
	for _, st := range harness.Stores(t) {
		t.Run(st.Name, func(t *testing.T) { testBackupRecord(t, st) })
	}
}

func testBackupRecord(t *testing.T, st harness.Store) {
	pg := bkPrimary(t, st, nil)
	tsDir := harness.TempDir(t)
	pg.Exec(t, fmt.Sprintf("CREATE TABLESPACE ts1 LOCATION '%s'", tsDir))
	pg.Exec(t, "CREATE TABLE in_ts (id int PRIMARY KEY) TABLESPACE ts1")
	pg.Exec(t, "INSERT INTO in_ts SELECT generate_series(1, 10000)")
	pg.Exec(t, "CREATE UNLOGGED TABLE scratch (v text)")
	pg.Exec(t, "INSERT INTO scratch SELECT md5(g::text) FROM generate_series(1, 1000) g")
	pg.PgBench(t, "-i", "-s", "1", "-q")

	before := time.Now().UTC().Truncate(time.Second)
	b := bkBackup(t, pg, st, "--name", "first", "--tags", "env=test,ticket=42", "--max-archive-size", "4M")
	after := time.Now().UTC()

	if len(b.Tablespaces) != 1 || len(b.Parts) == 0 {
		t.Fatalf("record: %d tablespaces, %d parts; want 1 and some", len(b.Tablespaces), len(b.Parts))
	}
	sysID := pg.QueryString(t, "SELECT system_identifier FROM pg_control_system()")
	tsOID := pg.QueryString(t, "SELECT oid FROM pg_tablespace WHERE spcname = 'ts1'")
	checks := []struct {
		what      string
		got, want any
	}{
		{"format", b.Format, catalog.FormatVersion},
		{"status", b.Status, catalog.StatusDone},
		{"server", b.Server, bkServer},
		{"name", b.Name, "first"},
		{"tags", fmt.Sprint(b.Tags), "map[env:test ticket:42]"},
		{"method", b.Method, "local"},
		{"compression", b.Compression, "zstd"},
		{"system identifier", b.SystemIdentifier, sysID},
		{"pg_version", fmt.Sprint(b.PGVersion), pg.QueryString(t, "SHOW server_version_num")},
		{"timeline", b.Timeline, uint32(1)},
		{"wal_segment_size", b.WALSegmentSize, int64(1 << 20)},
		{"begin_wal", b.BeginWAL, pg.QueryString(t, "SELECT pg_walfile_name($1::pg_lsn)", b.BeginLSN)},
		// pg_walfile_name names the segment holding the byte before the
		// LSN: the last segment the backup needs.
		{"end_wal", b.EndWAL, pg.QueryString(t, "SELECT pg_walfile_name($1::pg_lsn)", b.EndLSN)},
		{"begin <= end", pg.QueryString(t, "SELECT $1::pg_lsn <= $2::pg_lsn", b.BeginLSN, b.EndLSN), "t"},
		{"data_directory", b.DataDirectory, pg.DataDir},
		{"label", b.Label, "gbc " + b.ID},
		{"id is the start time", b.ID, b.BeginTime.UTC().Format(catalog.IDLayout)},
		{"manifest key", b.ManifestKey, catalog.Layout{Server: bkServer}.ManifestKey(b.ID, "zst")},
		{"tablespaces", fmt.Sprintf("%d %s %s %s", len(b.Tablespaces), b.Tablespaces[0].OID, b.Tablespaces[0].Name, b.Tablespaces[0].Location), "1 " + tsOID + " ts1 " + tsDir},
		{"tablespace_map", b.TablespaceMap, tsOID + " " + tsDir + "\n"},
		{"heartbeat cleared", b.Heartbeat.IsZero() && b.HeartbeatInterval == 0, true},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if b.BeginTime.Before(before) || b.EndTime.After(after) || !b.EndTime.After(b.BeginTime) {
		t.Errorf("begin %s, end %s: not within the run %s..%s", b.BeginTime, b.EndTime, before, after)
	}
	if !strings.Contains(b.BackupLabel, "START WAL LOCATION: "+b.BeginLSN+" (file "+b.BeginWAL+")") || !strings.Contains(b.BackupLabel, "LABEL: gbc "+b.ID) {
		t.Errorf("backup_label:\n%s", b.BackupLabel)
	}

	// Parts: several data parts (--max-archive-size 4M), the last one
	// with backup_label and pg_control; one tablespace part; sizes add up.
	s := bkOpen(t, st)
	var dataParts, tsParts int
	var size, stored, files int64
	for _, p := range b.Parts {
		switch p.Tablespace {
		case "":
			dataParts++
		case tsOID:
			tsParts++
		default:
			t.Errorf("part %s of unknown tablespace %s", p.Key, p.Tablespace)
		}
		if p.Size > 4<<20 && p.Files != 1 {
			t.Errorf("part %s: %d bytes, %d files: over --max-archive-size", p.Key, p.Size, p.Files)
		}
		size += p.Size
		stored += p.StoredSize
		files += int64(p.Files)
		bkCheckObject(t, s, p.Key, p.StoredSize, p.SHA256)
	}
	bkCheckObject(t, s, b.ManifestKey, b.ManifestStoredSize, b.ManifestSHA256)
	// The block map, which the next incremental backup compares with.
	if b.BlockMap == nil {
		t.Fatal("the record has no block map")
	}
	bkCheckObject(t, s, b.BlockMap.Key, b.BlockMap.StoredSize, b.BlockMap.SHA256)
	stored += b.BlockMap.StoredSize
	if dataParts < 3 || tsParts != 1 {
		t.Errorf("%d data parts and %d tablespace parts; want at least 3 and 1", dataParts, tsParts)
	}
	if size != b.DataSize || stored+b.ManifestStoredSize != b.StoredSize || files != b.Files || files < 900 {
		t.Errorf("parts hold %d bytes, %d stored, %d files; the record says %d, %d, %d", size, stored+b.ManifestStoredSize, files, b.DataSize, b.StoredSize, b.Files)
	}
	if last := b.Parts[dataParts-1]; last.Files != 3 {
		t.Errorf("last data part %s has %d files; want 3 (backup_label, tablespace_map, pg_control)", last.Key, last.Files)
	}

	// The record in the store is the one printed, and its end WAL is there.
	stored2, err := catalog.Load(context.Background(), s, catalog.Layout{Server: bkServer}, b.ID)
	if err != nil || stored2.Status != catalog.StatusDone || stored2.ManifestSHA256 != b.ManifestSHA256 {
		t.Errorf("stored record: %+v, %v", stored2, err)
	}
	found := false
	layout := catalog.Layout{Server: bkServer}
	if err := s.List(context.Background(), layout.WALKey(b.EndWAL, ""), func(cloud.Attrs) error { found = true; return nil }); err != nil || !found {
		t.Errorf("end WAL %s not in the store (%v)", b.EndWAL, err)
	}

	// A name is unique per server.
	_, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), []string{"--name", "first"}, bkServer)...)
	if code != bkExitConflict || !strings.Contains(errOut, `already has a backup named "first"`) {
		t.Errorf("duplicate name: exit %d, want %d:\n%s", code, bkExitConflict, errOut)
	}
}

// TestBackupStream takes a backup over the replication protocol, with a
// tablespace, restores it to a new place and checks it.
func TestBackupStream(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) {
			st := harness.NewStore(t, provider)
			pg := bkPrimary(t, st, nil)
			tsDir := harness.TempDir(t)
			pg.Exec(t, fmt.Sprintf("CREATE TABLESPACE ts1 LOCATION '%s'", tsDir))
			pg.Exec(t, "CREATE TABLE in_ts (id int PRIMARY KEY, v text) TABLESPACE ts1")
			pg.Exec(t, "INSERT INTO in_ts SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
			pg.PgBench(t, "-i", "-s", "1", "-q")
			b := bkBackup(t, pg, st, "--method", "stream", "--jobs", "3")
			if b.Status != catalog.StatusDone || b.Method != "stream" || b.ManifestKey == "" || len(b.Tablespaces) != 1 ||
				b.Tablespaces[0].Name != "ts1" || b.Tablespaces[0].Location != tsDir || b.Files < 900 ||
				!strings.Contains(b.BackupLabel, "LABEL: gbc "+b.ID) || !strings.Contains(b.TablespaceMap, tsDir) {
				t.Fatalf("stream record: %+v", b)
			}
			pg.Exec(t, "INSERT INTO in_ts VALUES (0, 'after')")
			want := pg.QueryString(t, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts, (SELECT count(*) FROM in_ts) x GROUP BY x.count")
			seg := pg.SwitchWAL(t)
			pg.WaitArchived(t, seg, 2*time.Minute)

			dest := pg.NewEmptyDataDir(t)
			moved := harness.TempDir(t) + "/moved"
			bkRun(t, pg, st, "gbc-restore", []string{"--disable-archiving", "--tablespace", "ts1:" + moved}, bkServer, b.ID, dest)
			// The server's own manifest checks the restored files.
			pg.Run(t, "pg_verifybackup", "-n", dest)
			r := pg.StartFrom(t, dest, 0)
			r.WaitRecovered(t, 3*time.Minute)
			if got := r.QueryString(t, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts, (SELECT count(*) FROM in_ts) x GROUP BY x.count"); got != want {
				t.Errorf("restored: %s, want %s", got, want)
			}
			if got := r.QueryString(t, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'"); got != moved {
				t.Errorf("tablespace at %s, want %s", got, moved)
			}
		})
	}
}

// TestBackupUnderLoad takes a backup while pgbench writes, restores it with
// all the WAL archived after it, and checks pgbench's invariant (each
// transaction adds the same delta to an account, a teller, a branch and the
// history) and the indexes.
func TestBackupUnderLoad(t *testing.T) {
	st := harness.NewStore(t, "s3")
	pg := bkPrimary(t, st, map[string]string{"max_connections": "50"})
	pg.Exec(t, "CREATE EXTENSION amcheck")
	pg.PgBench(t, "-i", "-s", "5", "-q")
	bench := pg.Command(t, "pgbench", "-c", "4", "-j", "2", "-T", "20", "-n")
	var benchOut bytes.Buffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	b := bkBackup(t, pg, st, "--jobs", "2")
	if err := bench.Wait(); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, benchOut.String())
	}
	if !strings.Contains(benchOut.String(), "number of transactions actually processed") {
		t.Fatalf("pgbench:\n%s", benchOut.String())
	}
	const sums = `SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' ||
		(SELECT sum(bbalance) FROM pgbench_branches) || ' ' || (SELECT coalesce(sum(delta), 0) FROM pgbench_history) || ' ' || (SELECT count(*) FROM pgbench_history)`
	want := pg.QueryString(t, sums)
	if f := strings.Fields(want); f[0] != f[1] || f[1] != f[2] || f[2] != f[3] || f[4] == "0" {
		t.Fatalf("pgbench invariant broken on the primary itself: %s", want)
	}
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)

	dest := pg.NewEmptyDataDir(t)
	bkRun(t, pg, st, "gbc-restore", []string{"--disable-archiving"}, bkServer, b.ID, dest)
	pg.Run(t, "pg_verifybackup", "-n", dest)
	r := pg.StartFrom(t, dest, 0)
	r.WaitRecovered(t, 3*time.Minute)
	if got := r.QueryString(t, sums); got != want {
		t.Errorf("restored sums %s, want %s (accounts tellers branches history rows)", got, want)
	}
	r.Run(t, "pg_amcheck", "--all", "--heapallindexed")
}

// bkStartAsync starts gbc-backup as PostgreSQL's user without waiting.
func bkStartAsync(t *testing.T, pg *harness.Cluster, st harness.Store, flags ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := pg.Command(t, harness.Bin(t, "gbc-backup"), st.Argv("", flags, bkServer)[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd, &out
}

// bkWaitStarted waits for a STARTED record other than the known ones and
// for at least one of its parts, and returns the record.
func bkWaitStarted(t *testing.T, s cloud.Store, known map[string]bool, out *bytes.Buffer) *catalog.Backup {
	t.Helper()
	layout := catalog.Layout{Server: bkServer}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		all, err := catalog.List(context.Background(), s, layout)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range all {
			if known[b.ID] {
				continue
			}
			if b.Status != catalog.StatusStarted {
				t.Fatalf("backup %s is already %s: the test needs it in progress\n%s", b.ID, b.Status, out.String())
			}
			parts := 0
			_ = s.List(context.Background(), layout.BackupRoot(b.ID)+"data/", func(cloud.Attrs) error { parts++; return nil })
			if parts > 0 {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no backup in progress with a stored part after 2 minutes\n%s", out.String())
	return nil
}

// TestBackupKilled kills gbc-backup mid-way: its STARTED record stays,
// nothing says DONE, the server is not left in backup mode, and the
// previous backup is still restored.
func TestBackupKilled(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "10", "-q")
	pg.Exec(t, "CREATE TABLE marks (mark text)")
	pg.Exec(t, "INSERT INTO marks VALUES ('before')")
	first := bkBackup(t, pg, st)
	pg.Exec(t, "INSERT INTO marks VALUES ('after')")

	s := bkOpen(t, st)
	// Slow on purpose (one job, gzip at its best level, small parts), so
	// that it is surely killed mid-way.
	cmd, out := bkStartAsync(t, pg, st, "--jobs", "1", "--compression", "gzip", "--compression-level", "9", "--max-archive-size", "8M")
	killed := bkWaitStarted(t, s, map[string]bool{first.ID: true}, out)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	rec, err := catalog.Load(context.Background(), s, catalog.Layout{Server: bkServer}, killed.ID)
	if err != nil || rec.Status != catalog.StatusStarted || rec.BeginWAL == "" || rec.Heartbeat.IsZero() || rec.HeartbeatInterval != 300 {
		t.Errorf("record of the killed backup: %+v, %v; want STARTED with its begin WAL, heartbeat and heartbeat interval (300 s)", rec, err)
	}
	listing := bkRun(t, pg, st, "gbc-backup-list", []string{"--format", "json"}, bkServer)
	if !strings.Contains(listing, killed.ID) || strings.Count(listing, `"DONE"`) != 1 {
		t.Errorf("listing after the kill:\n%s", listing)
	}
	// The server ended the backup with the session: a new one works.
	deadline := time.Now().Add(30 * time.Second)
	for pg.QueryString(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gbc-backup'") != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the killed backup's session is still there")
		}
		time.Sleep(100 * time.Millisecond)
	}
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)

	// latest is still the first backup, and it restores.
	dest := pg.NewEmptyDataDir(t)
	bkRun(t, pg, st, "gbc-restore", []string{"--disable-archiving"}, bkServer, "latest", dest)
	pg.Run(t, "pg_verifybackup", "-n", dest)
	r := pg.StartFrom(t, dest, 0)
	r.WaitRecovered(t, 3*time.Minute)
	if got := r.QueryString(t, "SELECT string_agg(mark, ',' ORDER BY mark) FROM marks"); got != "after,before" {
		t.Errorf("marks = %q, want after,before", got)
	}
	third := bkBackup(t, pg, st)
	if third.Status != catalog.StatusDone {
		t.Errorf("backup after the kill: %s", third.Status)
	}
}

// TestBackupServerCrash crashes PostgreSQL during a backup: gbc-backup
// fails with a non-zero exit and leaves a FAILED record saying why.
func TestBackupServerCrash(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "10", "-q")
	s := bkOpen(t, st)
	cmd, out := bkStartAsync(t, pg, st, "--jobs", "1", "--compression", "gzip", "--compression-level", "9", "--max-archive-size", "8M")
	b := bkWaitStarted(t, s, nil, out)
	pg.Kill(t)
	err := cmd.Wait()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Errorf("gbc-backup after the crash: %v, want a non-zero exit\n%s", err, out.String())
	}
	rec, lerr := catalog.Load(context.Background(), s, catalog.Layout{Server: bkServer}, b.ID)
	if lerr != nil || rec.Status != catalog.StatusFailed || rec.Error == "" || rec.EndTime.IsZero() {
		t.Errorf("record after the crash: %+v, %v; want FAILED with an error", rec, lerr)
	}
	if !strings.Contains(out.String(), "backup "+b.ID+" failed") {
		t.Errorf("output does not say the backup failed:\n%s", out.String())
	}
	pg.Start(t)
}

// TestBackupRefusals checks that gbc-backup refuses a server that does not
// archive its WAL, writing nothing.
func TestBackupRefusals(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := harness.StartPostgres(t, harness.PGOptions{ArchiveMode: "off", Env: st.Env})
	_, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), nil, bkServer)...)
	if code != bkExitConflict || !strings.Contains(errOut, "archive_mode is off") {
		t.Errorf("archive_mode off: exit %d, want %d:\n%s", code, bkExitConflict, errOut)
	}
	_, errOut, code = pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), []string{"--name", "latest"}, bkServer)...)
	if code != 2 || !strings.Contains(errOut, "keyword") {
		t.Errorf("--name latest: exit %d, want 2:\n%s", code, errOut)
	}
	s := bkOpen(t, st)
	n := 0
	_ = s.List(context.Background(), "", func(cloud.Attrs) error { n++; return nil })
	if n != 0 {
		t.Errorf("refused backups left %d objects", n)
	}
}
