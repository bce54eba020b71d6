package cli

import (
	"time"

	ucli "github.com/urfave/cli/v2"
)

// SnapshotAPIFlags point a command at a provider's compute API other than
// the public one (a private cloud, an emulator). Every command that talks
// to the provider about snapshots takes them: gbc-backup creates them,
// gbc-backup-delete deletes them, gbc-restore checks the disks made from
// them, and a record never holds an endpoint.
func SnapshotAPIFlags() []ucli.Flag {
	// For tests: providers' operations are polled every few seconds,
	// which a fake answering at once makes a waste of test time.
	poll := Duration("snapshot-poll-interval", "", 0, 0, "a duration such as 1s (0: the provider's default)")
	poll.Hidden = true
	return []ucli.Flag{
		String("snapshot-endpoint-url", "the provider's compute API endpoint, for private clouds and emulators", ""),
		poll,
	}
}

// SnapshotAPI returns the values of SnapshotAPIFlags: the endpoint
// override and the poll interval (0: the provider's default).
func (e *Env) SnapshotAPI() (endpoint string, poll time.Duration) {
	return e.String("snapshot-endpoint-url"), e.Duration("snapshot-poll-interval")
}

// SnapshotInstanceFlags locate the instance a command runs on and its
// disks (gbc-backup: the one backed up; gbc-restore: the recovery
// instance, which may live in another zone or resource group than the
// record says), and where this machine's mounts and devices are read.
//
// The values they give are read by package snapshotenv, which imports
// package snapshot and its compute SDKs: this package does not, so that
// the WAL front (cmd/gbc-wal) does not link them.
func SnapshotInstanceFlags() []ucli.Flag {
	hostRoot := String("snapshot-host-root", "read mounts and devices under this directory instead of /", "")
	// For tests: a fake machine's /proc, /sys and /dev.
	hostRoot.Hidden = true
	return []ucli.Flag{
		String("snapshot-zone", "GCP: the instance's zone", ""),
		String("gcp-project", "GCP: the project of the instance and its snapshots", ""),
		String("azure-subscription-id", "Azure: the subscription of the VM and its snapshots", ""),
		String("azure-resource-group", "Azure: the resource group of the VM (gbc-backup makes the snapshots there)", ""),
		String("aws-region", "AWS: the instance's region (default: the SDK's configuration, then the instance's own)", ""),
		hostRoot,
	}
}
