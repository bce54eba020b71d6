package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/wal"
)

// WALResult sums up the check of the WAL archive.
type WALResult struct {
	// Segments is the number of archived segments listed, Checked the
	// number the backups need (from each one's begin to the newest).
	Segments  int      `json:"segments"`
	Checked   int      `json:"checked"`
	Timelines []uint32 `json:"timelines"`
	Histories int      `json:"history_files"`
	// Newest is the newest archived segment (on the newest timeline that
	// has one), and NewestTime when it was stored.
	Newest     string    `json:"newest,omitempty"`
	NewestTime time.Time `json:"newest_time,omitzero"`
}

// archive is one listing of a server's WAL area: the segments of each
// timeline (sorted segment numbers, with the time each was stored) and the
// history files. 32 bytes per segment.
type archive struct {
	size      int64
	segs      map[uint32]*timelineSegs
	histories map[uint32]string // key by timeline
	lastKey   string            // of a segment, to read the segment size from
}

type timelineSegs struct {
	nos  []uint64
	mods []time.Time
}

func (t *timelineSegs) find(n uint64) (time.Time, bool) {
	i, ok := slices.BinarySearch(t.nos, n)
	if !ok {
		return time.Time{}, false
	}
	return t.mods[i], true
}

// listArchive lists the WAL area once. Names are kept as (log, seg) until
// the segment size is known: sizeHint, or the header of an archived
// segment.
func listArchive(ctx context.Context, s cloud.Store, l catalog.Layout, sizeHint int64) (*archive, error) {
	type listed struct {
		n   wal.Name
		mod time.Time
	}
	var names []listed
	a := &archive{segs: map[uint32]*timelineSegs{}, histories: map[uint32]string{}}
	root := l.WALRoot()
	err := s.List(ctx, root, func(at cloud.Attrs) error {
		base, _ := compress.SplitKey(at.Key)
		n, err := wal.ParseName(path.Base(base))
		if err != nil {
			return nil // not a WAL file: not this check's business
		}
		switch n.Kind {
		case wal.Segment:
			names = append(names, listed{n, at.ModTime})
			a.lastKey = at.Key
		case wal.History:
			a.histories[n.TLI] = at.Key
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the WAL of server %s: %w", l.Server, err)
	}
	a.size = sizeHint
	if a.size == 0 && a.lastKey != "" {
		if a.size, err = segmentSize(ctx, s, a.lastKey); err != nil {
			return nil, err
		}
	}
	if a.size == 0 {
		a.size = wal.DefaultSegmentSize
	}
	for _, x := range names {
		no, err := x.n.SegNo(a.size)
		if err != nil {
			continue // not a name of this cluster's segment size
		}
		t := a.segs[x.n.TLI]
		if t == nil {
			t = &timelineSegs{}
			a.segs[x.n.TLI] = t
		}
		t.nos = append(t.nos, no)
		t.mods = append(t.mods, x.mod)
	}
	for _, t := range a.segs {
		if !sort.SliceIsSorted(t.nos, func(i, j int) bool { return t.nos[i] < t.nos[j] }) {
			sort.Sort(byNo{t})
		}
	}
	return a, nil
}

type byNo struct{ *timelineSegs }

func (b byNo) Len() int           { return len(b.nos) }
func (b byNo) Less(i, j int) bool { return b.nos[i] < b.nos[j] }
func (b byNo) Swap(i, j int) {
	b.nos[i], b.nos[j] = b.nos[j], b.nos[i]
	b.mods[i], b.mods[j] = b.mods[j], b.mods[i]
}

// segmentSize reads the segment size from the header of an archived
// segment, for a server with WAL but no backup record to say it.
func segmentSize(ctx context.Context, s cloud.Store, key string) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := s.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer body.Close()
	_, codec := compress.SplitKey(key)
	dec, err := codec.NewReader(body)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer dec.Close()
	head := make([]byte, wal.SegmentHeaderSize)
	if _, err := io.ReadFull(dec, head); err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	h, err := wal.ParseSegmentHeader(head)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	return h.SegSize, nil
}

// readHistories downloads and parses every history file; a damaged one is
// a problem and is left out.
func readHistories(ctx context.Context, s cloud.Store, a *archive, ps *problems) (map[uint32]wal.TimelineHistory, error) {
	out := map[uint32]wal.TimelineHistory{}
	for tli, key := range a.histories {
		name := wal.Name{Kind: wal.History, TLI: tli}
		content, err := readSmall(ctx, s, key)
		if errors.Is(err, cloud.ErrNotFound) {
			continue // deleted since the listing
		}
		var cerr error
		if err == nil {
			cerr = wal.CheckHistory(name, content)
		} else if errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrTransient) || ctx.Err() != nil {
			return nil, err
		} else {
			cerr = err
		}
		if cerr != nil {
			ps.add(Problem{Kind: KindHistory, Object: key, What: "damaged: " + cerr.Error(),
				Means: fmt.Sprintf("recovery cannot follow the switch to timeline %d", tli)})
			continue
		}
		h, _ := wal.ParseHistory(tli, bytes.NewReader(content)) // CheckHistory parsed it
		out[tli] = h
	}
	return out, nil
}

// readSmall reads a small object (a history file), decompressed.
func readSmall(ctx context.Context, s cloud.Store, key string) ([]byte, error) {
	body, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	_, codec := compress.SplitKey(key)
	dec, err := codec.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	defer dec.Close()
	const limit = 1 << 20
	data, err := io.ReadAll(io.LimitReader(dec, limit+1))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	if len(data) > limit {
		return nil, errors.New("larger than 1 MiB: not a history file")
	}
	return data, nil
}

// checkArchive lists the WAL and checks it for the backups given.
func checkArchive(ctx context.Context, s cloud.Store, l catalog.Layout, backups []*catalog.Backup, ps *problems) (*WALResult, error) {
	var size int64
	for _, b := range backups {
		if b.WALSegmentSize > 0 {
			size = b.WALSegmentSize
		}
	}
	a, err := listArchive(ctx, s, l, size)
	if err != nil {
		return nil, err
	}
	hist, err := readHistories(ctx, s, a, ps)
	if err != nil {
		return nil, err
	}
	return analyse(a, hist, backups, ps), nil
}

// timelinePath is the way recovery towards a target timeline reads WAL:
// which timeline's file each segment number is read from.
type timelinePath struct {
	target   uint32
	switches []wal.TimelineSwitch
	size     int64
}

// tli is the timeline segment n is read from: PostgreSQL
// (XLogFileReadAnyTLI) reads a segment from the newest timeline of the
// target's history that had begun by that segment, so the segment where
// a timeline begins is read from the new timeline.
func (p timelinePath) tli(n uint64) uint32 {
	for _, s := range p.switches {
		if n < s.End/uint64(p.size) {
			return s.TLI
		}
	}
	return p.target
}

func (p timelinePath) has(tli uint32) bool {
	if tli == p.target {
		return true
	}
	for _, s := range p.switches {
		if s.TLI == tli {
			return true
		}
	}
	return false
}

// analyse is the pure core of the WAL check: the listing and the parsed
// history files in, problems out.
func analyse(a *archive, hist map[uint32]wal.TimelineHistory, backups []*catalog.Backup, ps *problems) *WALResult {
	res := &WALResult{Histories: len(hist), Timelines: []uint32{}}
	var maxTLI uint32
	for tli, t := range a.segs {
		res.Segments += len(t.nos)
		res.Timelines = append(res.Timelines, tli)
		maxTLI = max(maxTLI, tli)
	}
	slices.Sort(res.Timelines)
	for tli := range a.histories {
		maxTLI = max(maxTLI, tli)
	}
	for _, b := range backups {
		maxTLI = max(maxTLI, b.Timeline)
	}
	// Every history file from timeline 2 up: PostgreSQL probes them one
	// number at a time (findNewestTimeLine), so a missing one hides the
	// later timelines.
	for tli := uint32(2); tli <= maxTLI; tli++ {
		if _, listed := a.histories[tli]; !listed {
			ps.add(Problem{Kind: KindHistory, Object: wal.Name{Kind: wal.History, TLI: tli}.String(),
				What:  "missing from the archive",
				Means: fmt.Sprintf("recovery from a backup of an older timeline stops at the end of timeline %d: PITR after the switch to timeline %d is impossible from those backups", tli-1, tli)})
		}
	}
	pathTo := func(target uint32) timelinePath {
		return timelinePath{target: target, switches: hist[target].Switches, size: a.size}
	}
	// The timeline recovery_target_timeline latest takes from tli.
	latest := func(tli uint32) uint32 {
		for {
			if _, ok := hist[tli+1]; !ok {
				return tli
			}
			tli++
		}
	}
	// The newest segment along a path.
	newest := func(p timelinePath) (uint64, bool) {
		var best uint64
		found := false
		for tli, t := range a.segs {
			if !p.has(tli) || len(t.nos) == 0 {
				continue
			}
			// The newest segment of tli that the path reads from tli.
			for i := len(t.nos) - 1; i >= 0; i-- {
				if p.tli(t.nos[i]) == tli {
					if !found || t.nos[i] > best {
						best, found = t.nos[i], true
					}
					break
				}
			}
		}
		return best, found
	}
	if maxTLI > 0 {
		p := pathTo(latest(maxTLI))
		if no, ok := newest(p); ok {
			tli := p.tli(no)
			res.Newest = wal.SegmentFromSegNo(tli, no, a.size).String()
			res.NewestTime, _ = a.segs[tli].find(no)
		}
	}
	present := func(p timelinePath, n uint64) (time.Time, bool) {
		t := a.segs[p.tli(n)]
		if t == nil {
			return time.Time{}, false
		}
		return t.find(n)
	}
	segName := func(p timelinePath, n uint64) string {
		return wal.SegmentFromSegNo(p.tli(n), n, a.size).String()
	}

	// What each backup needs to become consistent.
	type start struct {
		no  uint64
		ids []string
	}
	starts := map[uint32]*start{} // by target timeline
	for _, b := range backups {
		begin, err1 := wal.ParseName(b.BeginWAL)
		bno, err2 := begin.SegNo(a.size)
		if err1 != nil || err2 != nil || begin.Kind != wal.Segment {
			ps.add(Problem{Kind: KindWALBackup, Object: b.ID, Backup: b.ID,
				What: fmt.Sprintf("the record has no valid begin WAL (%q)", b.BeginWAL), Means: "the WAL it needs is unknown: " + cannotRestore(b.ID)})
			continue
		}
		eno, etli := bno, begin.TLI
		if end, err := wal.ParseName(b.EndWAL); err == nil && end.Kind == wal.Segment {
			if no, err := end.SegNo(a.size); err == nil && no >= bno {
				eno, etli = no, end.TLI
			}
		}
		p := pathTo(etli)
		var missing []string
		for n := bno; n <= eno; n++ {
			if _, ok := present(p, n); !ok {
				missing = append(missing, segName(p, n))
			}
		}
		for i, m := range missing {
			if i == maxFileProblems {
				ps.add(Problem{Kind: KindWALBackup, Object: b.ID, Backup: b.ID,
					What:  fmt.Sprintf("%d more segments it needs are missing", len(missing)-i),
					Means: cannotRestore(b.ID)})
				break
			}
			ps.add(Problem{Kind: KindWALBackup, Object: m, Backup: b.ID, What: "missing from the archive",
				Means: fmt.Sprintf("backup %s cannot be restored: it needs this segment to become consistent", b.ID)})
		}
		target := latest(b.Timeline)
		if b.Timeline == 0 {
			target = latest(begin.TLI)
		}
		if tp := pathTo(target); !tp.has(begin.TLI) {
			ps.add(Problem{Kind: KindHistory, Object: b.ID, Backup: b.ID,
				What:  fmt.Sprintf("timeline %d of the backup is not in the history of the newest timeline, %d", begin.TLI, target),
				Means: fmt.Sprintf("a restore to the end of the archive fails (recovery_target_timeline latest): restore it with --target-timeline %d", begin.TLI)})
			target = begin.TLI
		}
		s := starts[target]
		if s == nil {
			s = &start{no: bno}
			starts[target] = s
		}
		s.no = min(s.no, bno)
		s.ids = append(s.ids, b.ID)
	}
	if len(backups) == 0 && maxTLI > 0 {
		// No backup: from the oldest segment along the newest timeline.
		target := latest(maxTLI)
		p := pathTo(target)
		first, found := uint64(0), false
		for tli, t := range a.segs {
			for _, n := range t.nos {
				if p.has(tli) && p.tli(n) == tli {
					if !found || n < first {
						first, found = n, true
					}
					break
				}
			}
		}
		if found {
			starts[target] = &start{no: first}
		}
	}

	// Continuity from each start to the newest segment of its path.
	targets := make([]uint32, 0, len(starts))
	for t := range starts {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	for _, target := range targets {
		st := starts[target]
		p := pathTo(target)
		end, ok := newest(p)
		if !ok {
			continue // nothing archived along it: the backups' own checks said so
		}
		describe := func(n uint64, before bool) string {
			lsn := n * uint64(a.size)
			if !before {
				lsn = (n + 1) * uint64(a.size)
			}
			s := wal.FormatLSN(lsn)
			if mod, ok := present(p, n); ok && !mod.IsZero() {
				s += fmt.Sprintf(" (segment %s, archived %s)", segName(p, n), mod.UTC().Format(time.RFC3339))
			}
			return s
		}
		for n := st.no; n <= end; n++ {
			if _, ok := present(p, n); ok {
				res.Checked++
				continue
			}
			first := n
			for n+1 <= end {
				if _, ok := present(p, n+1); ok {
					break
				}
				n++
			}
			object := segName(p, first)
			if n > first {
				object = fmt.Sprintf("%s to %s (%d segments)", object, segName(p, n), n-first+1)
			}
			var from string
			if first > st.no {
				from = describe(first-1, false)
			} else {
				from = "the start of backup " + joinIDs(st.ids)
			}
			var before []string
			for _, id := range st.ids {
				for _, b := range backups {
					if b.ID == id {
						if bn, err := wal.ParseName(b.BeginWAL); err == nil {
							if no, err := bn.SegNo(a.size); err == nil && no < first {
								before = append(before, id)
							}
						}
					}
				}
			}
			means := fmt.Sprintf("PITR between %s and %s is impossible", from, describe(n+1, true))
			if len(before) > 0 {
				means += fmt.Sprintf("; recovery from backups %s stops at %s", joinIDs(before), wal.FormatLSN(first*uint64(a.size)))
			}
			ps.add(Problem{Kind: KindWALGap, Object: object, What: fmt.Sprintf("missing from the archive (timeline %d)", p.tli(first)), Means: means})
		}
	}
	return res
}
