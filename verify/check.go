package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/restore"
)

// Options of one Check.
type Options struct {
	Store  cloud.Store
	Server string
	// Backup is "all" (or "") for every DONE backup, else an id, a name,
	// latest or oldest: that backup and the chain it is restored from.
	Backup string
	// Jobs is how many parts are read at once.
	Jobs int
	// Backups and WAL choose what is checked; Check refuses neither.
	Backups, WAL bool
	// Progress, when set, is told the stored bytes to read and each
	// amount read.
	Progress Progress
}

// Progress follows the bytes Check reads; its methods must be safe for
// concurrent use.
type Progress interface {
	Start(total int64)
	Add(n int64)
}

// RefAll selects every backup.
const RefAll = "all"

// Report is what Check found.
type Report struct {
	Server   string         `json:"server"`
	Backups  []BackupResult `json:"backups"`
	WAL      *WALResult     `json:"wal,omitempty"`
	Problems []Problem      `json:"problems"`
	Elapsed  time.Duration  `json:"-"`
}

// OK tells whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// BackupResult sums up the check of one backup.
type BackupResult struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	OK   bool   `json:"ok"`
	// Parts and Files are what was read; StoredBytes the bytes
	// downloaded (parts, manifest and block map).
	Parts       int   `json:"parts"`
	Files       int64 `json:"files"`
	StoredBytes int64 `json:"stored_bytes"`
	// Note says what could not be checked, if anything.
	Note string `json:"note,omitempty"`
}

// ErrNothing: the selection holds no backup and no WAL to check.
var ErrNothing = errors.New("nothing to verify")

// Check verifies the server's backups and WAL archive as o asks. Problems
// found are in the Report; an error means the check itself could not be
// done (the store failed, the server or backup is unknown).
func Check(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	layout := catalog.Layout{Server: o.Server}
	if err := catalog.CheckServer(ctx, o.Store, layout); err != nil {
		return nil, err
	}
	all, err := catalog.List(ctx, o.Store, layout)
	if err != nil {
		return nil, err
	}
	rep := &Report{Server: o.Server, Problems: []Problem{}}
	ps := &problems{}
	selected, err := selectBackups(ctx, o, layout, all, ps)
	if err != nil {
		return nil, err
	}
	done := doneBackups(all)
	if o.Backups {
		c := &checker{store: o.Store, layout: layout, jobs: max(o.Jobs, 1), progress: o.Progress, ps: ps}
		if c.progress != nil {
			var total int64
			for _, b := range selected {
				total += b.StoredSize
			}
			c.progress.Start(total)
		}
		bad := map[string]bool{}
		for _, b := range selected {
			res, err := c.backup(ctx, b)
			if err != nil {
				return nil, err
			}
			bad[b.ID] = !res.OK
			rep.Backups = append(rep.Backups, res)
		}
		checkChains(selected, done, bad, ps)
		for i := range rep.Backups {
			rep.Backups[i].OK = !bad[rep.Backups[i].ID]
		}
	}
	if o.WAL {
		// The WAL is checked for the backups selected; with none (a
		// server with WAL only), from the oldest archived segment.
		w, err := checkArchive(ctx, o.Store, layout, selected, ps)
		if err != nil {
			return nil, err
		}
		rep.WAL = w
	}
	rep.Problems = ps.list()
	if len(selected) == 0 && (rep.WAL == nil || rep.WAL.Segments == 0) && len(rep.Problems) == 0 {
		return nil, fmt.Errorf("%w: server %s has no DONE backup and no archived WAL in this store", ErrNothing, o.Server)
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// doneBackups keeps the DONE records.
func doneBackups(all []*catalog.Backup) []*catalog.Backup {
	var out []*catalog.Backup
	for _, b := range all {
		if b.Status == catalog.StatusDone {
			out = append(out, b)
		}
	}
	return out
}

// selectBackups returns the DONE backups to check, oldest first: all of
// them, or the one asked for and its chain. Unreadable records are
// problems of their own: the backup they stand for cannot be restored.
func selectBackups(ctx context.Context, o Options, l catalog.Layout, all []*catalog.Backup, ps *problems) ([]*catalog.Backup, error) {
	if o.Backup == "" || o.Backup == RefAll {
		for _, b := range all {
			if b.Status == catalog.StatusUnreadable {
				ps.add(Problem{Kind: KindRecord, Object: l.RecordKey(b.ID), Backup: b.ID,
					What: "the record cannot be read (" + b.Error + ")", Means: cannotRestore(b.ID)})
			}
		}
		return doneBackups(all), nil
	}
	b, err := catalog.Find(ctx, o.Store, l, o.Backup, nil)
	if err != nil {
		return nil, err
	}
	if b.Status != catalog.StatusDone {
		ps.add(Problem{Kind: KindRecord, Object: l.RecordKey(b.ID), Backup: b.ID,
			What: fmt.Sprintf("the backup has status %s", b.Status), Means: "only DONE backups can be restored"})
		return nil, nil
	}
	chain, err := restore.Chain(b, all)
	if err != nil {
		// checkChains reports it; the backup itself is still read.
		return []*catalog.Backup{b}, nil
	}
	out := make([]*catalog.Backup, 0, len(chain))
	for i := len(chain) - 1; i >= 0; i-- {
		out = append(out, chain[i])
	}
	return out, nil
}

// checkChains adds a problem for each checked backup whose chain is
// incomplete, or holds a damaged backup; such a backup is bad too.
func checkChains(checked, done []*catalog.Backup, bad map[string]bool, ps *problems) {
	for _, b := range checked {
		if b.Kind() == catalog.TypeFull {
			continue
		}
		chain, err := restore.Chain(b, done)
		if err != nil {
			ps.add(Problem{Kind: KindChain, Object: b.ID, Backup: b.ID, What: err.Error(), Means: cannotRestore(b.ID)})
			bad[b.ID] = true
			continue
		}
		for _, p := range chain[1:] {
			if bad[p.ID] {
				ps.add(Problem{Kind: KindChain, Object: b.ID, Backup: b.ID,
					What:  fmt.Sprintf("its chain holds backup %s, which is damaged", p.ID),
					Means: cannotRestore(b.ID)})
				bad[b.ID] = true
				break
			}
		}
	}
}
