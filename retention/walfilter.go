package retention

import (
	"fmt"
	"sort"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/wal"
)

// pos is the position of a segment in the WAL, whatever its timeline:
// (log, seg) packed so that it orders as the segment number does for any
// wal_segment_size, without knowing the size.
type pos uint64

func posOf(n wal.Name) pos { return pos(uint64(n.Log)<<32 | uint64(n.Seg)) }

type posRange struct{ first, last pos }

// WALFilter decides, one archived WAL object at a time, whether it is
// obsolete. It holds a few values per backup and nothing per WAL object, so
// a listing of any length streams through it in bounded memory.
//
// The rule: a segment (or .partial file) is obsolete when its position is
// before the floor, the begin WAL of the oldest remaining backup that needs
// all WAL after it, on every timeline, unless it lies within the begin..end
// range of a backup kept standalone (or built on one, see NewWALFilter). History files are never obsolete; a
// .backup file goes with its backup.
//
// Why positions and not (timeline, position): a backup needs only WAL from
// its begin position onwards, on its timeline and on the timelines that
// fork from it later, and every fork point of those is at or after that
// position. So WAL before the lowest begin position of the remaining
// backups is needed by none of them, whatever its timeline; and WAL of a
// timeline that forked after that point is at or after it, so it is kept.
// Taking the lowest position (not the oldest backup by time) matters after
// a point-in-time recovery: a newer backup on a newer timeline may start
// at a lower position than an older backup on the old one.
type WALFilter struct {
	off   string // non-empty: delete nothing, and why
	floor pos
	// floorName is the begin WAL that set the floor, for reports.
	floorName string
	protect   []posRange
	// startSegs are the segments where remaining backups start: their
	// .backup files stay, whatever the offset.
	startSegs map[string]bool
	// dropBackupFiles are the .backup files of deleted backups.
	dropBackupFiles map[string]bool
}

// NewWALFilter builds the filter from the backups that remain and those
// that are deleted. now and orphanAge tell a live STARTED record (whose WAL
// is protected) from a dead one (see Entry.Live), as in Decide.
//
// What each remaining DONE backup needs:
//   - kept standalone: its begin..end WAL;
//   - in dataOnly (it stays only because a remaining backup is built on
//     it; Plan.DataOnly) and without a keep of its own: none, since the
//     backups built on it need their own WAL only, not their parents';
//   - built on a kept backup, without a keep of its own: what the nearest
//     kept backup below it needs, standalone or full (it is kept with it);
//   - any other: all WAL from its begin on.
//
// The floor is the lowest begin WAL among the backups that need all WAL
// from their begin (kept "full" ones included: everything after them
// stays) and the live STARTED ones. When there is none, it is the highest
// begin WAL of the deleted DONE backups and of those that need their own
// range only, as barman does: a backup whose STARTED record is not written
// yet begins after all of these, so the WAL it needs is after them too.
// When there is none of those either, nothing is deleted.
func NewWALFilter(remaining, deleted []Entry, dataOnly map[string]bool, now time.Time, orphanAge time.Duration) *WALFilter {
	f := &WALFilter{startSegs: map[string]bool{}, dropBackupFiles: map[string]bool{}}
	sorted := append([]Entry(nil), remaining...)
	sort.Slice(sorted, func(i, j int) bool { return newer(sorted[i], sorted[j]) })
	c := newChains(sorted)
	var anchors, fallback []*catalog.Backup
	for _, e := range remaining {
		r := e.Record
		switch {
		case e.RecordErr != nil:
			return offf("the record of backup %s cannot be read (%v), so the WAL it needs is unknown", e.ID, e.RecordErr)
		case r == nil:
			continue
		}
		if n, err := wal.ParseName(r.BeginWAL); err == nil && n.Kind == wal.Segment {
			f.startSegs[n.SegmentName()] = true
		}
		switch r.Status {
		case catalog.StatusDone:
			keep := r.Keep
			if keep == "" {
				if dataOnly[e.ID] {
					continue
				}
				if k := c.keptAncestor(e.ID); k != "" {
					keep = c.byID[k].Record.Keep
				}
			}
			if keep == catalog.KeepStandalone {
				if rg, ok := walRange(r); ok {
					f.protect = append(f.protect, rg)
					fallback = append(fallback, r)
					continue
				}
				// Without a usable end WAL the range is unknown: keep all
				// WAL after the backup, as for a full keep.
			}
			anchors = append(anchors, r)
		case catalog.StatusStarted:
			if e.Live(now, orphanAge) {
				anchors = append(anchors, r)
			}
		case catalog.StatusFailed:
		default:
			return offf("backup %s has unknown status %q, so the WAL it needs is unknown", e.ID, r.Status)
		}
	}
	for _, e := range deleted {
		r := e.Record
		if r == nil {
			continue
		}
		if name, ok := backupFileName(r); ok {
			f.dropBackupFiles[name] = true
		}
		if r.Status == catalog.StatusDone {
			fallback = append(fallback, r)
		}
	}

	if len(anchors) > 0 {
		for i, r := range anchors {
			n, err := wal.ParseName(r.BeginWAL)
			if err != nil || n.Kind != wal.Segment {
				// A STARTED record is written with a lower bound of its
				// begin WAL, so this is a damaged record, not a race.
				return offf("backup %s (%s) has no valid begin WAL %q", r.ID, r.Status, r.BeginWAL)
			}
			if i == 0 || posOf(n) < f.floor {
				f.floor, f.floorName = posOf(n), r.BeginWAL
			}
		}
		return f
	}
	found := false
	for _, r := range fallback {
		n, err := wal.ParseName(r.BeginWAL)
		if err != nil || n.Kind != wal.Segment {
			continue // a lower floor is the safe side
		}
		if !found || posOf(n) > f.floor {
			f.floor, f.floorName, found = posOf(n), r.BeginWAL, true
		}
	}
	if !found {
		return offf("no backup remains or is deleted to measure WAL against")
	}
	return f
}

func offf(format string, args ...any) *WALFilter {
	return &WALFilter{off: fmt.Sprintf(format, args...)}
}

// walRange is the begin..end range of r, when both ends are known and in
// order.
func walRange(r *catalog.Backup) (posRange, bool) {
	b, err1 := wal.ParseName(r.BeginWAL)
	e, err2 := wal.ParseName(r.EndWAL)
	if err1 != nil || err2 != nil || b.Kind != wal.Segment || e.Kind != wal.Segment || posOf(e) < posOf(b) {
		return posRange{}, false
	}
	return posRange{posOf(b), posOf(e)}, true
}

// backupFileName is the name of the .backup file PostgreSQL archives for r:
// its begin segment and the offset of its begin LSN in that segment.
func backupFileName(r *catalog.Backup) (string, bool) {
	n, err := wal.ParseName(r.BeginWAL)
	if err != nil || n.Kind != wal.Segment {
		return "", false
	}
	lsn, err := wal.ParseLSN(r.BeginLSN)
	if err != nil {
		return "", false
	}
	size := r.WALSegmentSize
	if size == 0 {
		size = wal.DefaultSegmentSize
	}
	if !wal.ValidSegmentSize(size) {
		return "", false
	}
	seg, err := wal.SegmentOf(n.TLI, lsn, size)
	if err != nil || seg.SegmentName() != n.SegmentName() {
		return "", false // the record disagrees with itself: match nothing
	}
	n.Kind, n.Offset = wal.Backup, uint32(lsn%uint64(size))
	return n.String(), true
}

// Off tells why no WAL is deleted at all, or "" when the filter is active.
func (f *WALFilter) Off() string { return f.off }

// Floor is the begin WAL below which WAL is obsolete ("" when Off).
func (f *WALFilter) Floor() string { return f.floorName }

// Obsolete tells whether the archived WAL file called name (its base name,
// without the codec extension) may be deleted. Names it does not know are
// never obsolete.
func (f *WALFilter) Obsolete(name string) bool {
	if f.off != "" {
		return false
	}
	n, err := wal.ParseName(name)
	if err != nil {
		return false
	}
	switch n.Kind {
	case wal.History:
		// Tiny, and needed to follow any timeline switch: always kept.
		return false
	case wal.Backup:
		if f.startSegs[n.SegmentName()] {
			return false
		}
		if f.dropBackupFiles[name] {
			return true
		}
	}
	p := posOf(n)
	if p >= f.floor {
		return false
	}
	for _, r := range f.protect {
		if p >= r.first && p <= r.last {
			return false
		}
	}
	return true
}
