// Package snapshotenv reads the disk-snapshot options of a command
// (cli.SnapshotInstanceFlags, cli.SnapshotAPIFlags) into package snapshot's
// types. It is apart from package cli because package snapshot links the
// compute SDKs of three clouds, which the WAL commands, and the lean binary
// that serves them (cmd/gbc-wal), have no use for.
package snapshotenv

import (
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/snapshot"
)

// Config returns the provider configuration given by
// cli.SnapshotInstanceFlags and cli.SnapshotAPIFlags; the provider itself is the
// caller's to choose (gbc-backup infers it, gbc-restore reads the record).
func Config(e *cli.Env) snapshot.Config {
	c := snapshot.Config{
		Region:         e.String("aws-region"),
		Zone:           e.String("snapshot-zone"),
		Project:        e.String("gcp-project"),
		SubscriptionID: e.String("azure-subscription-id"),
		ResourceGroup:  e.String("azure-resource-group"),
	}
	c.Endpoint, c.PollInterval = e.SnapshotAPI()
	return c
}

// Host is this machine's mounts and devices, or the fake tree of
// --snapshot-host-root.
func Host(e *cli.Env) snapshot.LocalHost {
	return snapshot.LocalHost{Root: e.String("snapshot-host-root")}
}
