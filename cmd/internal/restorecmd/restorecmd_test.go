package restorecmd

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/restore"
)

// The restore's error classes keep gbc-restore's exit codes; the others
// keep the store's and the system's.
func TestExitError(t *testing.T) {
	snapWithTablespace := restore.Request{Snapshot: &restore.SnapshotRecovery{Instance: "db2"}, Relocate: map[string]string{"fast": "/mnt/fast"}}
	for _, c := range []struct {
		err  error
		code int
	}{
		{snapWithTablespace.Check(), cli.ExitUsage},
		{restore.Request{Target: restore.Target{Name: "a", Immediate: true}}.Check(), cli.ExitUsage},
		{restore.Request{Delta: true, Snapshot: &restore.SnapshotRecovery{Instance: "db2"}}.Check(), cli.ExitUsage},
		{fmt.Errorf("x: %w", restore.ErrRefused), cli.ExitConflict},
		{fmt.Errorf("x: %w", restore.ErrMissing), cli.ExitNotFound},
		{fmt.Errorf("no backup: %w", cloud.ErrNotFound), cli.ExitNotFound},
		{fmt.Errorf("denied: %w", cloud.ErrPermission), cli.ExitStore},
		{fmt.Errorf("write: %w", syscall.ENOSPC), cli.ExitNoSpace},
		{errors.New("broken"), cli.ExitFailure},
	} {
		got := exitError(c.err)
		if code := cli.CodeOf(got); code != c.code || got.Error() != c.err.Error() {
			t.Errorf("%v: exit %d (%q), want %d and the same message", c.err, code, got, c.code)
		}
	}
	if err := snapWithTablespace.Check(); !strings.Contains(err.Error(), "--tablespace does not apply with --snapshot-recovery-instance") {
		t.Errorf("--tablespace with --snapshot-recovery-instance: %v", err)
	}
}

// What gbc-restore prints is a contract: each notice, word for word.
func TestLogReport(t *testing.T) {
	var out strings.Builder
	l := cli.NewLogger(&out, "gbc-restore", true)
	b := &catalog.Backup{ID: "20261124T214842Z", Name: "nightly", EndTime: time.Date(2026, 11, 24, 22, 48, 42, 0, time.FixedZone("", 3600)), DataSize: 3 << 30}
	ev := logEvent(l)
	ev(restore.FromStandby{Backup: b})
	ev(restore.Started{Backup: b, Dest: "/srv/pitr"})
	ev(restore.PartRestored{Key: "k/0.tar.zst", Files: 3, Bytes: 3 << 20})
	ev(restore.PartRetry{Key: "k/1.tar.zst", Err: errors.New("download: connection reset"), Attempt: 2, Attempts: 3})
	ev(restore.Written{Files: 10, Bytes: 10 << 20, Elapsed: 2 * time.Second})
	ev(restore.NoManifest{BackupID: b.ID})
	logReport(l, &restore.Report{
		Backup: b, Dest: "/srv/pitr",
		Files: &restore.Result{Files: 10, Bytes: 10 << 20, StoredBytes: 1 << 20, Write: 2 * time.Second, Sync: 3 * time.Second,
			Tablespaces: []restore.Placement{{OID: "16384", Name: "fast", Location: "/mnt/fast"}}},
		Recovery: &restore.RecoveryConfig{WALRestore: "gbc-wal-restore", StoreURL: "s3://b/pg", Server: "main",
			Target: restore.Target{Name: "after_a"}, DisableArchiving: true},
	})
	want := `gbc-restore: backup 20261124T214842Z was taken from a standby: the restored server is not one (no standby.signal, primary_conninfo and primary_slot_name reset) and recovers on its own; --standby restores a replica
gbc-restore: restoring backup 20261124T214842Z (nightly) (ended 2026-11-24T21:48:42Z, 3.0GiB) into /srv/pitr
gbc-restore: restored part k/0.tar.zst: 3 files, 3.0 MiB
gbc-restore: warning: part k/1.tar.zst: download: connection reset; restoring it again (attempt 2 of 3)
gbc-restore: wrote 10 files, 10.0 MiB in 2s (5.0 MiB/s); making them durable
gbc-restore: backup 20261124T214842Z has no backup_manifest: pg_verifybackup cannot check this restore
gbc-restore: restored 10 files, 10.0MiB (1.0MiB downloaded) in 5s: written in 2s, made durable in 3s (2.0MiB/s)
gbc-restore: tablespace fast (oid 16384) restored into /mnt/fast
gbc-restore: recovery will stop at --target-name; restore_command: gbc-wal-restore s3://b/pg main %f %p
`
	if os.Geteuid() == 0 {
		want += "gbc-restore: warning: the files belong to root: give them to PostgreSQL's OS user (chown -R postgres: /srv/pitr) before starting it\n"
	}
	want += "gbc-restore: start it with: pg_ctl -D /srv/pitr start\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	// A snapshot recovery as a standby: the disks, no root warning.
	out.Reset()
	ev(restore.Started{Backup: b, Dest: "/var/lib/pg", Snapshot: true})
	logReport(l, &restore.Report{Backup: b, Dest: "/var/lib/pg",
		Snapshots: []catalog.Snapshot{{ID: "snap-0a", Disk: "pgdata", MountPoint: "/var/lib/pg"}},
		Recovery:  &restore.RecoveryConfig{WALRestore: "gbc-wal-restore", StoreURL: "s3://b/pg", Server: "main", Standby: true}})
	want = `gbc-restore: recovering snapshot backup 20261124T214842Z (nightly) (ended 2026-11-24T21:48:42Z) in /var/lib/pg, on disks made from its snapshots
gbc-restore: snapshot snap-0a of disk pgdata: mounted at /var/lib/pg
gbc-restore: the server will start as a standby: it replays the archived WAL, then keeps following through restore_command and the original's primary_conninfo, if any; restore_command: gbc-wal-restore s3://b/pg main %f %p
gbc-restore: warning: the restored server keeps the original's archive_mode and archive_command: if it archives, its new timeline goes to where the original archives (use --disable-archiving for a copy)
gbc-restore: start it with: pg_ctl -D /var/lib/pg start
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}

	// A delta restore says what it left, wrote and removed.
	out.Reset()
	logReport(l, &restore.Report{Backup: b, Dest: "/var/lib/pg",
		Files: &restore.Result{Files: 10, Bytes: 3 << 20, StoredBytes: 5 << 20, Delta: true, Kept: 7, Removed: 4, Write: time.Second, Sync: time.Second}})
	want = `gbc-restore: restored 10 files, 3.0MiB (5.0MiB downloaded) in 2s: written in 1s, made durable in 1s (1.5MiB/s)
gbc-restore: delta: 7 of 10 files were already as in the backup; 3.0MiB written; 4 entries the backup does not hold removed
`
	if os.Geteuid() == 0 {
		want += "gbc-restore: warning: the files belong to root: give them to PostgreSQL's OS user (chown -R postgres: /var/lib/pg) before starting it\n"
	}
	want += "gbc-restore: start it with: pg_ctl -D /var/lib/pg start\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
