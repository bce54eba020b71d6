package restore

import (
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

// Event is what a restore reports while it runs: the caller decides what
// to show and how (gbc-restore logs each at its own verbosity). The
// restore itself never prints.
//
// The callback that receives events (Request.Events, Options.Events) is
// called from the goroutines that restore parts, so it must be safe for
// concurrent use; it should return quickly, since a part waits for it.
type Event interface{ event() }

// FromStandby: the chosen backup was taken from a standby and the request
// is not for a standby, so the restored server recovers and promotes on
// its own (standby.signal left out, primary_conninfo and
// primary_slot_name reset).
type FromStandby struct{ Backup *catalog.Backup }

// Started: the checks passed and the backup is being restored into Dest
// (Snapshot: recovered there, on disks made from its snapshots).
type Started struct {
	Backup   *catalog.Backup
	Dest     string
	Snapshot bool
}

// PartRestored: one part is downloaded, verified and written.
type PartRestored struct {
	Key          string
	Files, Bytes int64
}

// PartRetry: a part's download broke off; what it wrote is removed and it
// is restored again from its start, as attempt Attempt of Attempts.
type PartRetry struct {
	Key               string
	Err               error
	Attempt, Attempts int
}

// Written: every part is written (Files, Bytes in Elapsed); what follows
// makes them durable.
type Written struct {
	Files, Bytes int64
	Elapsed      time.Duration
}

// NoManifest: the backup has no backup_manifest, so pg_verifybackup
// cannot check the restored directory.
type NoManifest struct{ BackupID string }

func (FromStandby) event()  {}
func (Started) event()      {}
func (PartRestored) event() {}
func (PartRetry) event()    {}
func (Written) event()      {}
func (NoManifest) event()   {}

// emitter returns a callback that is never nil.
func emitter(f func(Event)) func(Event) {
	if f == nil {
		return func(Event) {}
	}
	return f
}
