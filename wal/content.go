package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
)

// ErrWrongFile: the content of an archived object is a valid WAL file, but
// not the one its name says: another segment or timeline was stored (or
// copied on the server side) under this name. Its checksum matches, since
// the metadata travels with the copy, so only the content can tell. Handed
// to PostgreSQL, such a segment ends recovery early ("unexpected pageaddr")
// and the server promotes although the archive holds more WAL.
var ErrWrongFile = errors.New("content does not match the file name")

// Offsets in XLogLongPageHeaderData, the header of a segment's first page:
// the short header (xlp_magic uint16, xlp_info uint16, xlp_tli uint32,
// xlp_pageaddr uint64, xlp_rem_len uint32, 4 bytes of padding), then
// xlp_sysid uint64, xlp_seg_size uint32 and xlp_xlog_blcksz uint32.
const (
	// SegmentHeaderSize is how much of a segment CheckSegmentHeader reads.
	SegmentHeaderSize = 40
	xlpLongHeader     = 0x0002 // XLP_LONG_HEADER in xlp_info
	// WAL page magic numbers: 0xD062 was PostgreSQL 8.4's, 0xD118 is
	// 18's, and each major version adds a few. Below the range is not WAL;
	// the top leaves room for versions to come.
	minPageMagic = 0xD062
	maxPageMagic = 0xD1FF
)

// SegmentHeader is what a segment's first page says about it.
type SegmentHeader struct {
	Magic    uint16
	TLI      uint32
	PageAddr uint64
	SysID    uint64
	SegSize  int64
}

// ParseSegmentHeader decodes the long page header at the start of a
// segment. WAL is written in the server's byte order; gbc supports the
// little-endian platforms PostgreSQL runs on in practice.
func ParseSegmentHeader(head []byte) (SegmentHeader, error) {
	if len(head) < SegmentHeaderSize {
		return SegmentHeader{}, fmt.Errorf("%w: %d bytes, shorter than a WAL page header", ErrWrongFile, len(head))
	}
	h := SegmentHeader{
		Magic:    binary.LittleEndian.Uint16(head[0:2]),
		TLI:      binary.LittleEndian.Uint32(head[4:8]),
		PageAddr: binary.LittleEndian.Uint64(head[8:16]),
		SysID:    binary.LittleEndian.Uint64(head[24:32]),
		SegSize:  int64(binary.LittleEndian.Uint32(head[32:36])),
	}
	info := binary.LittleEndian.Uint16(head[2:4])
	blcksz := binary.LittleEndian.Uint32(head[36:40])
	switch {
	case h.Magic < minPageMagic || h.Magic > maxPageMagic:
		return SegmentHeader{}, fmt.Errorf("%w: page magic %#04x is not a WAL page's", ErrWrongFile, h.Magic)
	case info&xlpLongHeader == 0:
		return SegmentHeader{}, fmt.Errorf("%w: the first page has no long header, so it is not the start of a segment", ErrWrongFile)
	case !ValidSegmentSize(h.SegSize):
		return SegmentHeader{}, fmt.Errorf("%w: the header's segment size %d is not a valid one", ErrWrongFile, h.SegSize)
	case blcksz < 1024 || blcksz > 65536 || blcksz&(blcksz-1) != 0:
		return SegmentHeader{}, fmt.Errorf("%w: the header's WAL block size %d is not a valid one", ErrWrongFile, blcksz)
	}
	return h, nil
}

// CheckSegmentHeader verifies that head, the first bytes of a segment or
// .partial file, belongs to the segment name: its first page must be
// addressed at the segment's start, and be of name's timeline or of an
// ancestor (a segment where a timeline begins starts with its parent's
// WAL, which is copied into it at the switch). size is the file's full
// size, which must be the header's segment size.
func CheckSegmentHeader(name Name, head []byte, size int64) error {
	h, err := ParseSegmentHeader(head)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return h.Check(name, size)
}

// Check is CheckSegmentHeader for a header already parsed.
func (h SegmentHeader) Check(name Name, size int64) error {
	if size != h.SegSize {
		return fmt.Errorf("%s: %w: %d bytes, but its header gives a segment size of %d", name, ErrWrongFile, size, h.SegSize)
	}
	start, err := name.StartLSN(h.SegSize)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrWrongFile, err)
	}
	if h.PageAddr != start {
		got := SegmentFromSegNo(h.TLI, h.PageAddr/uint64(h.SegSize), h.SegSize)
		return fmt.Errorf("%s: %w: its first page is at %s (segment %s), not at %s", name, ErrWrongFile,
			FormatLSN(h.PageAddr), got.segmentName(), FormatLSN(start))
	}
	if h.TLI == 0 || h.TLI > name.TLI {
		return fmt.Errorf("%s: %w: its first page is of timeline %d, not of timeline %d or an ancestor", name, ErrWrongFile, h.TLI, name.TLI)
	}
	return nil
}

// CheckHistory verifies that content is the history file of name's
// timeline: it parses, and every timeline it lists is an ancestor
// (lower), which a copy of a later timeline's history would break.
func CheckHistory(name Name, content []byte) error {
	h, err := ParseHistory(name.TLI, bytes.NewReader(content))
	if err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrWrongFile, err)
	}
	if len(h.Switches) == 0 {
		return fmt.Errorf("%s: %w: it lists no parent timeline", name, ErrWrongFile)
	}
	for _, s := range h.Switches {
		if s.TLI >= name.TLI {
			return fmt.Errorf("%s: %w: it lists timeline %d, which is not an ancestor of timeline %d (the history of a later timeline?)",
				name, ErrWrongFile, s.TLI, name.TLI)
		}
	}
	return nil
}

// backupStart finds the segment named in a backup history file.
var backupStart = regexp.MustCompile(`(?m)^START WAL LOCATION: [0-9A-F]+/[0-9A-F]+ \(file ([0-9A-F]{24})\)`)

// CheckBackupFile verifies that content is the backup history file name:
// it starts in the segment its name starts with.
func CheckBackupFile(name Name, content []byte) error {
	m := backupStart.FindSubmatch(content)
	if m == nil {
		return fmt.Errorf("%s: %w: no START WAL LOCATION line", name, ErrWrongFile)
	}
	if string(m[1]) != name.segmentName() {
		return fmt.Errorf("%s: %w: it describes a backup that starts in segment %s", name, ErrWrongFile, m[1])
	}
	return nil
}

// contentCheck keeps what a check of a downloaded file needs: a segment's
// first page, or a whole history or backup file (small by nature; more
// than maxSmallFile is itself wrong).
type contentCheck struct {
	name  Name
	buf   []byte
	limit int
}

const maxSmallFile = 1 << 20

func newContentCheck(name Name) *contentCheck {
	c := &contentCheck{name: name, limit: maxSmallFile}
	if name.Kind == Segment || name.Kind == Partial {
		c.limit = SegmentHeaderSize
	}
	return c
}

// Write keeps the first bytes; it never fails, so that it can sit beside
// the file in an io.MultiWriter.
func (c *contentCheck) Write(p []byte) (int, error) {
	if room := c.limit - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// verify checks what was written, size bytes in all, against the name.
func (c *contentCheck) verify(size int64) error {
	switch c.name.Kind {
	case Segment, Partial:
		return CheckSegmentHeader(c.name, c.buf, size)
	}
	if size > int64(c.limit) {
		return fmt.Errorf("%s: %w: %d bytes, too large for a %s", c.name, ErrWrongFile, size, c.name.Kind)
	}
	if c.name.Kind == History {
		return CheckHistory(c.name, c.buf)
	}
	return CheckBackupFile(c.name, c.buf)
}
