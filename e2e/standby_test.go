package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// A backup taken from a hot standby, with --method local and stream, and
// its restores: by default a server that recovers and promotes on its own
// (the standby's standby.signal left out, its primary_conninfo reset);
// with --standby, a replica that stays in recovery and follows the
// primary; and the options --standby refuses.

const sbServer = "main"

func TestBackupFromStandby(t *testing.T) {
	for _, method := range []string{"local", "stream"} {
		t.Run(method, func(t *testing.T) { testBackupFromStandby(t, method) })
	}
}

func testBackupFromStandby(t *testing.T, method string) {
	st := harness.NewStore(t, "file")
	primary := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, sbServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
		DataChecksums:    true,
	})
	primary.PgBench(t, "-i", "-s", "1", "-q")
	primary.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	standby := primary.StartStandby(t)
	// Written after the standby was made: it has them by replay. The
	// checkpoint lets the backup's restartpoint start in the primary's
	// current segment, which is not archived yet: the backup has to wait
	// for the primary to complete it.
	primary.Exec(t, "INSERT INTO marks VALUES ('before')")
	primary.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 100")
	primary.Exec(t, "CHECKPOINT")
	open := primary.QueryString(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	standby.WaitReplayed(t, primary.QueryString(t, "SELECT pg_current_wal_lsn()"), 2*time.Minute)
	if got := standby.QueryString(t, "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("the standby is not in recovery: pg_is_in_recovery() = %s", got)
	}

	b := sbBackup(t, primary, standby, st, "--method", method)
	if b.Status != catalog.StatusDone || !b.FromStandby || b.Method != method {
		t.Fatalf("backup from the standby: status %s, from_standby %v, method %s; want DONE, true, %s", b.Status, b.FromStandby, b.Method, method)
	}
	if b.EndWAL < open {
		t.Errorf("the backup ends in segment %s, before the primary's open segment %s: the test did not make it wait for the primary's archive", b.EndWAL, open)
	}
	primary.Exec(t, "INSERT INTO marks VALUES ('after')")
	want := primary.QueryString(t, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts")
	seg := primary.SwitchWAL(t)
	primary.WaitArchived(t, seg, 2*time.Minute)

	t.Run("restore", func(t *testing.T) {
		dest := primary.NewEmptyDataDir(t)
		bkRun(t, primary, st, "gbc-restore", []string{"--disable-archiving"}, sbServer, b.ID, dest)
		sbSignals(t, dest, "recovery.signal")
		conf := sbAutoConf(t, dest)
		// The standby's own connection to its primary is in the file, from
		// pg_basebackup -R, and reset after it.
		orig := sbConninfo.FindStringIndex(conf)
		reset := strings.LastIndex(conf, "\nprimary_conninfo = ''\n")
		if orig == nil || reset < orig[0] || !strings.Contains(conf[reset:], "\nprimary_slot_name = ''\n") {
			t.Errorf("postgresql.auto.conf does not reset the standby's primary_conninfo and primary_slot_name:\n%s", conf)
		}
		primary.Run(t, "pg_verifybackup", "-n", dest)

		r := primary.StartFrom(t, dest, 0)
		r.WaitRecovered(t, 3*time.Minute)
		if got := r.QueryString(t, "SELECT pg_is_in_recovery()"); got != "f" {
			t.Errorf("pg_is_in_recovery() = %s after recovery, want f", got)
		}
		if got := rstMarks(t, r); got != "after,before" {
			t.Errorf("marks = %q, want after,before", got)
		}
		if got := r.QueryString(t, "SELECT count(*) || ' ' || sum(abalance) FROM pgbench_accounts"); got != want {
			t.Errorf("pgbench_accounts: %s, want %s", got, want)
		}
		if n := r.QueryInt(t, "SELECT count(*) FROM pg_stat_wal_receiver"); n != 0 {
			t.Errorf("the restored server streams from somewhere (%d WAL receivers)", n)
		}
		sbSignals(t, dest)
	})

	t.Run("restore --standby", func(t *testing.T) {
		dest := primary.NewEmptyDataDir(t)
		bkRun(t, primary, st, "gbc-restore", []string{"--standby", "--disable-archiving"}, sbServer, b.ID, dest)
		sbSignals(t, dest, "standby.signal")
		if conf := sbAutoConf(t, dest); strings.Contains(conf, "primary_conninfo = ''") || !sbConninfo.MatchString(conf) {
			t.Errorf("--standby must keep the standby's primary_conninfo:\n%s", conf)
		}

		r := primary.StartFrom(t, dest, 0)
		if got := r.QueryString(t, "SELECT pg_is_in_recovery()"); got != "t" {
			t.Errorf("pg_is_in_recovery() = %s, want t", got)
		}
		// The replica follows the primary through the kept
		// primary_conninfo: this row is in a segment the primary has not
		// completed, so not archived, and only streaming brings it.
		primary.Exec(t, "INSERT INTO marks VALUES ('streamed')")
		deadline := time.Now().Add(2 * time.Minute)
		for rstMarks(t, r) != "after,before,streamed" {
			if time.Now().After(deadline) {
				t.Fatalf("the --standby copy does not follow the primary: marks = %q", rstMarks(t, r))
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got := r.QueryString(t, "SELECT pg_is_in_recovery()"); got != "t" {
			t.Errorf("pg_is_in_recovery() = %s after replaying, want t", got)
		}
		sbSignals(t, dest, "standby.signal")
	})
}

// sbBackup runs gbc-backup against the standby and returns its record. A
// standby cannot switch WAL segments: the backup's last segment reaches
// the store only once the primary completes and archives it, so, while
// the backup waits, the primary switches segments once a second as its
// own traffic or archive_timeout would.
func sbBackup(t *testing.T, primary, standby *harness.Cluster, st harness.Store, flags ...string) *catalog.Backup {
	t.Helper()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				// Errors are for the backup to report: it fails
				// after --wal-timeout if no segment ever comes.
				_ = primary.ExecErr("SELECT pg_current_xact_id()")
				_ = primary.ExecErr("SELECT pg_switch_wal()")
			}
		}
	}()
	start := time.Now()
	res := standby.RunGBCWith(t, harness.RunOptions{Env: st.Env},
		st.Argv(harness.Bin(t, "gbc-backup"), append([]string{"--format", "json", "--wal-timeout", "2m"}, flags...), sbServer)...)
	close(stop)
	<-done
	if res.ExitCode != 0 {
		t.Fatalf("gbc-backup %v on the standby: exit %d\nstdout: %s\nstderr: %s", flags, res.ExitCode, res.Stdout, res.Stderr)
	}
	var b catalog.Backup
	if err := json.Unmarshal([]byte(res.Stdout), &b); err != nil {
		t.Fatalf("gbc-backup --format json: %v\n%s", err, res.Stdout)
	}
	t.Logf("backup %s from the standby (%s): %s", b.ID, b.Method, time.Since(start).Round(time.Millisecond))
	return &b
}

// sbSignals fails the test unless the signal files in dir are exactly
// want.
func sbSignals(t *testing.T, dir string, want ...string) {
	t.Helper()
	var got []string
	for _, name := range []string{"recovery.signal", "standby.signal"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			got = append(got, name)
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("signal files in %s: %v, want %v", dir, got, want)
	}
}

// sbConninfo is a primary_conninfo that is not empty, as pg_basebackup -R
// writes it.
var sbConninfo = regexp.MustCompile(`(?m)^primary_conninfo = '[^']`)

func sbAutoConf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRestoreStandbyRefusals checks the options --standby refuses, with a
// usage error before the store is even opened.
func TestRestoreStandbyRefusals(t *testing.T) {
	store := "file://" + harness.TempDir(t)
	for _, c := range []struct {
		flags []string
		msg   string
	}{
		{[]string{"--target-lsn", "0/3000000"}, "--target-lsn"},
		{[]string{"--target-time", "2026-11-24 21:48:42+01"}, "--target-time"},
		{[]string{"--target-immediate"}, "--target-immediate"},
		{[]string{"--target-action", "promote"}, "--target-action"},
		{[]string{"--no-recovery-config"}, "--no-recovery-config"},
	} {
		dest := filepath.Join(harness.TempDir(t), "never")
		args := append(append([]string{harness.Bin(t, "gbc-restore"), "--standby"}, c.flags...), store, sbServer, "latest", dest)
		_, errOut, code := harness.RunGBC(t, nil, args...)
		if code != exitUsage || !strings.Contains(errOut, c.msg) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("--standby %v: exit %d, want %d with one line naming %s:\n%s", c.flags, code, exitUsage, c.msg, errOut)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("--standby %v: a refused restore created %s", c.flags, dest)
		}
	}
}
