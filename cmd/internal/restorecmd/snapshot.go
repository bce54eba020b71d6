package restorecmd

import (
	"context"
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/restore"
	"github.com/gbc-backup/gbc/snapshot"
)

// snapshotDescription is appended to gbc-restore's help.
const snapshotDescription = `

Snapshot backups (gbc-backup --snapshot-instance) are not downloaded: create
a disk from each of the backup's snapshots (gbc-backup-show lists them with
their mount points), attach the disks to the recovery instance and mount
each where the record says; then run gbc-restore on that instance with
--snapshot-recovery-instance and DEST_DIR the data directory, which is where
it was on the backed-up host. gbc-restore checks that each disk is attached
to the instance and mounted at its recorded mount point (and refuses, exit
code 4, if not), then writes backup_label, tablespace_map and the recovery
configuration, as a file restore does (a standby's standby.signal goes,
unless --standby). The provider, region, zone, project, subscription and
resource group come from the record; the provider options override them
where the recovery instance differs. Run it as root or as the
data directory's owner: the files written go to that owner.

  gbc-restore --snapshot-recovery-instance db2 s3://bucket/pg main latest /var/lib/postgresql/15/main`

// snapshotFlags are gbc-restore's options for snapshot backups.
func snapshotFlags() []ucli.Flag {
	flags := []ucli.Flag{
		cli.String("snapshot-recovery-instance", "recover a snapshot backup on this instance (the one gbc-restore runs on), from disks made from its snapshots and mounted where they were", ""),
	}
	flags = append(flags, cli.SnapshotInstanceFlags()...)
	return append(flags, cli.SnapshotAPIFlags()...)
}

// checkSnapshotArgs refuses, before the store is opened, options that do
// not go with --snapshot-recovery-instance. The provider options without
// it are not refused: they may come from GBC_* variables set for
// gbc-backup's snapshot backups, and a file restore has no use for them.
func checkSnapshotArgs(instance string, relocate map[string]string) error {
	if instance != "" && len(relocate) > 0 {
		return cli.Usagef("--tablespace does not apply with --snapshot-recovery-instance: a snapshot backup's tablespaces are on its disks, mounted where they were")
	}
	return nil
}

// checkMethod refuses to restore a snapshot backup as files (it has none
// in the store) and to recover a file backup from disks.
func checkMethod(b *catalog.Backup, instance string) error {
	switch snap := len(b.Snapshots) > 0; {
	case snap && instance == "":
		return cli.Usagef("backup %s is a snapshot backup: make disks from its snapshots (see gbc-backup-show), mount them where they were, and give --snapshot-recovery-instance NAME", b.ID)
	case !snap && instance != "":
		return cli.Usagef("backup %s is not a snapshot backup (method %s): restore it without --snapshot-recovery-instance", b.ID, b.Method)
	}
	return nil
}

// checkSnapshotRecovery checks, before anything is written, that disks made
// from b's snapshots are attached to instance and mounted where the record
// says, and that dest is the data directory on them.
func checkSnapshotRecovery(ctx context.Context, e *cli.Env, b *catalog.Backup, instance, dest string) error {
	conf, err := snapshot.ConfigFor(b, e.SnapshotConfig())
	if err != nil {
		return cli.Exit(cli.ExitUsage, fmt.Errorf("recovery of snapshot backup %s: %w", b.ID, err))
	}
	p, err := snapshot.Open(ctx, conf)
	if err != nil {
		return fmt.Errorf("snapshot provider %s: %w", conf.Provider, err)
	}
	err = snapshot.CheckRecovery(ctx, p, e.SnapshotHost(), instance, b, dest)
	switch {
	case errors.Is(err, snapshot.ErrMount):
		return cli.Exit(cli.ExitConflict, err)
	case errors.Is(err, snapshot.ErrNotFound):
		return cli.Exit(cli.ExitNotFound, err)
	}
	return err
}

// recoverSnapshot writes into dest, the data directory on disks made from
// b's snapshots, what a file restore would have restored besides the
// files: backup_label and tablespace_map, then (unless rc is nil) the
// recovery configuration, written by the file restore's own code. A
// standby's disks hold its standby.signal: it goes, as from a file
// restore, unless rc asks for a standby.
func recoverSnapshot(e *cli.Env, b *catalog.Backup, dest string, rc *restore.RecoveryConfig) error {
	if err := snapshot.WriteLabelFiles(dest, b); err != nil {
		return err
	}
	if rc != nil {
		if err := restore.WriteRecovery(dest, *rc); err != nil {
			return fmt.Errorf("recovery configuration: %w", err)
		}
	} else if err := restore.RemoveStandbySignal(dest); err != nil {
		return fmt.Errorf("recovery configuration: %w", err)
	}
	for _, s := range b.Snapshots {
		e.Log.Infof("snapshot %s of disk %s: mounted at %s", s.ID, s.Disk, s.MountPoint)
	}
	return nil
}
