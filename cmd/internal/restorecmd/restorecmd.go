// Package restorecmd is gbc-restore: rebuild a data directory from a backup,
// ready for point-in-time recovery.
package restorecmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/listcmd"
	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/restore"
	"github.com/gbc-backup/gbc/wal"
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
  gbc-restore --standby s3://bucket/pg main latest /var/lib/postgresql/15/replica`

// Command returns gbc-restore.
func Command() *cli.Command {
	flags := append(cli.StoreFlags(), cli.JobsFlag(),
		&ucli.StringSliceFlag{Name: "tablespace", Usage: "restore tablespace NAME (or OID) into LOCATION instead of its original place; repeatable", EnvVars: []string{"GBC_TABLESPACE"}},
		cli.String("target-time", "recover up to this time, with a zone (\"2026-11-24 21:48:42+01\")", ""),
		cli.String("target-lsn", "recover up to this WAL location (16/B374D848)", ""),
		cli.String("target-xid", "recover up to this transaction id", ""),
		cli.String("target-name", "recover up to this restore point (pg_create_restore_point)", ""),
		cli.Bool("target-immediate", "stop as soon as the backup is consistent"),
		cli.String("target-timeline", "recover along this timeline: current, latest or a number (PostgreSQL's default: latest)", ""),
		cli.String("target-inclusive", "true: stop just after the target (PostgreSQL's default); false: just before it", ""),
		cli.String("target-action", "at the target: pause, promote or shutdown (PostgreSQL's default: pause)", ""),
		cli.Bool("no-recovery-config", "write no recovery.signal nor recovery settings (a standby's standby.signal is still left out)"),
		cli.Bool("standby", "start the restored server as a standby (standby.signal), keeping the original's primary_conninfo and primary_slot_name: to build a replica; no recovery target"),
		cli.String("wal-restore-command", "program (with options) to fetch WAL in restore_command, instead of this gbc's gbc-wal-restore", ""),
		cli.Bool("disable-archiving", "add archive_mode = off, so that a restored copy cannot archive into the original's store"),
		cli.Bool("no-wal-check", "skip checking that the store holds the backup's WAL, from the same cluster"),
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
	target, err := targetFromFlags(e)
	if err != nil {
		return err
	}
	relocate, err := parseTablespaces(e.StringSlice("tablespace"))
	if err != nil {
		return err
	}
	syncMethod := e.String("sync-method")
	if syncMethod != restore.SyncFsync && syncMethod != restore.SyncSyncfs {
		return cli.Usagef("--sync-method %q: use %s or %s", syncMethod, restore.SyncFsync, restore.SyncSyncfs)
	}
	noRecovery, standby := e.Bool("no-recovery-config"), e.Bool("standby")
	if noRecovery && target.Kind() != "" {
		return cli.Usagef("--no-recovery-config writes no recovery settings, so a recovery target cannot be given with it")
	}
	if noRecovery && standby {
		return cli.Usagef("--standby writes standby.signal and recovery settings, which --no-recovery-config leaves out: give one of them")
	}
	instance := e.String("snapshot-recovery-instance")
	if err := checkSnapshotArgs(instance, relocate); err != nil {
		return err
	}

	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	layout := catalog.Layout{Server: server}
	b, err := catalog.Find(ctx, s, layout, ref, func(b *catalog.Backup) bool { return target.Before(b) })
	if err != nil {
		return err
	}
	if b.Status != catalog.StatusDone {
		return cli.Exitf(cli.ExitNotFound, "backup %s has status %s: only DONE backups can be restored (see gbc-backup-list)", b.ID, b.Status)
	}
	if err := checkMethod(b, instance); err != nil {
		return err
	}
	if err := target.Reachable(b); err != nil {
		return cli.Exit(cli.ExitUsage, err)
	}
	if b.FromStandby && !standby {
		e.Log.Infof("backup %s was taken from a standby: the restored server is not one (no standby.signal, primary_conninfo and primary_slot_name reset) and recovers on its own; --standby restores a replica", b.ID)
	}
	if instance != "" {
		if err := checkSnapshotRecovery(ctx, e, b, instance, dest); err != nil {
			return err
		}
		e.Log.Infof("recovering snapshot backup %s%s (ended %s) in %s, on disks made from its snapshots", b.ID, nameSuffix(b), b.EndTime.UTC().Format(time.RFC3339), dest)
	} else {
		if _, err := restore.Plan(b, dest, relocate); err != nil {
			return cli.Exit(cli.ExitUsage, err)
		}
		e.Log.Infof("restoring backup %s%s (ended %s, %s) into %s", b.ID, nameSuffix(b), b.EndTime.UTC().Format(time.RFC3339), listcmd.Bytes(b.DataSize), dest)
	}

	if !noRecovery && !e.Bool("no-wal-check") {
		if err := restore.CheckWAL(ctx, s, layout, b); err != nil {
			switch {
			case errors.Is(err, restore.ErrSystemMismatch), errors.Is(err, wal.ErrWrongFile):
				return cli.Exit(cli.ExitConflict, err)
			case errors.Is(err, restore.ErrMissingWAL):
				return cli.Exit(cli.ExitNotFound, fmt.Errorf("%w (--no-wal-check restores anyway)", err))
			}
			return err
		}
	}

	var rc *restore.RecoveryConfig
	if !noRecovery {
		prog, err := walRestoreProgram(e.String("wal-restore-command"))
		if err != nil {
			return err
		}
		rc = &restore.RecoveryConfig{
			WALRestore:       prog,
			StoreArgs:        forwardedStoreArgs(e),
			StoreURL:         storeURL,
			Server:           server,
			Target:           target,
			DisableArchiving: e.Bool("disable-archiving"),
			Standby:          standby,
			BackupID:         b.ID,
			Now:              time.Now(),
		}
	}
	if instance != "" {
		err = recoverSnapshot(e, b, dest, rc)
	} else {
		err = restoreFiles(ctx, e, restore.Options{
			Store: s, Layout: layout, Backup: b, Dest: dest,
			Relocate: relocate, Jobs: e.Jobs(), Recovery: rc, SyncMethod: syncMethod,
			Logf: e.Log.Debugf, Warnf: e.Log.Warnf,
		})
	}
	if err != nil {
		return err
	}
	if rc != nil {
		switch kind := target.Kind(); {
		case rc.Standby:
			e.Log.Infof("the server will start as a standby: it replays the archived WAL, then keeps following through restore_command and the original's primary_conninfo, if any; restore_command: %s", rc.RestoreCommand())
		case kind != "":
			e.Log.Infof("recovery will stop at --target-%s; restore_command: %s", kind, rc.RestoreCommand())
		default:
			e.Log.Infof("recovery will replay all archived WAL; restore_command: %s", rc.RestoreCommand())
		}
		if !rc.DisableArchiving {
			e.Log.Warnf("the restored server keeps the original's archive_mode and archive_command: if it archives, its new timeline goes to where the original archives (use --disable-archiving for a copy)")
		}
	}
	if os.Geteuid() == 0 && instance == "" {
		// A snapshot recovery's few files go to the data directory's
		// owner; a file restore's are too many to chown one by one.
		e.Log.Warnf("the files belong to root: give them to PostgreSQL's OS user (chown -R postgres: %s) before starting it", dest)
	}
	e.Log.Infof("start it with: pg_ctl -D %s start", dest)
	return nil
}

// restoreFiles downloads the backup's parts into o.Dest and reports what
// it restored.
func restoreFiles(ctx context.Context, e *cli.Env, o restore.Options) error {
	res, err := restore.Run(ctx, o)
	if err != nil {
		// Refusals that protect what is in the directory: someone's
		// files, or another restore's work in progress.
		var ne *restore.NotEmptyError
		var be *restore.BusyError
		if errors.As(err, &ne) || errors.As(err, &be) {
			return cli.Exit(cli.ExitConflict, err)
		}
		return err
	}
	total := res.Write + res.Sync
	e.Log.Infof("restored %d files, %s (%s downloaded) in %s: written in %s, made durable in %s (%s/s)",
		res.Files, listcmd.Bytes(res.Bytes), listcmd.Bytes(res.StoredBytes), total.Round(time.Millisecond),
		res.Write.Round(time.Millisecond), res.Sync.Round(time.Millisecond), listcmd.Bytes(int64(float64(res.Bytes)/total.Seconds())))
	for _, p := range res.Tablespaces {
		e.Log.Infof("tablespace %s (oid %s) restored into %s", p.Name, p.OID, p.Location)
	}
	return nil
}

func targetFromFlags(e *cli.Env) (restore.Target, error) {
	t := restore.Target{
		XID:       e.String("target-xid"),
		Name:      e.String("target-name"),
		Immediate: e.Bool("target-immediate"),
		Timeline:  e.String("target-timeline"),
		Action:    e.String("target-action"),
	}
	if v := e.String("target-time"); v != "" {
		tm, err := restore.ParseTime(v)
		if err != nil {
			return t, cli.Exit(cli.ExitUsage, err)
		}
		t.Time = tm
	}
	if v := e.String("target-lsn"); v != "" {
		lsn, err := pg.ParseLSN(v)
		if err != nil || lsn == 0 {
			return t, cli.Usagef("--target-lsn %q: use a WAL location such as 16/B374D848", v)
		}
		t.LSN = lsn
	}
	if v := e.String("target-inclusive"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return t, cli.Usagef("--target-inclusive %q: use true or false", v)
		}
		t.Inclusive = &b
	}
	// Before Check, whose "--target-action needs a recovery target" would
	// mislead one who asked for a standby.
	if e.Bool("standby") {
		if err := t.CheckStandby(); err != nil {
			return t, cli.Exit(cli.ExitUsage, err)
		}
	}
	if err := t.Check(); err != nil {
		return t, cli.Exit(cli.ExitUsage, err)
	}
	return t, nil
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

// walRestoreProgram is the start of restore_command: the override as given,
// or the gbc-wal-restore link beside this executable, or this multi-call
// binary with the command name as first argument.
func walRestoreProgram(override string) (string, error) {
	if override != "" {
		return override, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this program's path for restore_command (give --wal-restore-command): %w", err)
	}
	link := filepath.Join(filepath.Dir(exe), "gbc-wal-restore")
	if fi, err := os.Stat(link); err == nil && fi.Mode().IsRegular() {
		return restore.ProgramCommand(link), nil
	}
	return restore.ProgramCommand(exe, "wal-restore"), nil
}

// forwardedStoreArgs are the store options gbc-restore was given that
// gbc-wal-restore needs to reach the same store. None is a secret; the
// write-only ones (server-side encryption) do not matter for reading.
func forwardedStoreArgs(e *cli.Env) []string {
	var args []string
	for _, name := range []string{"endpoint-url", "s3-region"} {
		if v := e.String(name); v != "" {
			args = append(args, "--"+name, v)
		}
	}
	if e.Bool("s3-path-style") {
		args = append(args, "--s3-path-style")
	}
	if d := e.Duration("retry-timeout"); d > 0 {
		args = append(args, "--retry-timeout", d.String())
	}
	return args
}

func nameSuffix(b *catalog.Backup) string {
	if b.Name == "" {
		return ""
	}
	return " (" + b.Name + ")"
}
