package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/gbc-backup/gbc/cloud"
)

// ErrNotDone is returned by SetKeep for a backup that is not DONE: only a
// complete backup is worth keeping.
var ErrNotDone = errors.New("backup is not DONE")

// ErrDeletedMeanwhile is returned by SetKeep when the backup was deleted
// while its record was being rewritten.
var ErrDeletedMeanwhile = errors.New("backup deleted while its keep annotation was being written")

// SetKeep sets the keep annotation of backup id to keep (KeepFull,
// KeepStandalone, or "" to release it) by rewriting its record, and returns
// the record as saved. Adding a keep is refused for a backup that is not
// DONE; releasing works whatever the status.
//
// The store offers no compare-and-swap, so a gbc-backup-delete running at
// the same time may delete the backup between the read and the write, and
// the write would then resurrect a record whose parts are gone. To close
// that window SetKeep looks under the backup's prefix after writing: if only
// the record is left, the backup was deleted meanwhile, and the record is
// deleted again (gbc-backup-delete does the same check from its side).
func SetKeep(ctx context.Context, s cloud.Store, l Layout, id, keep string) (*Backup, error) {
	switch keep {
	case "", KeepFull, KeepStandalone:
	default:
		return nil, fmt.Errorf("invalid keep target %q: use %s or %s", keep, KeepFull, KeepStandalone)
	}
	b, err := Load(ctx, s, l, id)
	if err != nil {
		return nil, err
	}
	if keep != "" && b.Status != StatusDone {
		return nil, fmt.Errorf("keep backup %s: %w (status %s); only DONE backups can be kept", id, ErrNotDone, b.Status)
	}
	if b.Keep == keep {
		return b, nil
	}
	b.Keep = keep
	if err := Save(ctx, s, l, b); err != nil {
		return nil, err
	}
	others := 0
	err = s.List(ctx, l.BackupRoot(id), func(a cloud.Attrs) error {
		if a.Key != l.RecordKey(id) {
			others++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check backup %s after writing its keep annotation: %w", id, err)
	}
	if others == 0 && (len(b.Parts) > 0 || b.ManifestKey != "") {
		if err := s.Delete(ctx, l.RecordKey(id)); err != nil {
			return nil, fmt.Errorf("backup %s: %w, and removing the record again failed (delete it with gbc-backup-delete --backup-id %s): %v", id, ErrDeletedMeanwhile, id, err)
		}
		return nil, fmt.Errorf("backup %s: %w", id, ErrDeletedMeanwhile)
	}
	return b, nil
}
