package cli

import (
	"time"

	ucli "github.com/urfave/cli/v2"
)

// SnapshotAPIFlags point a command at a provider's compute API other than
// the public one (a private cloud, an emulator). Every command that talks
// to the provider about snapshots takes them: gbc-backup creates them,
// gbc-backup-delete deletes them, and a record never holds an endpoint.
func SnapshotAPIFlags() []ucli.Flag {
	return []ucli.Flag{
		String("snapshot-endpoint-url", "the provider's compute API endpoint, for private clouds and emulators", ""),
		// For tests: providers' operations are polled every few seconds,
		// which a fake answering at once makes a waste of test time.
		&ucli.DurationFlag{Name: "snapshot-poll-interval", Hidden: true, EnvVars: envVars("snapshot-poll-interval")},
	}
}

// SnapshotAPI returns the values of SnapshotAPIFlags: the endpoint
// override and the poll interval (0: the provider's default).
func (e *Env) SnapshotAPI() (endpoint string, poll time.Duration) {
	return e.String("snapshot-endpoint-url"), e.Duration("snapshot-poll-interval")
}
