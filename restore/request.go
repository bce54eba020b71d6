package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/wal"
)

// Request is one restore as an operator asks for it: which backup, where,
// and how the restored server is to recover.
type Request struct {
	Store  cloud.Store
	Server string
	// Backup is an id, a backup name, latest, oldest, or auto: with a
	// recovery target, the newest DONE backup that ended before it.
	Backup string
	// Dest is the data directory, an absolute path: missing or empty for
	// a file restore (or with Delta, a data directory of the backup's
	// system), the data directory on the disks for a snapshot recovery.
	Dest string
	// Delta restores over an existing data directory of the backup's
	// system, writing only what differs and removing what the backup
	// does not hold (see Options.Delta).
	Delta bool

	// Target is where recovery stops; the zero Target replays all the
	// archived WAL.
	Target Target
	// Standby restores a replica: standby.signal, the original's
	// primary_conninfo and primary_slot_name kept, no recovery target.
	Standby bool
	// NoRecoveryConfig writes neither a signal file nor recovery settings
	// (a standby's standby.signal still goes).
	NoRecoveryConfig bool
	// DisableArchiving adds archive_mode = off to the recovery settings.
	DisableArchiving bool
	// NoWALCheck skips checking, before anything is written, that the
	// store holds the backup's WAL, from the same cluster.
	NoWALCheck bool

	// WALRestore, StoreArgs and StoreURL make restore_command (see
	// RecoveryConfig): the caller knows which program fetches WAL and
	// which of its own store options that program needs to reach the
	// same store.
	WALRestore string
	StoreArgs  []string
	StoreURL   string

	// Relocate maps a tablespace name or OID to a new location (file
	// restores only).
	Relocate map[string]string
	// Jobs is how many parts are restored at once.
	Jobs int
	// SyncMethod is SyncFsync (the default, for "") or SyncSyncfs.
	SyncMethod string

	// Snapshot, when set, recovers a snapshot backup from disks made from
	// its snapshots instead of downloading a file backup.
	Snapshot *SnapshotRecovery

	// Events receives progress as it happens (see Event); nil is silent.
	Events func(Event)
}

// Report says what Restore did.
type Report struct {
	// Backup is the backup restored.
	Backup *catalog.Backup
	Dest   string
	// Files is what a file restore wrote; nil for a snapshot recovery.
	Files *Result
	// Snapshots are those whose disks a snapshot recovery used.
	Snapshots []catalog.Snapshot
	// Recovery is the recovery configuration written, nil with
	// NoRecoveryConfig.
	Recovery *RecoveryConfig
}

// Check refuses, with ErrInvalid, a request that is wrong whatever the
// store holds. Restore calls it first; a caller may call it before
// opening the store, so that such a mistake costs no connection.
func (r Request) Check() error {
	if err := r.Target.CheckFor(r.Standby); err != nil {
		return invalid(err)
	}
	switch r.SyncMethod {
	case "", SyncFsync, SyncSyncfs:
	default:
		return invalid(fmt.Errorf("--sync-method %q: use %s or %s", r.SyncMethod, SyncFsync, SyncSyncfs))
	}
	if r.NoRecoveryConfig && r.Target.Kind() != "" {
		return invalid(errors.New("--no-recovery-config writes no recovery settings, so a recovery target cannot be given with it"))
	}
	if r.NoRecoveryConfig && r.Standby {
		return invalid(errors.New("--standby writes standby.signal and recovery settings, which --no-recovery-config leaves out: give one of them"))
	}
	if r.Snapshot != nil && r.Delta {
		return invalid(errors.New("--delta does not apply with --snapshot-recovery-instance: a snapshot recovery uses disks made from the snapshots, not the data directory in place"))
	}
	if r.Snapshot != nil && len(r.Relocate) > 0 {
		return invalid(errors.New("--tablespace does not apply with --snapshot-recovery-instance: a snapshot backup's tablespaces are on its disks, mounted where they were"))
	}
	return nil
}

// Restore chooses the backup, checks everything that can be checked
// before a byte is written (its status and method, the target, the
// tablespace relocation or the snapshot disks, and the WAL in the store),
// then restores it into r.Dest with the recovery configuration asked for.
// Its errors are classified by ErrInvalid, ErrRefused and ErrMissing.
func Restore(ctx context.Context, r Request) (*Report, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	emit := emitter(r.Events)
	layout := catalog.Layout{Server: r.Server}
	// latest and auto never choose a backup whose chain is incomplete.
	var sums []*catalog.Backup
	if !catalog.LooksLikeID(r.Backup) {
		var err error
		if sums, err = catalog.Summaries(ctx, r.Store, layout); err != nil {
			return nil, err
		}
	}
	b, err := catalog.Find(ctx, r.Store, layout, r.Backup, func(b *catalog.Backup) bool {
		if !r.Target.Before(b) {
			return false
		}
		_, cerr := Chain(b, sums)
		return cerr == nil
	})
	if err != nil {
		return nil, err
	}
	chain, err := loadChain(ctx, r.Store, layout, b)
	if err != nil {
		return nil, missing(err)
	}
	if b.Status != catalog.StatusDone {
		return nil, missing(fmt.Errorf("backup %s has status %s: only DONE backups can be restored (see gbc-backup-list)", b.ID, b.Status))
	}
	if err := checkMethod(b, r.Snapshot != nil); err != nil {
		return nil, err
	}
	if err := r.Target.Reachable(b); err != nil {
		return nil, invalid(err)
	}
	if b.FromStandby && !r.Standby {
		emit(FromStandby{Backup: b})
	}
	if r.Snapshot != nil {
		if err := r.Snapshot.check(ctx, b, r.Dest); err != nil {
			return nil, err
		}
	} else if _, err := Plan(b, r.Dest, r.Relocate); err != nil {
		return nil, invalid(err)
	}
	emit(Started{Backup: b, Dest: r.Dest, Snapshot: r.Snapshot != nil})

	if !r.NoRecoveryConfig && !r.NoWALCheck {
		if err := checkWAL(ctx, r.Store, layout, b); err != nil {
			return nil, err
		}
	}
	rep := &Report{Backup: b, Dest: r.Dest}
	if !r.NoRecoveryConfig {
		rep.Recovery = &RecoveryConfig{
			WALRestore:       r.WALRestore,
			StoreArgs:        r.StoreArgs,
			StoreURL:         r.StoreURL,
			Server:           r.Server,
			Target:           r.Target,
			DisableArchiving: r.DisableArchiving,
			Standby:          r.Standby,
			BackupID:         b.ID,
			Now:              time.Now(),
		}
	}
	if r.Snapshot != nil {
		if err := recoverSnapshot(b, r.Dest, rep.Recovery); err != nil {
			return nil, err
		}
		rep.Snapshots = b.Snapshots
		return rep, nil
	}
	rep.Files, err = Run(ctx, Options{
		Store: r.Store, Layout: layout, Backup: b, Chain: chain, Dest: r.Dest,
		Relocate: r.Relocate, Jobs: r.Jobs, Recovery: rep.Recovery, SyncMethod: r.SyncMethod,
		Delta: r.Delta, Events: r.Events,
	})
	if err != nil {
		// Refusals that protect what is in the directory: someone's
		// files, or another restore's work in progress.
		var ne *NotEmptyError
		var be *BusyError
		var de *DeltaRefusal
		if errors.As(err, &ne) || errors.As(err, &be) || errors.As(err, &de) {
			return nil, refused(err)
		}
		return nil, err
	}
	return rep, nil
}

// checkWAL is CheckWAL with its refusals classified.
func checkWAL(ctx context.Context, s cloud.Store, l catalog.Layout, b *catalog.Backup) error {
	err := CheckWAL(ctx, s, l, b)
	switch {
	case errors.Is(err, ErrSystemMismatch), errors.Is(err, wal.ErrWrongFile):
		return refused(err)
	case errors.Is(err, ErrMissingWAL):
		return missing(fmt.Errorf("%w (--no-wal-check restores anyway)", err))
	}
	return err
}
