package wal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind tells what an archived WAL file is.
type Kind int

const (
	// Segment is a complete WAL segment: 000000010000000000000003.
	Segment Kind = iota
	// Partial is the last, incomplete segment of a timeline, kept by a
	// promotion or by pg_receivewal: 000000010000000000000003.partial.
	Partial
	// Backup is a backup history file written by pg_backup_stop:
	// 000000010000000000000002.00000028.backup.
	Backup
	// History is a timeline history file: 00000002.history.
	History
)

func (k Kind) String() string {
	switch k {
	case Segment:
		return "segment"
	case Partial:
		return "partial segment"
	case Backup:
		return "backup history file"
	case History:
		return "timeline history file"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Segment sizes PostgreSQL accepts for wal_segment_size (initdb
// --wal-segsize): a power of two from 1 MiB to 1 GiB.
const (
	MinSegmentSize     = 1 << 20
	MaxSegmentSize     = 1 << 30
	DefaultSegmentSize = 16 << 20
)

// ErrInvalidName is wrapped by every name parsing error, so that commands
// can turn it into a usage error without matching strings.
var ErrInvalidName = errors.New("invalid WAL file name")

// Name is a parsed WAL file name. Log and Seg are the two halves of the
// segment number as PostgreSQL prints them (XLogFileName): the segment
// number is Log*SegmentsPerLog(size)+Seg, so their meaning depends on
// wal_segment_size while the name itself does not.
type Name struct {
	Kind Kind
	TLI  uint32
	Log  uint32 // unused for History
	Seg  uint32 // unused for History
	// Offset is the backup start offset inside the segment (Backup only).
	Offset uint32
}

// ParseName parses the base name of an archived WAL file. Hex digits must be
// upper case, as PostgreSQL writes and matches them; timeline 0 does not
// exist.
func ParseName(s string) (Name, error) {
	var n Name
	var rest string
	switch {
	case len(s) == 24:
		n.Kind = Segment
	case len(s) == 24+len(".partial") && strings.HasSuffix(s, ".partial"):
		n.Kind = Partial
	case len(s) == 24+1+8+len(".backup") && strings.HasSuffix(s, ".backup") && s[24] == '.':
		n.Kind = Backup
		rest = s[25:33]
	case len(s) == 8+len(".history") && strings.HasSuffix(s, ".history"):
		n.Kind = History
	default:
		return Name{}, invalidName(s)
	}
	var ok bool
	if n.TLI, ok = hex32(s[0:8]); !ok || n.TLI == 0 {
		return Name{}, invalidName(s)
	}
	if n.Kind == History {
		return n, nil
	}
	if n.Log, ok = hex32(s[8:16]); !ok {
		return Name{}, invalidName(s)
	}
	if n.Seg, ok = hex32(s[16:24]); !ok || n.Seg >= maxSegmentsPerLog {
		return Name{}, invalidName(s)
	}
	if n.Kind == Backup {
		if n.Offset, ok = hex32(rest); !ok {
			return Name{}, invalidName(s)
		}
	}
	return n, nil
}

// maxSegmentsPerLog bounds the low half of a segment name whatever the
// segment size: the smallest segments (1 MiB) give 4096 per log id.
const maxSegmentsPerLog = 0x100000000 / MinSegmentSize

func invalidName(s string) error {
	return fmt.Errorf("%w %q: expected a segment (24 upper-case hex digits, e.g. 000000010000000000000003), "+
		"a .partial or .backup file of one, or a TLI.history file", ErrInvalidName, s)
}

// hex32 parses exactly 8 upper-case hex digits. strconv.ParseUint alone
// would also take lower case, which PostgreSQL never writes, so a lower-case
// name could alias an upper-case one in the store.
func hex32(s string) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err == nil
}

// String formats the name as PostgreSQL does; ParseName(n.String()) == n.
func (n Name) String() string {
	switch n.Kind {
	case History:
		return fmt.Sprintf("%08X.history", n.TLI)
	case Partial:
		return n.segmentName() + ".partial"
	case Backup:
		return fmt.Sprintf("%s.%08X.backup", n.segmentName(), n.Offset)
	}
	return n.segmentName()
}

func (n Name) segmentName() string {
	return fmt.Sprintf("%08X%08X%08X", n.TLI, n.Log, n.Seg)
}

// SegmentName is the name of the segment a Segment, Partial or Backup name
// refers to.
func (n Name) SegmentName() string { return n.segmentName() }

// IsSegment tells whether n names a complete segment.
func (n Name) IsSegment() bool { return n.Kind == Segment }

// ValidSegmentSize tells whether size is a wal_segment_size PostgreSQL accepts.
func ValidSegmentSize(size int64) bool {
	return size >= MinSegmentSize && size <= MaxSegmentSize && size&(size-1) == 0
}

func checkSegmentSize(size int64) error {
	if !ValidSegmentSize(size) {
		return fmt.Errorf("invalid WAL segment size %d: must be a power of two from 1 MiB to 1 GiB", size)
	}
	return nil
}

// SegmentsPerLog is how many segments of size bytes one log id (4 GiB of
// WAL) holds: the range of the low half of a segment name.
func SegmentsPerLog(size int64) uint32 {
	return uint32(0x100000000 / size)
}

// SegNo is the segment number of n for segments of size bytes, counting
// from the start of WAL. It fails when n's low half is out of range for
// that size, which means the name was not written for it.
func (n Name) SegNo(size int64) (uint64, error) {
	if err := checkSegmentSize(size); err != nil {
		return 0, err
	}
	if n.Kind == History {
		return 0, fmt.Errorf("%s is a timeline history file, not a segment", n)
	}
	per := SegmentsPerLog(size)
	if n.Seg >= per {
		return 0, fmt.Errorf("%s is not a segment name for %d MiB segments (at most %d segments per log id)",
			n, size>>20, per)
	}
	return uint64(n.Log)*uint64(per) + uint64(n.Seg), nil
}

// SegmentFromSegNo names segment segno of timeline tli for segments of size
// bytes. size must be valid (ValidSegmentSize).
func SegmentFromSegNo(tli uint32, segno uint64, size int64) Name {
	per := uint64(SegmentsPerLog(size))
	return Name{Kind: Segment, TLI: tli, Log: uint32(segno / per), Seg: uint32(segno % per)}
}

// SegmentOf names the segment of timeline tli holding lsn.
func SegmentOf(tli uint32, lsn uint64, size int64) (Name, error) {
	if err := checkSegmentSize(size); err != nil {
		return Name{}, err
	}
	return SegmentFromSegNo(tli, lsn/uint64(size), size), nil
}

// StartLSN is the LSN of the first byte of segment n.
func (n Name) StartLSN(size int64) (uint64, error) {
	segno, err := n.SegNo(size)
	if err != nil {
		return 0, err
	}
	return segno * uint64(size), nil
}

// Next is the segment after n on the same timeline (a Segment whatever n's
// kind). It fails at the end of the 64-bit WAL space.
func (n Name) Next(size int64) (Name, error) {
	segno, err := n.SegNo(size)
	if err != nil {
		return Name{}, err
	}
	if segno+1 > ^uint64(0)/uint64(size) {
		return Name{}, fmt.Errorf("%s is the last segment of the WAL space", n)
	}
	return SegmentFromSegNo(n.TLI, segno+1, size), nil
}

// FormatLSN prints an LSN as PostgreSQL does: 0/3000028.
func FormatLSN(lsn uint64) string {
	return fmt.Sprintf("%X/%X", uint32(lsn>>32), uint32(lsn))
}

// ParseLSN reads an LSN written as PostgreSQL does (hi/lo in hex).
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q: expected two hex numbers such as 0/3000028", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q: expected two hex numbers such as 0/3000028", s)
	}
	return h<<32 | l, nil
}
