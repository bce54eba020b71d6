// Package restorecmd is gbc-restore: rebuild a data directory from a backup,
// ready for point-in-time recovery.
package restorecmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/recoveryflags"
	"github.com/gbc-backup/gbc/cmd/internal/render"
	"github.com/gbc-backup/gbc/cmd/internal/snapshotenv"
	"github.com/gbc-backup/gbc/restore"
)

const description = `Downloads the parts of a backup in parallel, verifies each part's checksum,
and writes the data directory DEST_DIR (which must be missing or empty) and
its tablespaces. While it writes, it holds DEST_DIR/.gbc-restore.lock
locked, so that a second gbc-restore into the same directory refuses (exit
4) without touching it; the file is gone when gbc-restore ends. Unless --no-recovery-config, it writes recovery.signal and
appends to postgresql.auto.conf a restore_command calling gbc-wal-restore on
the same store and server, with the recovery target given. Start the server
afterwards (pg_ctl -D DEST_DIR start) as the database's OS user, with the
store credentials in its environment: none is written into the config.

With --delta, DEST_DIR may instead be a data directory of the backup's
system (a failed primary, a lagging standby): every file is compared with
the backup block by block, only the blocks that differ are written, and
whatever the backup does not hold is removed (old WAL in pg_wal included),
so that the result is the same as a restore into an empty directory. It
refuses a directory that is not a data directory, one of another system,
and one a server is running on (exit 4); interrupted, it leaves a
directory PostgreSQL will not start, which --delta again finishes.

A backup taken from a standby restores as a server that recovers and
promotes on its own: the standby's standby.signal is left out, and
primary_conninfo and primary_slot_name are reset. With --standby it restores
as a standby instead, to build a replica: standby.signal rather than
recovery.signal, the original's primary_conninfo and primary_slot_name kept,
and no recovery target (only --target-timeline).

BACKUP_ID is an id, a backup name, latest, oldest, or auto: with a recovery
target, the newest DONE backup that ended before it.

Run it as the OS user PostgreSQL will run as: files belong to who wrote them.

Examples:
  gbc-restore s3://bucket/pg main latest /var/lib/postgresql/15/main
  gbc-restore --target-time "2026-11-24 21:48:42+01" --target-action promote \
      s3://bucket/pg main auto /srv/pitr
  gbc-restore --tablespace fast:/mnt/ssd/fast gs://bucket main 20261124T214842Z /srv/copy
  gbc-restore --standby s3://bucket/pg main latest /var/lib/postgresql/15/replica
  gbc-restore --delta s3://bucket/pg main latest /var/lib/postgresql/15/main`

// Command returns gbc-restore.
func Command() *cli.Command {
	flags := append(cli.StoreFlags(), cli.JobsFlag(),
		&ucli.StringSliceFlag{Name: "tablespace", Usage: "restore tablespace NAME (or OID) into LOCATION instead of its original place; repeatable", EnvVars: []string{"GBC_TABLESPACE"}},
	)
	flags = append(flags, recoveryflags.TargetFlags()...)
	flags = append(flags,
		cli.Bool("no-recovery-config", "write no recovery.signal nor recovery settings (a standby's standby.signal is still left out)"),
		cli.Bool("standby", "start the restored server as a standby (standby.signal), keeping the original's primary_conninfo and primary_slot_name: to build a replica; no recovery target"),
		recoveryflags.WALRestoreFlag(),
		cli.Bool("disable-archiving", "add archive_mode = off, so that a restored copy cannot archive into the original's store"),
		cli.Bool("no-wal-check", "skip checking that the store holds the backup's WAL, from the same cluster"),
		cli.Bool("delta", "restore over DEST_DIR, a stopped data directory of the backup's system: write only the blocks that differ, remove what the backup does not hold"),
		cli.String("sync-method", "make the restore durable with fsync (syncfs, then fsync of every file and directory) or syncfs (of each file system only, faster with many files; Linux 5.8+ reports its errors)", restore.SyncFsync),
	)
	flags = append(flags, snapshotFlags()...)
	return &cli.Command{
		Name:        "gbc-restore",
		Usage:       "rebuild a data directory from a backup, ready for point-in-time recovery",
		ArgsUsage:   "STORE_URL SERVER_NAME BACKUP_ID DEST_DIR",
		Description: description + snapshotDescription,
		MinArgs:     4,
		MaxArgs:     4,
		Flags:       flags,
		Action:      run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server, ref, destArg := e.Args[0], e.Args[1], e.Args[2], e.Args[3]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	dest, err := filepath.Abs(destArg)
	if err != nil {
		return cli.Usagef("DEST_DIR %q: %v", destArg, err)
	}
	// Checked here too (Request.Check checks it again), so that a wrong
	// target is reported before a wrong --tablespace, as it always was.
	target, err := recoveryflags.Target(e, e.Bool("standby"))
	if err != nil {
		return err
	}
	relocate, err := parseTablespaces(e.StringSlice("tablespace"))
	if err != nil {
		return err
	}
	req := restore.Request{
		Server: server, Backup: ref, Dest: dest,
		Target:           target,
		Standby:          e.Bool("standby"),
		NoRecoveryConfig: e.Bool("no-recovery-config"),
		DisableArchiving: e.Bool("disable-archiving"),
		NoWALCheck:       e.Bool("no-wal-check"),
		Delta:            e.Bool("delta"),
		StoreURL:         storeURL,
		StoreArgs:        e.StoreArgs(), // every store flag that was set
		Relocate:         relocate,
		Jobs:             e.Jobs(),
		SyncMethod:       e.String("sync-method"),
		Events:           logEvent(e.Log),
	}
	if instance := e.String("snapshot-recovery-instance"); instance != "" {
		req.Snapshot = &restore.SnapshotRecovery{Instance: instance, Override: snapshotenv.Config(e), Host: snapshotenv.Host(e)}
	}
	// Before the store is opened: a mistake in the options costs no
	// connection.
	if err := req.Check(); err != nil {
		return exitError(err)
	}
	if !req.NoRecoveryConfig {
		if req.WALRestore, err = recoveryflags.WALRestoreProgram(e.String("wal-restore-command")); err != nil {
			return err
		}
	}

	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	req.Store = s
	rep, err := restore.Restore(ctx, req)
	if err != nil {
		return exitError(err)
	}
	logReport(e.Log, rep)
	return nil
}

// exitError gives the restore's error classes their exit codes; any other
// error keeps the one cli.CodeOf finds (the store's classes, a full disk).
func exitError(err error) error {
	switch {
	case errors.Is(err, restore.ErrInvalid):
		return cli.Exit(cli.ExitUsage, err)
	case errors.Is(err, restore.ErrRefused):
		return cli.Exit(cli.ExitConflict, err)
	case errors.Is(err, restore.ErrMissing):
		return cli.Exit(cli.ExitNotFound, err)
	}
	return err
}

// logEvent shows the restore's progress: notices by default, the
// restore of each part with -v.
func logEvent(l *cli.Logger) func(restore.Event) {
	return func(ev restore.Event) {
		switch ev := ev.(type) {
		case restore.FromStandby:
			l.Infof("backup %s was taken from a standby: the restored server is not one (no standby.signal, primary_conninfo and primary_slot_name reset) and recovers on its own; --standby restores a replica", ev.Backup.ID)
		case restore.Started:
			b := ev.Backup
			if ev.Snapshot {
				l.Infof("recovering snapshot backup %s%s (ended %s) in %s, on disks made from its snapshots", b.ID, nameSuffix(b), b.EndTime.UTC().Format(time.RFC3339), ev.Dest)
			} else {
				l.Infof("restoring backup %s%s (ended %s, %s) into %s", b.ID, nameSuffix(b), b.EndTime.UTC().Format(time.RFC3339), render.Bytes(b.DataSize), ev.Dest)
			}
		case restore.PartRestored:
			l.Debugf("restored part %s: %d files, %s", ev.Key, ev.Files, mib(ev.Bytes))
		case restore.PartRetry:
			l.Warnf("part %s: %v; restoring it again (attempt %d of %d)", ev.Key, ev.Err, ev.Attempt, ev.Attempts)
		case restore.Written:
			l.Debugf("wrote %d files, %s in %s (%s/s); making them durable", ev.Files, mib(ev.Bytes), ev.Elapsed.Round(time.Millisecond), mib(perSecond(ev.Bytes, ev.Elapsed)))
		case restore.NoManifest:
			l.Debugf("backup %s has no backup_manifest: pg_verifybackup cannot check this restore", ev.BackupID)
		}
	}
}

// logReport says what was restored, how the server will recover, and how
// to start it.
func logReport(l *cli.Logger, rep *restore.Report) {
	if res := rep.Files; res != nil {
		total := res.Write + res.Sync
		l.Infof("restored %d files, %s (%s downloaded) in %s: written in %s, made durable in %s (%s/s)",
			res.Files, render.Bytes(res.Bytes), render.Bytes(res.StoredBytes), total.Round(time.Millisecond),
			res.Write.Round(time.Millisecond), res.Sync.Round(time.Millisecond), render.Bytes(int64(float64(res.Bytes)/total.Seconds())))
		if res.Delta {
			written := render.Bytes(res.Bytes)
			if res.Bytes == 0 {
				written = "0B"
			}
			l.Infof("delta: %d of %d files were already as in the backup; %s written; %d entries the backup does not hold removed",
				res.Kept, res.Files, written, res.Removed)
		}
		for _, p := range res.Tablespaces {
			l.Infof("tablespace %s (oid %s) restored into %s", p.Name, p.OID, p.Location)
		}
	}
	for _, s := range rep.Snapshots {
		l.Infof("snapshot %s of disk %s: mounted at %s", s.ID, s.Disk, s.MountPoint)
	}
	if rc := rep.Recovery; rc != nil {
		switch kind := rc.Target.Kind(); {
		case rc.Standby:
			l.Infof("the server will start as a standby: it replays the archived WAL, then keeps following through restore_command and the original's primary_conninfo, if any; restore_command: %s", rc.RestoreCommand())
		case kind != "":
			l.Infof("recovery will stop at --target-%s; restore_command: %s", kind, rc.RestoreCommand())
		default:
			l.Infof("recovery will replay all archived WAL; restore_command: %s", rc.RestoreCommand())
		}
		if !rc.DisableArchiving {
			l.Warnf("the restored server keeps the original's archive_mode and archive_command: if it archives, its new timeline goes to where the original archives (use --disable-archiving for a copy)")
		}
	}
	if os.Geteuid() == 0 && rep.Files != nil {
		// A snapshot recovery's few files go to the data directory's
		// owner; a file restore's are too many to chown one by one.
		l.Warnf("the files belong to root: give them to PostgreSQL's OS user (chown -R postgres: %s) before starting it", rep.Dest)
	}
	l.Infof("start it with: pg_ctl -D %s start", rep.Dest)
}

// parseTablespaces reads --tablespace NAME:LOCATION values.
func parseTablespaces(values []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range values {
		name, loc, ok := strings.Cut(v, ":")
		if !ok || name == "" || loc == "" {
			return nil, cli.Usagef("--tablespace %q: use NAME:LOCATION, e.g. fast:/mnt/ssd/fast", v)
		}
		if !filepath.IsAbs(loc) {
			return nil, cli.Usagef("--tablespace %q: LOCATION must be an absolute path", v)
		}
		if _, dup := m[name]; dup {
			return nil, cli.Usagef("--tablespace %s given twice", name)
		}
		m[name] = filepath.Clean(loc)
	}
	return m, nil
}

func nameSuffix(b *catalog.Backup) string {
	if b.Name == "" {
		return ""
	}
	return " (" + b.Name + ")"
}

// mib prints a size the way the -v progress lines always have.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func perSecond(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}
