package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/wal"
)

// walScan is what scanWAL found.
type walScan struct {
	newest      *Segment
	checkedFrom string
	gaps        []Gap
	moreGaps    int
}

// walDir is one WAL directory, <TLI><LOG>/: the segments of one timeline
// in one 4 GiB stretch of WAL.
type walDir struct {
	key string
	tli uint32
	log uint32
}

// span is a stretch of segment numbers that recovery reads from one
// timeline: from..to, both included.
type span struct {
	tli      uint32
	from, to uint64
}

// maxSegNo stands for "no end" in a span.
const maxSegNo = ^uint64(0)

// scanWAL finds the newest segment and the gaps from floor (the begin WAL
// of the oldest backup that needs all WAL after it, "" for none) on the
// path recovery follows to the newest timeline. latest is the latest
// backup's begin WAL: gaps after it are marked AfterLatest. segSize is
// the servers' wal_segment_size, as the backups recorded it.
//
// It lists only what it needs (see the package documentation): the level
// of wals/, then the directories that may hold segments of the path at or
// after floor, oldest first, checking that the segment numbers follow one
// another; segments of other timelines are skipped. Memory is bounded by
// one directory's listing and MaxGaps.
func scanWAL(ctx context.Context, s cloud.Store, l catalog.Layout, floor, latest string, segSize int64) (walScan, error) {
	var out walScan
	root := l.WALRoot()
	var dirs []walDir
	history := map[uint32]string{} // timeline -> key of its history file
	err := cloud.ListLevel(ctx, s, root, func(a cloud.Attrs) error {
		name := strings.TrimPrefix(a.Key, root)
		if d, ok := strings.CutSuffix(name, "/"); ok {
			if n, err := wal.ParseName(d + "00000000"); err == nil && len(d) == 16 {
				dirs = append(dirs, walDir{key: a.Key, tli: n.TLI, log: n.Log})
			}
			return nil
		}
		base, _ := compress.SplitKey(name)
		if n, err := wal.ParseName(base); err == nil && n.Kind == wal.History {
			history[n.TLI] = a.Key
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("list WAL of server %s: %w", l.Server, err)
	}
	if len(dirs) == 0 {
		return out, nil
	}
	// Lexical order of the directory names is (timeline, log) order.
	slices.SortFunc(dirs, func(a, b walDir) int { return strings.Compare(a.key, b.key) })
	top := dirs[len(dirs)-1].tli

	lastOf := map[string]*Segment{} // directory key -> its newest segment
	listDir := func(d walDir, fn func(wal.Name, cloud.Attrs)) error {
		var last *Segment
		err := s.List(ctx, d.key, func(a cloud.Attrs) error {
			base, _ := compress.SplitKey(path.Base(a.Key))
			n, err := wal.ParseName(base)
			if err != nil || n.Kind != wal.Segment || n.TLI != d.tli || n.Log != d.log {
				return nil
			}
			last = &Segment{Name: base, Time: a.ModTime}
			if fn != nil {
				fn(n, a)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list WAL of server %s: %w", l.Server, err)
		}
		lastOf[d.key] = last
		return nil
	}

	if floor != "" {
		g, err := checkPath(ctx, s, l, dirs, history, top, floor, latest, segSize, listDir)
		if err != nil {
			return out, err
		}
		out.checkedFrom, out.gaps, out.moreGaps = floor, g.gaps, g.more
	}
	// The newest segment is the last one of the last directory that
	// holds one (a directory may hold only a .partial or .backup file).
	for i := len(dirs) - 1; i >= 0 && out.newest == nil; i-- {
		last, ok := lastOf[dirs[i].key]
		if !ok {
			if err := listDir(dirs[i], nil); err != nil {
				return out, err
			}
			last = lastOf[dirs[i].key]
		}
		out.newest = last
	}
	return out, nil
}

type gapList struct {
	gaps []Gap
	more int
}

func (gl *gapList) add(g Gap) {
	if len(gl.gaps) < MaxGaps {
		gl.gaps = append(gl.gaps, g)
	} else {
		gl.more++
	}
}

// checkPath walks the path from floor to the newest segment of timeline
// top and reports its gaps.
func checkPath(ctx context.Context, s cloud.Store, l catalog.Layout, dirs []walDir, history map[uint32]string, top uint32,
	floor, latest string, segSize int64, listDir func(walDir, func(wal.Name, cloud.Attrs)) error) (gapList, error) {
	var gl gapList
	floorNo, err := segNo(floor, segSize)
	if err != nil {
		return gl, err
	}
	latestNo := floorNo
	if latest != "" {
		if latestNo, err = segNo(latest, segSize); err != nil {
			return gl, err
		}
	}
	spans := []span{{tli: top, from: 0, to: maxSegNo}}
	if top > 1 {
		key, ok := history[top]
		if !ok {
			// Without the history, recovery cannot follow the switches
			// to top, and neither can this check.
			lt, err := wal.ParseName(latest)
			gl.add(Gap{History: wal.Name{Kind: wal.History, TLI: top}.String(), AfterLatest: err != nil || lt.TLI < top})
			return gl, nil
		}
		h, err := readHistory(ctx, s, key, top)
		if err != nil {
			return gl, err
		}
		spans = pathSpans(h, segSize)
	}
	per := uint64(wal.SegmentsPerLog(segSize))
	// The directories holding path segments at or after floor, in path
	// order: by log, then by timeline (timelines rise along the path).
	var need []walDir
	for _, d := range dirs {
		lo, hi := uint64(d.log)*per, uint64(d.log)*per+per-1
		if hi < floorNo {
			continue
		}
		for _, sp := range spans {
			if sp.tli == d.tli && sp.from <= hi && sp.to >= lo {
				need = append(need, d)
				break
			}
		}
	}
	slices.SortFunc(need, func(a, b walDir) int {
		if a.log != b.log {
			return int(int64(a.log) - int64(b.log))
		}
		return int(int64(a.tli) - int64(b.tli))
	})
	name := func(no uint64) string {
		return wal.SegmentFromSegNo(tliAt(spans, no), no, segSize).String()
	}
	next := floorNo // the next segment expected on the path
	for _, d := range need {
		err := listDir(d, func(n wal.Name, _ cloud.Attrs) {
			no, err := n.SegNo(segSize)
			if err != nil || no < next || tliAt(spans, no) != n.TLI {
				return
			}
			if no > next {
				gl.add(Gap{From: name(next), To: name(no - 1), Segments: no - next, AfterLatest: no-1 >= latestNo})
			}
			next = no + 1
		})
		if err != nil {
			return gl, err
		}
		if err := ctx.Err(); err != nil {
			return gl, err
		}
	}
	if next == floorNo {
		// Not one segment from floor on: the oldest backup's own WAL is
		// gone (or was never archived), and so is all after it.
		gl.add(Gap{From: name(floorNo), To: name(floorNo), Segments: 1, AfterLatest: true})
	}
	return gl, nil
}

// pathSpans turns the history of the newest timeline into the spans of
// segments recovery reads from each timeline. A segment belongs to the
// timeline that holds its last byte: the segment where a timeline
// switches is read from the child, which holds the parent's WAL up to
// the switch point and its own after it.
func pathSpans(h wal.TimelineHistory, segSize int64) []span {
	var spans []span
	from := uint64(0)
	for _, sw := range h.Switches {
		end := sw.End / uint64(segSize) // first segment whose last byte is past the switch
		if end > from {
			spans = append(spans, span{tli: sw.TLI, from: from, to: end - 1})
			from = end
		}
	}
	return append(spans, span{tli: h.TLI, from: from, to: maxSegNo})
}

// tliAt is the timeline recovery reads segment no from.
func tliAt(spans []span, no uint64) uint32 {
	for _, sp := range spans {
		if no >= sp.from && no <= sp.to {
			return sp.tli
		}
	}
	return spans[len(spans)-1].tli
}

func segNo(name string, segSize int64) (uint64, error) {
	n, err := wal.ParseName(name)
	if err != nil {
		return 0, err
	}
	return n.SegNo(segSize)
}

// maxHistorySize bounds a history file read: one line per timeline.
const maxHistorySize = 1 << 20

func readHistory(ctx context.Context, s cloud.Store, key string, tli uint32) (wal.TimelineHistory, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		if errors.Is(err, cloud.ErrNotFound) {
			return wal.TimelineHistory{TLI: tli}, nil
		}
		return wal.TimelineHistory{}, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	_, codec := compress.SplitKey(key)
	dec, err := codec.NewReader(io.LimitReader(rc, maxHistorySize))
	if err != nil {
		return wal.TimelineHistory{}, fmt.Errorf("read %s: %w", key, err)
	}
	defer dec.Close()
	h, err := wal.ParseHistory(tli, dec)
	if err != nil {
		return wal.TimelineHistory{}, fmt.Errorf("read %s: %w", key, err)
	}
	return h, nil
}
