package pg

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the WAL (XLogRecPtr), printed as PostgreSQL prints
// pg_lsn values: two hexadecimal halves, "0/2000028".
type LSN uint64

// ParseLSN parses "X/Y" as PostgreSQL prints an LSN. Both halves are 32-bit
// hexadecimal numbers; lower and upper case are accepted, as pg_lsn's input
// function does.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q: want two hexadecimal numbers such as 0/2000028", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// String formats the LSN as PostgreSQL does (%X/%X).
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// Segment is the number of the WAL segment holding l (XLByteToSeg).
func (l LSN) Segment(segSize int64) uint64 {
	return uint64(l) / uint64(segSize)
}

// PrevSegment is the number of the segment holding the byte just before l
// (XLByteToPrevSeg): the last segment needed to replay up to l, which
// differs from Segment when l is at a segment boundary.
func (l LSN) PrevSegment(segSize int64) uint64 {
	if l == 0 {
		return 0
	}
	return uint64(l-1) / uint64(segSize)
}

// SegmentName is the WAL file name of segment seg on timeline tli
// (XLogFileName): timeline, then the segment number split into the "log" and
// "seg" halves, each as eight upper-case hexadecimal digits.
func SegmentName(tli uint32, seg uint64, segSize int64) string {
	perLog := uint64(0x100000000) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, uint32(seg/perLog), uint32(seg%perLog))
}

// ValidSegmentSize tells whether n is a wal_segment_size PostgreSQL accepts:
// a power of two from 1 MiB to 1 GiB.
func ValidSegmentSize(n int64) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}
