package restorecmd

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
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
