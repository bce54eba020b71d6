package prune

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/retention"
)

// Scan reads the catalog as retention needs it: one listing of the
// server's base/ prefix, summed up per backup id (so memory grows with the
// number of backups, not of parts), and the records read in parallel.
//
// It differs from catalog.List in what it keeps: prefixes without a record
// (the orphans to clean up), the size and age of each prefix, and records
// that cannot be decoded, which are returned with RecordErr instead of
// being dropped, since retention must not mistake them for absent.
func Scan(ctx context.Context, s cloud.Store, l catalog.Layout) ([]retention.Entry, error) {
	root := l.BaseRoot()
	byID := map[string]*retention.Entry{}
	var withRecord []string
	err := s.List(ctx, root, func(a cloud.Attrs) error {
		id, rest, ok := strings.Cut(strings.TrimPrefix(a.Key, root), "/")
		if !ok || id == "" || rest == "" {
			return nil // not under base/<id>/: not a backup's
		}
		e := byID[id]
		if e == nil {
			e = &retention.Entry{ID: id}
			byID[id] = e
		}
		e.Objects++
		e.Bytes += a.Size
		if a.ModTime.After(e.LastModified) {
			e.LastModified = a.ModTime
		}
		if a.Key == l.RecordKey(id) {
			withRecord = append(withRecord, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups of server %s: %w", l.Server, err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadConcurrency)
	for _, id := range withRecord {
		e := byID[id]
		g.Go(func() error {
			b, err := catalog.Load(gctx, s, l, id)
			switch {
			case err == nil && b.ID != id:
				// A record copied under another prefix: which backup it
				// describes is unclear, so treat it as unreadable.
				e.RecordErr = fmt.Errorf("record of backup %s is stored under base/%s/", b.ID, id)
			case err == nil:
				e.Record = slim(b)
			case errors.Is(err, cloud.ErrNotFound):
				// Deleted between the listing and now: the prefix is
				// left as without a record, and its age decides.
			case isStoreError(err):
				return err
			default:
				e.RecordErr = err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("read backup records of server %s: %w", l.Server, err)
	}
	out := make([]retention.Entry, 0, len(byID))
	for _, e := range byID {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// isStoreError tells a failure to read the object, which must stop the
// run, from a record that was read but is not valid, which retention
// handles (conservatively).
func isStoreError(err error) bool {
	return errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrTransient) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// slim drops what retention never reads (parts, labels, tablespaces,
// snapshot details), so that the catalog held in memory stays a few hundred
// bytes per backup even when each record lists thousands of parts. Each
// snapshot's provider, id and disk stay, for the report: a backup has a
// few disks. Deleting them reads the full record again.
func slim(b *catalog.Backup) *catalog.Backup {
	b.Parts, b.Tablespaces = nil, nil
	b.BackupLabel, b.TablespaceMap = "", ""
	for i, s := range b.Snapshots {
		b.Snapshots[i] = catalog.Snapshot{Provider: s.Provider, ID: s.ID, Disk: s.Disk}
	}
	return b
}
