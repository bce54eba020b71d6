package restore

import (
	"context"
	"errors"
	"fmt"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/snapshot"
)

// SnapshotRecovery recovers a snapshot backup on the instance Restore runs
// on. Nothing is downloaded: the operator made a disk from each of the
// backup's snapshots, attached it and mounted it where the record says;
// Restore checks that, then writes what a file restore writes besides the
// files.
type SnapshotRecovery struct {
	// Instance is the recovery instance, as the provider names it.
	Instance string
	// Override holds the provider settings that differ from the record's
	// (the recovery instance's zone or resource group, an endpoint).
	Override snapshot.Config
	// Host is this machine's mounts and devices; nil: the real ones.
	Host snapshot.Host
	// Open opens the provider; nil: snapshot.Open.
	Open snapshot.Opener
}

// checkMethod refuses to restore a snapshot backup as files (it has none
// in the store) and to recover a file backup from disks.
func checkMethod(b *catalog.Backup, fromDisks bool) error {
	switch snap := len(b.Snapshots) > 0; {
	case snap && !fromDisks:
		return invalid(fmt.Errorf("backup %s is a snapshot backup: make disks from its snapshots (see gbc-backup-show), mount them where they were, and give --snapshot-recovery-instance NAME", b.ID))
	case !snap && fromDisks:
		return invalid(fmt.Errorf("backup %s is not a snapshot backup (method %s): restore it without --snapshot-recovery-instance", b.ID, b.Method))
	}
	return nil
}

// check checks, before anything is written, that disks made from b's
// snapshots are attached to the instance and mounted where the record
// says, and that dest is the data directory on them.
func (s *SnapshotRecovery) check(ctx context.Context, b *catalog.Backup, dest string) error {
	conf, err := snapshot.ConfigFor(b, s.Override)
	if err != nil {
		return invalid(fmt.Errorf("recovery of snapshot backup %s: %w", b.ID, err))
	}
	open := s.Open
	if open == nil {
		open = snapshot.Open
	}
	p, err := open(ctx, conf)
	if err != nil {
		return fmt.Errorf("snapshot provider %s: %w", conf.Provider, err)
	}
	var host snapshot.Host = snapshot.LocalHost{}
	if s.Host != nil {
		host = s.Host
	}
	err = snapshot.CheckRecovery(ctx, p, host, s.Instance, b, dest)
	switch {
	case errors.Is(err, snapshot.ErrMount):
		return refused(err)
	case errors.Is(err, snapshot.ErrNotFound):
		return missing(err)
	}
	return err
}

// recoverSnapshot writes into dest, the data directory on disks made from
// b's snapshots, what a file restore would have restored besides the
// files: backup_label and tablespace_map, then (unless rc is nil) the
// recovery configuration, written by the file restore's own code. A
// standby's disks hold its standby.signal: it goes, as from a file
// restore, unless rc asks for a standby.
func recoverSnapshot(b *catalog.Backup, dest string, rc *RecoveryConfig) error {
	if err := snapshot.WriteLabelFiles(dest, b); err != nil {
		return err
	}
	if rc != nil {
		if err := WriteRecovery(dest, *rc); err != nil {
			return fmt.Errorf("recovery configuration: %w", err)
		}
	} else if err := RemoveStandbySignal(dest); err != nil {
		return fmt.Errorf("recovery configuration: %w", err)
	}
	return nil
}
