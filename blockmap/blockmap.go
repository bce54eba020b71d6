package blockmap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zeebo/xxh3"
)

// BlockSize is the size of the blocks hashed: PostgreSQL's BLCKSZ.
const BlockSize = 8192

// MTimeMargin is how much older than the parent's start a file's
// modification time must be for the file to be taken as unchanged without
// reading it: more than the coarsest timestamp granularity of the file
// systems PostgreSQL runs on.
const MTimeMargin = 2 * time.Second

const magic = "GBCBMAP1"

// maxBlocks bounds one record: a relation segment is at most 1 GiB.
const maxBlocks = 1 << 17

// Hash is the hash of one block.
func Hash(block []byte) uint64 { return xxh3.Hash(block) }

// Entry is one file's record.
type Entry struct {
	Path   string
	Size   int64
	MTime  time.Time
	Hashes []uint64
}

// Unchanged tells whether a file of this size and modification time can
// be taken, without reading it, to hold the blocks the entry describes.
// parentStart is the start of the backup whose map holds the entry.
func (e *Entry) Unchanged(size int64, mtime, parentStart time.Time) bool {
	return size == e.Size && size == int64(len(e.Hashes))*BlockSize &&
		mtime.Equal(e.MTime) && mtime.Before(parentStart.Add(-MTimeMargin))
}

// Writer writes a map to w. It is not safe for concurrent use.
type Writer struct {
	w     *bufio.Writer
	files int64
	buf   []byte
	err   error
}

// NewWriter starts a map.
func NewWriter(w io.Writer) *Writer {
	bw := bufio.NewWriterSize(w, 256<<10)
	_, err := bw.WriteString(magic)
	return &Writer{w: bw, err: err}
}

// Add writes one file's record.
func (w *Writer) Add(e *Entry) error {
	if w.err != nil {
		return w.err
	}
	if e.Path == "" {
		return errors.New("block map: empty path")
	}
	b := w.buf[:0]
	b = binary.AppendUvarint(b, uint64(len(e.Path)))
	b = append(b, e.Path...)
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.MTime.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(e.Hashes)))
	for _, h := range e.Hashes {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	w.buf = b
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("write block map: %w", err)
		return w.err
	}
	w.files++
	return nil
}

// Files is the number of records written.
func (w *Writer) Files() int64 { return w.files }

// Close writes the end record and flushes; it does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	b := binary.AppendUvarint(nil, 0)
	b = binary.AppendUvarint(b, uint64(w.files))
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("write block map: %w", err)
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("write block map: %w", err)
	}
	return nil
}

// Index looks files up in a map spooled to a temporary file.
type Index struct {
	f      *os.File
	offset map[uint64]int64
}

// Load reads a map from r into a temporary file in dir ("" for the
// default) and indexes it. The caller closes the Index.
func Load(r io.Reader, dir string) (*Index, error) {
	f, err := os.CreateTemp(dir, "gbc-blockmap-*")
	if err != nil {
		return nil, fmt.Errorf("block map spool: %w", err)
	}
	// Unlinked at once: the spool lives as long as the descriptor, even
	// if gbc is killed.
	os.Remove(f.Name())
	ix := &Index{f: f, offset: map[uint64]int64{}}
	if err := ix.load(r); err != nil {
		f.Close()
		return nil, err
	}
	return ix, nil
}

// countingReader counts the bytes read through a bufio.Reader, so that
// record offsets in the spool are known.
type countingReader struct {
	r *bufio.Reader
	w *bufio.Writer
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
		err = c.w.WriteByte(b)
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(c.r, p)
	c.n += int64(n)
	if _, werr := c.w.Write(p[:n]); werr != nil && err == nil {
		err = werr
	}
	return n, err
}

func (ix *Index) load(r io.Reader) error {
	bw := bufio.NewWriterSize(ix.f, 256<<10)
	cr := &countingReader{r: bufio.NewReaderSize(r, 256<<10), w: bw}
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(cr, head); err != nil || string(head) != magic {
		return fmt.Errorf("block map: not a gbc block map (bad header)")
	}
	var files uint64
	for {
		at := cr.n
		n, err := binary.ReadUvarint(cr)
		if err != nil {
			return truncated(err)
		}
		if n == 0 {
			want, err := binary.ReadUvarint(cr)
			if err != nil {
				return truncated(err)
			}
			if want != files {
				return fmt.Errorf("block map: %d file records, the end record says %d", files, want)
			}
			break
		}
		if n > 4096 {
			return fmt.Errorf("block map: a path of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(cr, p); err != nil {
			return truncated(err)
		}
		if _, err := binary.ReadVarint(cr); err != nil {
			return truncated(err)
		}
		if _, err := binary.ReadVarint(cr); err != nil {
			return truncated(err)
		}
		k, err := binary.ReadUvarint(cr)
		if err != nil {
			return truncated(err)
		}
		if k > maxBlocks {
			return fmt.Errorf("block map: %s has %d blocks, more than a segment holds", p, k)
		}
		if _, err := io.CopyN(io.Discard, cr, int64(8*k)); err != nil {
			return truncated(err)
		}
		ix.offset[pathKey(string(p))] = at
		files++
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("block map spool: %w", err)
	}
	return nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("block map: truncated: %w", err)
}

func pathKey(p string) uint64 { return xxh3.HashString(p) }

// Len is the number of files in the map.
func (ix *Index) Len() int { return len(ix.offset) }

// Lookup returns the file's record, or nil when the map has none. Two
// paths whose 64-bit hashes collide read as "no record" for the one not
// indexed: its file is then stored whole, the safe side.
func (ix *Index) Lookup(path string) (*Entry, error) {
	at, ok := ix.offset[pathKey(path)]
	if !ok {
		return nil, nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(ix.f, at, 1<<40), 64<<10)
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, truncated(err)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return nil, truncated(err)
	}
	if string(p) != path {
		return nil, nil
	}
	e := &Entry{Path: path}
	if e.Size, err = binary.ReadVarint(r); err != nil {
		return nil, truncated(err)
	}
	mt, err := binary.ReadVarint(r)
	if err != nil {
		return nil, truncated(err)
	}
	e.MTime = time.Unix(0, mt)
	k, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, truncated(err)
	}
	raw := make([]byte, 8*k)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, truncated(err)
	}
	e.Hashes = make([]uint64, k)
	for i := range e.Hashes {
		e.Hashes[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return e, nil
}

// Close releases the spool.
func (ix *Index) Close() error { return ix.f.Close() }
