// Package prune carries out retention decisions against a store: it reads
// the catalog, asks package retention what is obsolete, and deletes it in an
// order that leaves the store consistent if it stops at any point.
//
// The order, and why:
//
//  1. For each backup to delete, its record first, then its parts. Once
//     the record is gone the backup no longer exists for list, restore or
//     retention, so a crash between the two steps leaves only unreferenced
//     parts, which the next run cleans up as orphans; the reverse order
//     could leave a DONE record whose parts are missing. Backups go in
//     the plan's order, each after every backup built on it, and one that
//     stays (skipped) holds the backups it is built on: no run, however
//     it ends, leaves an incremental backup without its parent.
//
//     A snapshot backup's provider snapshots are the exception: they go
//     before the record. The record is the only reference to them, so a
//     record deleted first would leave snapshots that no run ever finds
//     again, billed forever. When they cannot all be deleted, the record
//     stays and the run reports the error; the next run retries, and
//     snapshots already gone do not stop it. The price is that until then
//     the record may name snapshots already deleted, so the error says not
//     to restore that backup.
//
//  2. WAL after every backup is gone, and only WAL obsolete both for the
//     catalog read at the start and for the catalog read again just
//     before: a backup started meanwhile (its STARTED record is the
//     in-progress marker) keeps the WAL it needs.
//
//  3. Last, the leftovers of killed uploads that the store keeps outside
//     its objects (S3's incomplete multipart uploads, file://'s temporary
//     files; see cloud.StaleSweeper): those under the backups just
//     deleted, and those older than OrphanAge except under a backup in
//     progress. Nothing refers to them, so the order does not matter for
//     consistency; last, so that a failure there costs nothing else.
//
// Listings are streamed and deletes batched, so memory stays bounded by the
// number of backups, never by the number of WAL objects or parts.
package prune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/retention"
	"github.com/gbc-backup/gbc/snapshot"
	"github.com/gbc-backup/gbc/wal"
)

// Defaults for Options' zero values.
const (
	// DefaultBatchSize is the number of keys per Delete call: S3's
	// DeleteObjects limit, so one call is one request there.
	DefaultBatchSize = 1000
	// DefaultConcurrency is the number of Delete calls in flight. Deletes
	// are latency-bound; a few in parallel hide the round trips without
	// tripping provider rate limits (S3 allows 3,500 deletes/s per prefix).
	DefaultConcurrency = 4
	// loadConcurrency bounds the parallel record reads of a scan.
	loadConcurrency = 32
)

// Options tell Run what to delete.
type Options struct {
	Policy *retention.Policy // nil: no policy
	Target string            // id, name, latest or oldest: one backup to delete
	// WithDependents deletes with Target the backups built on it
	// (incremental or differential, directly or not); without it such a
	// Target is refused.
	WithDependents bool
	MinRedundancy  int
	OrphanAge      time.Duration
	DryRun         bool
	// Now is the time the decision is made at; zero means time.Now().
	Now         time.Time
	BatchSize   int // keys per Delete; 0 means DefaultBatchSize
	Concurrency int // Deletes in flight; 0 means DefaultConcurrency
	// Logf, when set, receives progress notices.
	Logf func(format string, args ...any)
	// SnapshotOpener opens the provider that deletes a snapshot backup's
	// snapshots; nil means snapshot.Open on each snapshot's recorded
	// configuration.
	SnapshotOpener snapshot.Opener
}

// Report says what was deleted (or, with DryRun, would be). Its JSON form
// is the stable output of gbc-backup-delete --format json.
type Report struct {
	Server string `json:"server"`
	DryRun bool   `json:"dry_run"`
	Policy string `json:"policy,omitempty"`
	Target string `json:"target,omitempty"`

	MinimumRedundancy int    `json:"minimum_redundancy"`
	OrphanAge         string `json:"orphan_age"`

	// Deleted lists the backups (and orphaned prefixes) deleted, oldest
	// first; Retained the ones that stay, newest first.
	Deleted  []Backup `json:"deleted"`
	Retained []Backup `json:"retained"`
	// Skipped lists backups planned for deletion but left alone, Reason
	// saying why: their record changed meanwhile (a keep added, a backup
	// resumed), or their provider snapshots could not all be deleted
	// (which is also an error of the run).
	Skipped []Backup `json:"skipped,omitempty"`
	WAL     WAL      `json:"wal"`
	Stale   Stale    `json:"stale"`
	Notes   []string `json:"notes,omitempty"`

	// Objects and Bytes total everything deleted: backups and WAL.
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// Backup is one backup prefix in a Report.
type Backup struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	Status    string     `json:"status"` // DONE, FAILED, STARTED; ORPHAN without a record; UNREADABLE
	Keep      string     `json:"keep,omitempty"`
	Type      string     `json:"type,omitempty"`      // full, incr or diff; empty without a record
	ParentID  string     `json:"parent_id,omitempty"` // the backup an incr or diff is built on
	Timeline  uint32     `json:"timeline,omitempty"`
	BeginTime *time.Time `json:"begin_time,omitempty"`
	EndTime   *time.Time `json:"end_time,omitempty"`
	BeginWAL  string     `json:"begin_wal,omitempty"`
	EndWAL    string     `json:"end_wal,omitempty"`
	Reason    string     `json:"reason"`
	Objects   int        `json:"objects"`
	Bytes     int64      `json:"bytes"`
	// Snapshots are the provider snapshots deleted with the backup (or to
	// be), which the object counts do not include.
	Snapshots []Snapshot `json:"snapshots,omitempty"`
}

// Snapshot is one provider snapshot of a backup in a Report.
type Snapshot struct {
	Provider string `json:"provider"`
	ID       string `json:"id"`
	Disk     string `json:"disk,omitempty"`
}

// WAL sums up the WAL part of a Report.
type WAL struct {
	// Floor is the begin WAL below which WAL is obsolete; Off, when set,
	// says why no WAL is deleted at all.
	Floor  string               `json:"floor,omitempty"`
	Off    string               `json:"off,omitempty"`
	Ranges []retention.WALRange `json:"ranges"`
	// Objects and Bytes count the obsolete WAL objects deleted (or to be).
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// KeptObjects and KeptBytes count the WAL objects that stay.
	KeptObjects int   `json:"kept_objects"`
	KeptBytes   int64 `json:"kept_bytes"`
}

// Stale sums up the leftovers of killed uploads removed (or, with DryRun,
// to be removed); they are not among the deleted objects. What is empty
// when the store has none to sweep (GCS and Azure expire them by
// themselves).
type Stale struct {
	What  string `json:"what"` // "multipart uploads" or "temporary files"
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

// Status values of Report backups without a readable record.
const (
	StatusOrphan     = "ORPHAN"
	StatusUnreadable = "UNREADABLE"
)

func (o *Options) defaults() {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Run decides and deletes. With DryRun it lists and decides exactly as for
// real, and deletes nothing. A refused request (see retention.ErrRefused)
// deletes nothing either. On an error part-way, the Report so far is
// returned with it; the store is consistent, and running again finishes.
func Run(ctx context.Context, s cloud.Store, l catalog.Layout, opt Options) (*Report, error) {
	opt.defaults()
	rep := &Report{
		Server: l.Server, DryRun: opt.DryRun, Target: opt.Target,
		MinimumRedundancy: opt.MinRedundancy, OrphanAge: opt.OrphanAge.String(),
	}
	if opt.Policy != nil {
		rep.Policy = opt.Policy.String()
	}
	entries, err := Scan(ctx, s, l)
	if err != nil {
		return rep, err
	}
	plan, err := retention.Decide(retention.Input{
		Entries: entries, Policy: opt.Policy, Target: opt.Target, WithDependents: opt.WithDependents,
		MinRedundancy: opt.MinRedundancy, OrphanAge: opt.OrphanAge, Now: opt.Now,
	})
	if err != nil {
		return rep, err
	}
	rep.Notes = append(rep.Notes, plan.Notes...)
	for _, r := range plan.Retain {
		rep.Retained = append(rep.Retained, reportBackup(r.Entry, r.Reason))
	}

	// 1. Backups, each record first (after its snapshots), in the plan's
	// order: what is built on a backup goes before it. A backup whose
	// snapshots cannot be deleted stays whole, and so does every backup it
	// is built on (held); the others, and the WAL that the catalog, read
	// again, no longer needs, are still deleted.
	var deleted []retention.Entry
	var kept []error
	held := map[string]string{} // id -> the backup built on it that stays
	parentOf := map[string]string{}
	for _, d := range plan.Delete {
		if d.Record != nil {
			parentOf[d.ID] = d.Record.ParentID
		}
	}
	hold := func(id string) { // each parent names the child that stays
		for c, p := id, parentOf[id]; p != "" && held[p] == ""; c, p = p, parentOf[p] {
			held[p] = c
		}
	}
	for _, d := range plan.Delete {
		if by := held[d.ID]; by != "" && !opt.DryRun {
			b := reportBackup(d.Entry, d.Reason)
			b.Objects, b.Bytes = 0, 0
			b.Reason = fmt.Sprintf("backup %s, built on it, was not deleted; run again to reconsider it", by)
			rep.Skipped = append(rep.Skipped, b)
			rep.Notes = append(rep.Notes, fmt.Sprintf("backup %s not deleted: %s", d.ID, b.Reason))
			hold(d.ID)
			continue
		}
		if opt.DryRun {
			rep.Deleted = append(rep.Deleted, reportBackup(d.Entry, d.Reason))
			rep.Objects += d.Objects
			rep.Bytes += d.Bytes
			continue
		}
		n, size, skip, err := deleteBackup(ctx, s, l, d, opt)
		rep.Objects += n
		rep.Bytes += size
		if err != nil && skip == "" {
			return rep, errors.Join(append(kept, err)...)
		}
		b := reportBackup(d.Entry, d.Reason)
		b.Objects, b.Bytes = n, size
		if skip != "" {
			b.Reason = skip
			rep.Skipped = append(rep.Skipped, b)
			hold(d.ID)
			if err != nil {
				kept = append(kept, err)
				continue
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("backup %s not deleted: %s", d.ID, skip))
			continue
		}
		rep.Deleted = append(rep.Deleted, b)
		deleted = append(deleted, d.Entry)
	}

	// 2. WAL, obsolete both for the plan and for the catalog as it is now.
	filter := plan.WAL.Obsolete
	rep.WAL.Floor, rep.WAL.Off = plan.WAL.Floor(), plan.WAL.Off()
	if !opt.DryRun && plan.WAL.Off() == "" {
		fresh, err := Scan(ctx, s, l)
		if err != nil {
			return rep, errors.Join(append(kept, err)...)
		}
		again := retention.NewWALFilter(fresh, deleted, plan.DataOnly, time.Now(), opt.OrphanAge)
		rep.Notes = append(rep.Notes, orphanedChildren(fresh, deleted)...)
		if again.Off() != "" {
			rep.WAL.Off = again.Off()
			rep.Notes = append(rep.Notes, "no WAL is deleted: "+again.Off())
		}
		if again.Floor() != plan.WAL.Floor() && again.Off() == "" {
			opt.Logf("the catalog changed while deleting backups: WAL floor %s instead of %s", again.Floor(), plan.WAL.Floor())
			rep.WAL.Floor = minName(again.Floor(), plan.WAL.Floor())
		}
		filter = func(name string) bool { return plan.WAL.Obsolete(name) && again.Obsolete(name) }
	}
	err = pruneWAL(ctx, s, l, filter, opt, rep)
	rep.Objects += rep.WAL.Objects
	rep.Bytes += rep.WAL.Bytes
	if err != nil {
		return rep, errors.Join(append(kept, err)...)
	}

	// 3. Leftovers of killed uploads.
	err = sweepStale(ctx, s, l, opt, plan, rep)
	return rep, errors.Join(append(kept, err)...)
}

// orphanedChildren warns of backups that name a deleted backup as their
// parent: started on top of it after the catalog was read (the store
// offers no compare-and-swap to prevent that), they cannot be restored.
func orphanedChildren(fresh, deleted []retention.Entry) []string {
	gone := map[string]bool{}
	for _, e := range deleted {
		gone[e.ID] = true
	}
	var notes []string
	for _, e := range fresh {
		if e.Record != nil && gone[e.Record.ParentID] && !gone[e.ID] {
			notes = append(notes, fmt.Sprintf("backup %s was started on top of backup %s while it was being deleted, and cannot be restored: delete it, and take a full backup", e.ID, e.Record.ParentID))
		}
	}
	return notes
}

// sweepStale removes the leftovers of killed uploads under the server's
// prefix: every one under a backup deleted by this run (nothing will
// complete them), and elsewhere those older than OrphanAge, except under a
// backup in progress, whose upload of a large part may rightly take long.
// A backup started after the scan is not spared by name, but its uploads
// are younger than OrphanAge. A store that lets gbc-backup-delete list but
// not abort uploads gets a note, not a failure: deleting backups is this
// command's job, and a lifecycle rule can do this one.
func sweepStale(ctx context.Context, s cloud.Store, l catalog.Layout, opt Options, plan *retention.Plan, rep *Report) error {
	gone := map[string]bool{}
	for _, b := range rep.Deleted {
		gone[b.ID] = true
	}
	live := map[string]bool{}
	for _, r := range plan.Retain {
		if r.Record != nil && r.Record.Status == catalog.StatusStarted {
			live[r.ID] = true
		}
	}
	cutoff := opt.Now.Add(-opt.OrphanAge)
	stale := func(key string, since time.Time) bool {
		id := backupOf(l, key)
		switch {
		case id != "" && gone[id]:
			return true
		case id != "" && live[id]:
			return false
		}
		return since.Before(cutoff)
	}
	res, err := cloud.SweepStale(ctx, s, l.Root(), cloud.SweepOptions{Stale: stale, DryRun: opt.DryRun})
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return nil
	case errors.Is(err, cloud.ErrPermission):
		rep.Stale.What = res.What
		rep.Notes = append(rep.Notes, fmt.Sprintf("stale uploads not cleaned up (%v): allow listing and aborting multipart uploads, or let a lifecycle rule abort them", err))
		return nil
	}
	rep.Stale = Stale{What: res.What, Count: res.Count, Bytes: res.Bytes}
	if res.Count > 0 {
		opt.Logf("swept %d stale %s (%d bytes)", res.Count, res.What, res.Bytes)
	}
	if err != nil {
		return fmt.Errorf("clean up stale uploads of server %s (run again to finish): %w", l.Server, err)
	}
	return nil
}

// backupOf returns the backup id of a key under base/<id>/, or "".
func backupOf(l catalog.Layout, key string) string {
	rest, ok := strings.CutPrefix(key, l.BaseRoot())
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return id
}

// minName returns the lower of two segment names by position, ignoring
// the timeline (the first 8 characters), for the report only.
func minName(a, b string) string {
	if len(a) == 24 && len(b) == 24 && a[8:] > b[8:] {
		return b
	}
	return a
}

// deleteBackup deletes one backup prefix: the record, after checking that
// it is still the one the decision was made on (and deleting its provider
// snapshots), then everything else under base/<id>/. It returns what it
// deleted, or why it skipped the backup; with both skip and err set, the
// backup stays because its snapshots could not be deleted, and err is to
// be reported once the run has done what it still can.
func deleteBackup(ctx context.Context, s cloud.Store, l catalog.Layout, d retention.Deletion, opt Options) (n int, size int64, skip string, err error) {
	if d.Record != nil {
		// A keep added, or a backup that came back to life, between the
		// scan and now must win over a decision made on stale data.
		cur, recordSize, err := loadRecord(ctx, s, l, d.ID)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			// Deleted meanwhile (another run): finish its parts.
		case err != nil:
			return 0, 0, "", fmt.Errorf("re-read record of backup %s before deleting it: %w", d.ID, err)
		case cur.Status != d.Record.Status || cur.Keep != d.Record.Keep || !cur.Heartbeat.Equal(d.Record.Heartbeat):
			return 0, 0, fmt.Sprintf("its record changed since it was listed (now %s, keep %q); run again to reconsider it", cur.Status, cur.Keep), nil
		}
		// A record gone meanwhile was deleted by a run that deleted its
		// snapshots first: there is nothing left to ask the provider.
		if cur != nil && len(cur.Snapshots) > 0 {
			if err := snapshot.DeleteAll(ctx, cur, opt.SnapshotOpener); err != nil {
				// DeleteAll's error names the backup and each snapshot.
				return 0, 0, "its provider snapshots could not all be deleted; its record is kept so that the next run retries",
					fmt.Errorf("%w; its record is kept: run gbc-backup-delete again to finish, and do not restore it meanwhile (some of its snapshots may be gone)", err)
			}
			opt.Logf("deleted the provider snapshots of backup %s", d.ID)
		}
		if err := s.Delete(ctx, l.RecordKey(d.ID)); err != nil {
			return 0, 0, "", fmt.Errorf("delete record of backup %s: %w", d.ID, err)
		}
		opt.Logf("deleted record of backup %s (%s)", d.ID, d.Reason)
		if cur != nil {
			n, size = 1, recordSize
		}
	}
	pn, psize, err := deletePrefix(ctx, s, l.BackupRoot(d.ID), opt)
	n, size = n+pn, size+psize
	if err != nil {
		return n, size, "", fmt.Errorf("delete parts of backup %s (its record is already gone; run again to finish): %w", d.ID, err)
	}
	// gbc-backup-keep rewrites a record without compare-and-swap: one
	// written after the listing above would be a record whose parts are
	// gone. Look once more, and remove it (catalog.SetKeep checks from its
	// side too, so whichever runs last cleans up).
	if _, err := s.Stat(ctx, l.RecordKey(d.ID)); err == nil {
		if err := s.Delete(ctx, l.RecordKey(d.ID)); err != nil {
			return n, size, "", fmt.Errorf("delete record of backup %s, rewritten while it was being deleted: %w", d.ID, err)
		}
		opt.Logf("backup %s: its record was rewritten during the deletion (gbc-backup-keep?) and is removed again, its parts being gone", d.ID)
	} else if !errors.Is(err, cloud.ErrNotFound) {
		return n, size, "", fmt.Errorf("check that the record of backup %s stays deleted: %w", d.ID, err)
	}
	opt.Logf("deleted backup %s: %d objects, %d bytes", d.ID, n, size)
	return n, size, "", nil
}

// loadRecord is catalog.Load that also tells the record's stored size, so
// that the report counts the record among the deleted bytes without another
// request.
func loadRecord(ctx context.Context, s cloud.Store, l catalog.Layout, id string) (*catalog.Backup, int64, error) {
	rc, err := s.Get(ctx, l.RecordKey(id))
	if err != nil {
		return nil, 0, fmt.Errorf("load record of backup %s: %w", id, err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	b, err := catalog.Decode(cr)
	if err != nil {
		return nil, 0, fmt.Errorf("load record of backup %s: %w", id, err)
	}
	return b, cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// deletePrefix deletes every object under prefix, streaming the listing
// into batches.
func deletePrefix(ctx context.Context, s cloud.Store, prefix string, opt Options) (int, int64, error) {
	d := newDeleter(ctx, s, opt)
	err := s.List(d.ctx, prefix, func(a cloud.Attrs) error {
		return d.add(a)
	})
	if err != nil {
		err = fmt.Errorf("list %s: %w", prefix, err)
	}
	return d.finish(err)
}

// pruneWAL streams the WAL listing through the filter, tallies it, and
// deletes the obsolete objects in batches.
func pruneWAL(ctx context.Context, s cloud.Store, l catalog.Layout, obsolete func(string) bool, opt Options, rep *Report) error {
	tally := retention.NewWALTally()
	d := newDeleter(ctx, s, opt)
	err := s.List(d.ctx, l.WALRoot(), func(a cloud.Attrs) error {
		name, ok := walName(l, a.Key)
		del := ok && obsolete(name)
		if !ok {
			name = strings.TrimPrefix(a.Key, l.WALRoot())
		}
		tally.Add(name, a.Size, del)
		if !del || opt.DryRun {
			return nil
		}
		return d.add(a)
	})
	if err != nil {
		err = fmt.Errorf("list WAL of server %s: %w", l.Server, err)
	}
	_, _, err = d.finish(err)
	rep.WAL.Ranges = tally.Ranges()
	rep.WAL.Objects, rep.WAL.Bytes = tally.Deleted, tally.DeletedBytes
	rep.WAL.KeptObjects, rep.WAL.KeptBytes = tally.Kept, tally.KeptBytes
	if err != nil {
		// The tally counts what was found obsolete; some of it may not be
		// deleted. Say so rather than report it as gone.
		return fmt.Errorf("delete obsolete WAL (some may remain; run again to finish): %w", err)
	}
	return nil
}

// walName returns the WAL file name an object holds, when its key is
// exactly where the layout stores that name. Anything else under wals/
// (a foreign file, a misplaced copy) is not ours to delete.
func walName(l catalog.Layout, key string) (string, bool) {
	base, codec := compress.SplitKey(key)
	i := strings.LastIndexByte(base, '/')
	name := base[i+1:]
	if _, err := wal.ParseName(name); err != nil || l.WALKey(name, codec.Ext()) != key {
		return "", false
	}
	return name, true
}

// deleter batches keys and runs a bounded number of Delete calls at once.
// Its memory is (Concurrency+1) batches of keys at most.
type deleter struct {
	s      cloud.Store
	ctx    context.Context
	g      *errgroup.Group
	batch  []string
	bytes  int64
	size   int
	mu     sync.Mutex
	n      int   // objects deleted
	nbytes int64 // their size
}

func newDeleter(ctx context.Context, s cloud.Store, opt Options) *deleter {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Concurrency)
	return &deleter{s: s, ctx: gctx, g: g, size: opt.BatchSize}
}

// add queues one object; a full batch is sent (blocking while Concurrency
// batches are in flight, which is what bounds memory).
func (d *deleter) add(a cloud.Attrs) error {
	if err := d.ctx.Err(); err != nil {
		return err // a batch failed: stop listing
	}
	d.batch = append(d.batch, a.Key)
	d.bytes += a.Size
	if len(d.batch) >= d.size {
		d.flush()
	}
	return nil
}

func (d *deleter) flush() {
	if len(d.batch) == 0 {
		return
	}
	keys, size := d.batch, d.bytes
	d.batch, d.bytes = make([]string, 0, d.size), 0
	d.g.Go(func() error {
		if err := d.s.Delete(d.ctx, keys...); err != nil {
			return fmt.Errorf("delete %d objects from %s: %w", len(keys), keys[0], err)
		}
		d.mu.Lock()
		d.n += len(keys)
		d.nbytes += size
		d.mu.Unlock()
		return nil
	})
}

// finish sends the last batch, waits for every Delete, and returns the
// totals with the first error: listErr, or a failed Delete.
func (d *deleter) finish(listErr error) (int, int64, error) {
	if listErr == nil {
		d.flush()
	}
	err := d.g.Wait()
	if listErr != nil && (err == nil || !errors.Is(listErr, context.Canceled)) {
		err = listErr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, d.nbytes, err
}

func reportBackup(e retention.Entry, reason string) Backup {
	b := Backup{ID: e.ID, Reason: reason, Objects: e.Objects, Bytes: e.Bytes}
	if r := e.Record; r != nil {
		for _, s := range r.Snapshots {
			if s.ID != "" { // never created: nothing to delete
				b.Snapshots = append(b.Snapshots, Snapshot{Provider: s.Provider, ID: s.ID, Disk: s.Disk})
			}
		}
	}
	switch r := e.Record; {
	case e.RecordErr != nil:
		b.Status = StatusUnreadable
	case r == nil:
		b.Status = StatusOrphan
	default:
		b.Name, b.Status, b.Keep, b.Timeline = r.Name, string(r.Status), r.Keep, r.Timeline
		b.Type, b.ParentID = r.Kind(), r.ParentID
		b.BeginWAL, b.EndWAL = r.BeginWAL, r.EndWAL
		if !r.BeginTime.IsZero() {
			t := r.BeginTime
			b.BeginTime = &t
		}
		if !r.EndTime.IsZero() {
			t := r.EndTime
			b.EndTime = &t
		}
	}
	return b
}
