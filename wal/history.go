package wal

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TimelineSwitch is one line of a timeline history file: timeline TLI ended
// at LSN End, where its child began.
type TimelineSwitch struct {
	TLI    uint32
	End    uint64
	Reason string
}

// TimelineHistory is the content of timeline TLI's history file: the switches that
// led to it, oldest first.
type TimelineHistory struct {
	TLI      uint32
	Switches []TimelineSwitch
}

// ParseHistory reads the history file of timeline tli in PostgreSQL's
// format (readTimeLineHistory): "parentTLI<TAB>switchpoint<TAB>reason" lines,
// with blank lines and #-comments ignored. Timelines must increase and
// switch points must not go back, as PostgreSQL requires.
func ParseHistory(tli uint32, r io.Reader) (TimelineHistory, error) {
	h := TimelineHistory{TLI: tli}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 2 {
			return TimelineHistory{}, fmt.Errorf("history of timeline %d, line %d: expected a timeline and a switch point", tli, line)
		}
		parent, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil || parent == 0 {
			return TimelineHistory{}, fmt.Errorf("history of timeline %d, line %d: invalid timeline %q", tli, line, fields[0])
		}
		end, err := ParseLSN(fields[1])
		if err != nil {
			return TimelineHistory{}, fmt.Errorf("history of timeline %d, line %d: %w", tli, line, err)
		}
		if n := len(h.Switches); n > 0 {
			prev := h.Switches[n-1]
			if uint32(parent) <= prev.TLI || end < prev.End {
				return TimelineHistory{}, fmt.Errorf("history of timeline %d, line %d: timelines and switch points must increase", tli, line)
			}
		}
		reason := ""
		if len(fields) > 2 {
			reason = strings.Join(fields[2:], " ")
		}
		h.Switches = append(h.Switches, TimelineSwitch{TLI: uint32(parent), End: end, Reason: reason})
	}
	if err := sc.Err(); err != nil {
		return TimelineHistory{}, fmt.Errorf("read history of timeline %d: %w", tli, err)
	}
	if n := len(h.Switches); n > 0 && h.Switches[n-1].TLI >= tli {
		return TimelineHistory{}, fmt.Errorf("history of timeline %d: names timeline %d as a parent, which is not older", tli, h.Switches[n-1].TLI)
	}
	return h, nil
}

// TimelineOf is the timeline that holds lsn on the way to h.TLI: the first
// ancestor that had not yet ended at lsn, else h.TLI itself. This is the
// timeline whose segment a recovery towards h.TLI reads lsn from.
func (h TimelineHistory) TimelineOf(lsn uint64) uint32 {
	for _, s := range h.Switches {
		if lsn < s.End {
			return s.TLI
		}
	}
	return h.TLI
}
