package status

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/wal"
)

// DefaultJobs is how many servers Fleet scans at once. Each scan is a
// handful of requests that wait on the store, not on the CPU.
const DefaultJobs = 16

// Gather reads the facts of one server: its backup records (through the
// summary cache), its WAL (see scanWAL) and its last drill, the three at
// once. A server with nothing stored is catalog.ErrUnknownServer, so that
// a typo in a monitoring check does not pass for a healthy server.
func Gather(ctx context.Context, s cloud.Store, server string) (Facts, error) {
	l := catalog.Layout{Server: server}
	f := Facts{Server: server}
	backups, err := catalog.Summaries(ctx, s, l)
	if err != nil {
		return f, err
	}
	summarizeBackups(&f, backups)
	floor, latest, segSize := walBounds(backups)

	g, gctx := errgroup.WithContext(ctx)
	var scan walScan
	g.Go(func() error {
		var err error
		scan, err = scanWAL(gctx, s, l, floor, latest, segSize)
		return err
	})
	g.Go(func() error {
		var err error
		f.Drill, err = catalog.LastDrill(gctx, s, l)
		return err
	})
	if err := g.Wait(); err != nil {
		return f, err
	}
	f.NewestWAL, f.CheckedFrom, f.Gaps, f.MoreGaps = scan.newest, scan.checkedFrom, scan.gaps, scan.moreGaps
	if len(backups) == 0 && f.NewestWAL == nil && f.Drill == nil {
		if err := catalog.CheckServer(ctx, s, l); err != nil {
			return f, err
		}
	}
	return f, nil
}

// summarizeBackups fills the backup facts from the records, oldest first.
func summarizeBackups(f *Facts, backups []*catalog.Backup) {
	for _, b := range backups {
		switch b.Status {
		case catalog.StatusDone:
			f.Backups++
			f.StoredSize += b.StoredSize
			f.Last = backupOf(b)
			f.LastFailed = nil
		case catalog.StatusFailed:
			f.LastFailed = backupOf(b)
		}
	}
}

func backupOf(b *catalog.Backup) *Backup {
	return &Backup{ID: b.ID, Type: b.Kind(), BeginTime: b.BeginTime, EndTime: b.EndTime, BeginWAL: b.BeginWAL,
		DataSize: b.DataSize, StoredSize: b.StoredSize, Error: b.Error}
}

// walBounds returns the begin WAL from which the archive must be whole,
// the latest backup's begin WAL and the segment size.
//
// The floor is the lowest begin WAL (by position, whatever the timeline,
// as retention's floor) of the DONE backups that need all WAL after them:
// every one but those kept standalone and those built on one, whose WAL
// after their end retention deletes on purpose.
func walBounds(backups []*catalog.Backup) (floor, latest string, segSize int64) {
	byID := map[string]*catalog.Backup{}
	for _, b := range backups {
		byID[b.ID] = b
	}
	standalone := func(b *catalog.Backup) bool {
		for seen := 0; b != nil && seen <= len(byID); seen++ {
			if b.Keep == catalog.KeepStandalone {
				return true
			}
			if b.Keep == catalog.KeepFull || b.ParentID == "" {
				return false
			}
			b = byID[b.ParentID]
		}
		return false
	}
	var floorPos uint64
	segSize = wal.DefaultSegmentSize
	for _, b := range backups {
		if b.Status != catalog.StatusDone {
			continue
		}
		n, err := wal.ParseName(b.BeginWAL)
		if err != nil || !n.IsSegment() {
			continue
		}
		latest = b.BeginWAL
		if wal.ValidSegmentSize(b.WALSegmentSize) {
			segSize = b.WALSegmentSize
		}
		if standalone(b) {
			continue
		}
		if pos := uint64(n.Log)<<32 | uint64(n.Seg); floor == "" || pos < floorPos {
			floor, floorPos = b.BeginWAL, pos
		}
	}
	return floor, latest, segSize
}

// Servers lists the servers of a store: the names at its root (one level
// listing, see cloud.ListLevel), sorted.
func Servers(ctx context.Context, s cloud.Store) ([]string, error) {
	var names []string
	err := cloud.ListLevel(ctx, s, "", func(a cloud.Attrs) error {
		if name, ok := strings.CutSuffix(a.Key, "/"); ok && name != "" {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the servers of the store: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Fleet gathers the facts of every server of the store, jobs at a time
// (DefaultJobs when jobs < 1), in the order of Servers. A server whose
// facts cannot be read fails the whole call: a report that quietly leaves
// a server out would pass for a healthy fleet.
func Fleet(ctx context.Context, s cloud.Store, jobs int) ([]Facts, error) {
	names, err := Servers(ctx, s)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if _, err := s.Stat(ctx, "gbc-status-probe"); errors.Is(err, cloud.ErrNoBucket) {
			return nil, err
		}
	}
	if jobs < 1 {
		jobs = DefaultJobs
	}
	out := make([]Facts, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for i, name := range names {
		g.Go(func() error {
			f, err := Gather(gctx, s, name)
			if err != nil {
				return fmt.Errorf("server %s: %w", name, err)
			}
			out[i] = f
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
