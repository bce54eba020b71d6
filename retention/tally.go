package retention

import (
	"sort"

	"github.com/gbc-backup/gbc/wal"
)

// WALRange is a run of obsolete WAL objects of one timeline, uninterrupted
// by a WAL object that stays.
type WALRange struct {
	Timeline uint32 `json:"timeline"`
	First    string `json:"first"` // name of the first object
	Last     string `json:"last"`  // name of the last object
	Objects  int    `json:"objects"`
	Bytes    int64  `json:"bytes"`
}

// WALTally sums up a WAL listing as it streams by: the obsolete objects as
// ranges per timeline, and the counts of what stays. It holds one open range
// per timeline and the closed ranges, whose number grows with the gaps that
// kept backups make, not with the number of objects.
type WALTally struct {
	open   map[uint32]*WALRange
	closed []WALRange

	Deleted      int   // obsolete objects
	DeletedBytes int64 // their size
	Kept         int   // objects that stay
	KeptBytes    int64
}

// NewWALTally returns an empty tally.
func NewWALTally() *WALTally { return &WALTally{open: map[uint32]*WALRange{}} }

// Add records one listed object: its base name (without codec extension),
// its size, and whether it is obsolete. Objects are expected in listing
// order (lexical), which is position order within a timeline.
func (t *WALTally) Add(name string, size int64, obsolete bool) {
	n, err := wal.ParseName(name)
	if !obsolete {
		t.Kept++
		t.KeptBytes += size
		// A kept segment ends the run of its timeline, so that a range
		// never spans WAL that stays (a standalone backup's range).
		if err == nil && n.Kind != wal.History {
			if r := t.open[n.TLI]; r != nil {
				t.closed = append(t.closed, *r)
				delete(t.open, n.TLI)
			}
		}
		return
	}
	t.Deleted++
	t.DeletedBytes += size
	var tli uint32
	if err == nil {
		tli = n.TLI
	}
	r := t.open[tli]
	if r == nil {
		r = &WALRange{Timeline: tli, First: name}
		t.open[tli] = r
	}
	r.Last = name
	r.Objects++
	r.Bytes += size
}

// Ranges returns every range, closed or still open, by timeline and then
// by first name.
func (t *WALTally) Ranges() []WALRange {
	out := append([]WALRange(nil), t.closed...)
	for _, r := range t.open {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Timeline != out[j].Timeline {
			return out[i].Timeline < out[j].Timeline
		}
		return out[i].First < out[j].First
	})
	return out
}
