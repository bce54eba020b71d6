package backupcmd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/backup"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/snapshotenv"
	"github.com/gbc-backup/gbc/snapshot"
)

// snapshotDescription is appended to gbc-backup's help.
const snapshotDescription = `

Snapshot backups: with --snapshot-instance and --snapshot-disk, gbc-backup
snapshots the cloud disks holding the data directory and every tablespace
instead of copying files (AWS EBS, GCP persistent disks, Azure managed
disks). It runs on the database host: it checks that PGDATA and every
tablespace lie on the listed disks, then between pg_backup_start and
pg_backup_stop snapshots the disks in parallel and waits until each is
complete. The record keeps the backup_label, tablespace_map and snapshot
details; gbc-restore --snapshot-recovery-instance uses them once disks made
from the snapshots are mounted where they were. The provider comes from
--snapshot-provider, else from the provider options given, else from
STORE_URL's scheme. Credentials come from each SDK's standard chain.

  gbc-backup --snapshot-instance i-0abc --snapshot-disk pgdata --aws-region eu-west-1 s3://bucket/pg main
  gbc-backup --snapshot-instance db1 --snapshot-disk db1-data --snapshot-zone europe-west1-b --gcp-project proj gs://bucket/pg main
  gbc-backup --snapshot-instance db1 --snapshot-disk db1-data --azure-subscription-id SUB --azure-resource-group rg azblob://backups/pg main`

// snapshotFlags are gbc-backup's options for snapshot backups.
func snapshotFlags() []ucli.Flag {
	flags := []ucli.Flag{
		cli.String("snapshot-instance", "take a snapshot backup of the disks of this instance (the one gbc-backup runs on): AWS instance id or Name tag, GCP instance name, Azure VM name", ""),
		&ucli.StringSliceFlag{Name: "snapshot-disk", Usage: "a disk to snapshot (AWS volume id or Name tag, GCP or Azure disk name); repeat for each disk holding PGDATA or a tablespace", EnvVars: []string{"GBC_SNAPSHOT_DISK"}},
		cli.String("snapshot-provider", "aws, gcp or azure (default: from the provider options given, else from STORE_URL)", ""),
		cli.String("snapshot-lock-mode", "AWS: lock each snapshot, in compliance or governance mode (see EBS snapshot lock)", ""),
		cli.Int("snapshot-lock-duration", "AWS: days each snapshot stays locked (with --snapshot-lock-mode)", 0),
		cli.Duration("snapshot-timeout", "give up when the snapshots are not complete after this long (0: no limit)",
			6*time.Hour, 0, "a duration such as 30m or 6h (0: no limit)"),
	}
	flags = append(flags, cli.SnapshotInstanceFlags()...)
	return append(flags, cli.SnapshotAPIFlags()...)
}

// runBackup takes the backup gbc-backup's options ask for: a snapshot
// backup when a snapshot option is given, else Run's file backup.
func runBackup(ctx context.Context, e *cli.Env, o backup.Options) (*catalog.Backup, error) {
	if !e.IsSet("snapshot-instance") && !e.IsSet("snapshot-disk") {
		return backup.Run(ctx, o)
	}
	so, err := snapshotOptions(ctx, e)
	if err != nil {
		return nil, err
	}
	b, err := backup.RunSnapshot(ctx, o, so)
	if err != nil {
		if errors.Is(err, snapshot.ErrNotFound) {
			return nil, cli.Exit(cli.ExitNotFound, err)
		}
		return nil, err
	}
	for _, s := range b.Snapshots {
		e.Log.Infof("snapshot %s of disk %s (%d GiB, %s mounted at %s)", s.ID, s.Disk, s.SizeGiB, s.Device, s.MountPoint)
	}
	return b, nil
}

// snapshotOptions checks the snapshot options and opens the provider,
// before anything is asked of PostgreSQL.
func snapshotOptions(ctx context.Context, e *cli.Env) (backup.SnapshotOptions, error) {
	var so backup.SnapshotOptions
	so.Instance, so.Disks = e.String("snapshot-instance"), e.StringSlice("snapshot-disk")
	if so.Instance == "" || len(so.Disks) == 0 {
		return so, cli.Usagef("a snapshot backup needs --snapshot-instance and at least one --snapshot-disk")
	}
	if e.String("method") != "" {
		return so, cli.Usagef("--method does not apply to a snapshot backup (--snapshot-instance)")
	}
	conf := snapshotenv.Config(e)
	conf.Provider = e.String("snapshot-provider")
	if conf.Provider == "" {
		conf.Provider = inferProvider(conf, e.Args[0])
		if conf.Provider == "" {
			return so, cli.Usagef("give --snapshot-provider aws, gcp or azure: neither the options nor STORE_URL tell which cloud the instance is in")
		}
	}
	if err := conf.Check(); err != nil {
		return so, cli.Exit(cli.ExitUsage, err)
	}
	if mode := e.String("snapshot-lock-mode"); mode != "" || e.Int("snapshot-lock-duration") != 0 {
		if conf.Provider != "aws" {
			// A tag would not stop a deletion: refuse rather than let a
			// lock look applied.
			return so, cli.Usagef("--snapshot-lock-mode: snapshot locks exist on AWS only; on %s, protect snapshots with the provider's own resource locks or policies", conf.Provider)
		}
		so.Lock = &snapshot.Lock{Mode: mode, Days: e.Int("snapshot-lock-duration")}
		if err := so.Lock.Check(); err != nil {
			return so, cli.Usagef("%v (--snapshot-lock-mode, --snapshot-lock-duration)", err)
		}
	}
	so.Timeout = e.Duration("snapshot-timeout")
	so.Host = snapshotenv.Host(e)
	p, err := snapshot.Open(ctx, conf)
	if err != nil {
		return so, fmt.Errorf("snapshot provider %s: %w", conf.Provider, err)
	}
	so.Provider = p
	return so, nil
}

// inferProvider picks the cloud from the provider-specific options, else
// from the store's scheme: a database on GCP usually backs up to GCS.
func inferProvider(c snapshot.Config, storeURL string) string {
	switch {
	case c.Project != "" || c.Zone != "":
		return "gcp"
	case c.SubscriptionID != "" || c.ResourceGroup != "":
		return "azure"
	case c.Region != "":
		return "aws"
	}
	u, err := url.Parse(storeURL)
	if err != nil {
		return ""
	}
	return map[string]string{"s3": "aws", "gs": "gcp", "azblob": "azure"}[strings.ToLower(u.Scheme)]
}
