package pg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// BlockSize is BLCKSZ, the size of a relation file's block (page). gbc
// supports servers built with the default only; an incremental backup of
// another refuses to start (see the block map's check).
const BlockSize = 8192

// RelSegBlocks is RELSEG_SIZE: a relation segment file holds at most this
// many blocks (1 GiB).
const RelSegBlocks = 131072

// IncrementalMagic starts every INCREMENTAL file (INCREMENTAL_MAGIC).
const IncrementalMagic = 0xd3ae1f0d

// IncrementalPrefix marks an incremental file's name in a backup: the
// changed blocks of relation file "16384" are stored as
// "INCREMENTAL.16384" in the same directory.
const IncrementalPrefix = "INCREMENTAL."

// IncrementalHeader is the head of an INCREMENTAL file, the format
// PostgreSQL 17's BASE_BACKUP ... INCREMENTAL writes and pg_combinebackup
// reads, which gbc also writes for its own block-level incremental
// backups, so that one reader combines both.
//
// The file is: magic, the number of blocks, the truncation block length
// (all uint32, in the server's byte order), the block numbers (uint32
// each, relative to the segment, ascending), zero padding up to a
// multiple of BlockSize when any block follows, then the blocks in the
// order of their numbers.
//
// TruncationBlockLength is the length in blocks of the file as older
// backups of the chain contribute to it: blocks below it that this file
// does not hold come from the older backups, blocks at or above it only
// from this one (zeros where it holds none). The reconstructed file is
// max(TruncationBlockLength, last block + 1) blocks long.
type IncrementalHeader struct {
	Blocks                []uint32
	TruncationBlockLength uint32
}

// HeaderSize is the header's length in the file, padding included.
func (h *IncrementalHeader) HeaderSize() int64 {
	n := int64(12 + 4*len(h.Blocks))
	if len(h.Blocks) > 0 && n%BlockSize != 0 {
		n += BlockSize - n%BlockSize
	}
	return n
}

// FileSize is the whole INCREMENTAL file's length.
func (h *IncrementalHeader) FileSize() int64 {
	return h.HeaderSize() + int64(len(h.Blocks))*BlockSize
}

// Length is the reconstructed file's length in blocks.
func (h *IncrementalHeader) Length() uint32 {
	n := h.TruncationBlockLength
	if k := len(h.Blocks); k > 0 && h.Blocks[k-1]+1 > n {
		n = h.Blocks[k-1] + 1
	}
	return n
}

// Encode returns the header bytes, padding included.
func (h *IncrementalHeader) Encode() []byte {
	b := make([]byte, h.HeaderSize())
	le := binary.LittleEndian
	le.PutUint32(b[0:], IncrementalMagic)
	le.PutUint32(b[4:], uint32(len(h.Blocks)))
	le.PutUint32(b[8:], h.TruncationBlockLength)
	for i, n := range h.Blocks {
		le.PutUint32(b[12+4*i:], n)
	}
	return b
}

// ReadIncrementalHeader reads a header and its padding from r, leaving r
// at the first block. It checks what a damaged or foreign file would get
// wrong: the magic, the counts against RELSEG_SIZE, and that the block
// numbers ascend.
func ReadIncrementalHeader(r io.Reader) (*IncrementalHeader, error) {
	var head [12]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("read incremental file header: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(head[0:]); m != IncrementalMagic {
		return nil, fmt.Errorf("not an incremental file: magic %#x, want %#x", m, IncrementalMagic)
	}
	n, trunc := le.Uint32(head[4:]), le.Uint32(head[8:])
	if n > RelSegBlocks || trunc > RelSegBlocks {
		return nil, fmt.Errorf("incremental file header claims %d blocks and a truncation length of %d: at most %d", n, trunc, RelSegBlocks)
	}
	h := &IncrementalHeader{Blocks: make([]uint32, n), TruncationBlockLength: trunc}
	nums := make([]byte, 4*n)
	if _, err := io.ReadFull(r, nums); err != nil {
		return nil, fmt.Errorf("read incremental file block numbers: %w", err)
	}
	for i := range h.Blocks {
		h.Blocks[i] = le.Uint32(nums[4*i:])
		if h.Blocks[i] >= RelSegBlocks || (i > 0 && h.Blocks[i] <= h.Blocks[i-1]) {
			return nil, errors.New("incremental file header: block numbers out of order or beyond a segment")
		}
	}
	if pad := h.HeaderSize() - int64(12+4*n); pad > 0 {
		if _, err := io.CopyN(io.Discard, r, pad); err != nil {
			return nil, fmt.Errorf("read incremental file header padding: %w", err)
		}
	}
	return h, nil
}

// IncrementalName is the name under which a backup stores the changed
// blocks of the relation file name (a slash-separated path).
func IncrementalName(name string) string {
	dir, base := path.Split(name)
	return dir + IncrementalPrefix + base
}

// FromIncrementalName tells whether name is an INCREMENTAL file, and
// which relation file it holds the blocks of.
func FromIncrementalName(name string) (string, bool) {
	dir, base := path.Split(name)
	rel, ok := strings.CutPrefix(base, IncrementalPrefix)
	if !ok || rel == "" {
		return "", false
	}
	return dir + rel, true
}
