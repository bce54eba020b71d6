package restore

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/gbc-backup/gbc/blockmap"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/pg"
)

// Restoring a chain of incremental backups.
//
// An incremental backup (gbc's block-level one, or PostgreSQL 17's native
// one) stores a changed relation file as INCREMENTAL.<name>: some blocks,
// and the length below which the other blocks come from older backups of
// the chain (pg.IncrementalHeader). The chain is restored in one pass over
// its backups, newest first, each block written once:
//
//   - The newest backup is extracted as a full one is, except that an
//     INCREMENTAL file writes its blocks into the relation file at their
//     offsets, and leaves the file pending, with a bitmap of the blocks
//     written and the limit below which older backups may contribute.
//   - Each older backup, in turn, is streamed for the pending files only:
//     an INCREMENTAL entry adds the blocks not yet written below the
//     limit (and lowers the limit to its own truncation length), a whole
//     file fills every block still missing below the limit and completes
//     the file. Everything else in the older backups is skipped: a file
//     that is not pending was either whole in a newer backup or removed
//     since, and must not come back.
//   - Once no file is pending, the older backups are not read at all.
//
// Parts of one backup are restored in parallel (a file is in one part of
// a backup), and the backups one after the other, so that a newer block
// always wins. Memory is one bitmap per pending relation file (16 KiB for
// a 1 GiB segment).
//
// Every reconstructed file is then read back once, to write its size and
// checksum into the restored backup_manifest, which must describe the
// files restored, not the INCREMENTAL files stored, for pg_verifybackup.

// Chain returns the backups that restoring b needs, newest first: b, its
// parent, and so on down to a full backup. It refuses a chain with a
// missing member or one that is not DONE.
func Chain(b *catalog.Backup, all []*catalog.Backup) ([]*catalog.Backup, error) {
	byID := make(map[string]*catalog.Backup, len(all))
	for _, x := range all {
		byID[x.ID] = x
	}
	chain := []*catalog.Backup{b}
	for cur := b; cur.Kind() != catalog.TypeFull; {
		if cur.ParentID == "" {
			return nil, fmt.Errorf("backup %s is %s but names no parent: its record is damaged", cur.ID, cur.Kind())
		}
		p, ok := byID[cur.ParentID]
		if !ok {
			return nil, fmt.Errorf("%w: backup %s needs its parent %s, which is not in the store: the chain of %s is broken", ErrChainIncomplete, cur.ID, cur.ParentID, b.ID)
		}
		if p.Status != catalog.StatusDone {
			return nil, fmt.Errorf("%w: backup %s needs its parent %s, which is %s", ErrChainIncomplete, cur.ID, p.ID, p.Status)
		}
		if len(chain) > 10000 {
			return nil, fmt.Errorf("backup %s: the chain of parents loops", b.ID)
		}
		chain = append(chain, p)
		cur = p
	}
	return chain, nil
}

// ErrChainIncomplete is wrapped when a backup's chain lacks a member.
var ErrChainIncomplete = errors.New("incomplete backup chain")

// pendingFile is a relation file being combined from several backups.
type pendingFile struct {
	x    *extractor
	name string // in x's tree
	// manPath is the file's manifest path (data-directory relative).
	manPath string
	written []uint64 // bitmap of the blocks written
	limit   uint32   // older backups may only supply blocks below it
	length  uint32   // the reconstructed file's length in blocks
	mode    fs.FileMode
	mtime   time.Time
	done    bool // a whole file completed it

	// A delta restore's file that existed (see delta.go): stale tells
	// that blocks nobody writes must still be made zeros; compare, that
	// each block is compared with the local one before it is written
	// (no block map said which differ); wrote, that a byte was written.
	stale, compare, wrote bool
}

func (p *pendingFile) has(b uint32) bool { return p.written[b/64]&(1<<(b%64)) != 0 }
func (p *pendingFile) set(b uint32)      { p.written[b/64] |= 1 << (b % 64) }

// combiner holds the pending files of a chain restore.
type combiner struct {
	mu      sync.Mutex
	pending map[string]*pendingFile // by manifest path
	// level is 0 while the newest backup is restored.
	level int

	// delta: the files exist already (see delta.go); blocks, when the
	// newest backup has one, is its block map.
	delta  bool
	blocks *blockmap.Index

	// label, when set, is the backup_label written in place of the
	// incremental one (see fixLabel).
	label []byte
}

func newCombiner() *combiner { return &combiner{pending: map[string]*pendingFile{}} }

func (c *combiner) lookup(manPath string) *pendingFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[manPath]
}

// open opens the pending file for writing, creating it.
func (p *pendingFile) open() (int, error) {
	dir, err := p.x.dir(path.Dir(p.name))
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat(dir, path.Base(p.name), unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: p.name, Err: err}
	}
	return fd, nil
}

// writeBlocks writes the blocks numbered nums, read in order from r, that
// pass keep; it reads every block of nums from r either way.
func (p *pendingFile) writeBlocks(r io.Reader, nums func(yield func(uint32) bool), keep func(uint32) bool, buf []byte) (int64, error) {
	fd, err := p.open()
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	block := buf[:pg.BlockSize]
	var local []byte
	if p.compare {
		local = make([]byte, pg.BlockSize)
	}
	var n int64
	var rerr error
	nums(func(b uint32) bool {
		if _, err := io.ReadFull(r, block); err != nil {
			rerr = fmt.Errorf("read block %d of %s: %w", b, p.name, err)
			return false
		}
		if !keep(b) {
			return true
		}
		if p.compare {
			if m, err := preadFull(fd, local, int64(b)*pg.BlockSize); err == nil && m == len(local) && bytes.Equal(local, block) {
				p.set(b)
				return true
			}
		}
		p.wrote = true
		if _, err := unix.Pwrite(fd, block, int64(b)*pg.BlockSize); err != nil {
			rerr = &fs.PathError{Op: "write", Path: p.name, Err: err}
			return false
		}
		p.set(b)
		n++
		return true
	})
	return n, rerr
}

// incremental handles an INCREMENTAL entry of the backup at c.level. It
// returns the bytes of blocks written.
func (c *combiner) incremental(x *extractor, name, manPath string, h *tar.Header, r io.Reader, buf []byte) (int64, error) {
	ih, err := pg.ReadIncrementalHeader(r)
	if err != nil {
		return 0, err
	}
	if ih.FileSize() != h.Size {
		return 0, fmt.Errorf("incremental file of %d bytes, its header says %d", h.Size, ih.FileSize())
	}
	var p *pendingFile
	if c.level == 0 {
		length := ih.Length()
		p = &pendingFile{x: x, name: name, manPath: manPath, written: make([]uint64, (length+63)/64+1),
			limit: ih.TruncationBlockLength, length: length, mode: fs.FileMode(h.Mode) & fs.ModePerm, mtime: h.ModTime}
		if c.delta {
			if err := c.prepareDelta(p); err != nil {
				return 0, err
			}
		}
		// An entry seen again is a part restored again after its
		// download broke: the new one replaces it.
		c.mu.Lock()
		c.pending[manPath] = p
		c.mu.Unlock()
	} else if p = c.lookup(manPath); p == nil || p.done {
		return 0, nil // superseded by a newer backup, or removed since
	}
	limit := p.limit
	if c.level == 0 {
		limit = p.length
	}
	nums := func(yield func(uint32) bool) {
		for _, b := range ih.Blocks {
			if !yield(b) {
				return
			}
		}
	}
	n, err := p.writeBlocks(r, nums, func(b uint32) bool { return b < limit && !p.has(b) }, buf)
	if c.level > 0 {
		p.limit = min(p.limit, ih.TruncationBlockLength)
	}
	return n * pg.BlockSize, err
}

// whole handles a whole relation file of an older backup: it fills the
// blocks still missing below the limit, and completes the file. It
// returns false when the file is not pending (the caller skips it).
func (c *combiner) whole(manPath string, h *tar.Header, r io.Reader, buf []byte) (bool, int64, error) {
	p := c.lookup(manPath)
	if p == nil || p.done {
		return false, 0, nil
	}
	blocks := uint32(h.Size / pg.BlockSize)
	nums := func(yield func(uint32) bool) {
		for b := uint32(0); b < blocks; b++ {
			if !yield(b) {
				return
			}
		}
	}
	n, err := p.writeBlocks(r, nums, func(b uint32) bool { return b < p.limit && !p.has(b) }, buf)
	p.done = true
	return true, n * pg.BlockSize, err
}

// remaining tells whether any file still waits for older backups.
func (c *combiner) remaining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pending {
		if !p.done && p.limit > 0 && !p.complete() {
			return true
		}
	}
	return false
}

// complete tells whether every block below the limit is written.
func (p *pendingFile) complete() bool {
	for b := uint32(0); b < p.limit; b++ {
		if !p.has(b) {
			return false
		}
	}
	return true
}

// finish sets each reconstructed file's length, mode and time. Blocks no
// backup of the chain holds (beyond the end of an older file) stay zeros,
// as pg_combinebackup writes them.
func (c *combiner) finish() error {
	for _, p := range c.pending {
		fd, err := p.open()
		if err != nil {
			return err
		}
		if p.stale {
			err = p.finishDelta(fd)
		} else {
			err = unix.Ftruncate(fd, int64(p.length)*pg.BlockSize)
			if err == nil {
				err = finishFile(fd, p.mode, p.mtime, int64(p.length)*pg.BlockSize)
			}
		}
		unix.Close(fd)
		if err != nil {
			return &fs.PathError{Op: "finish", Path: p.name, Err: err}
		}
	}
	return nil
}

// restoreOlder streams the parts of the older backups of the chain for
// the pending files, newest first.
func (r *run) restoreOlder(ctx context.Context) error {
	for i, b := range r.o.Chain[1:] {
		if !r.comb.remaining() {
			return nil
		}
		r.comb.level = i + 1
		parts := append([]catalog.Part(nil), b.Parts...)
		sort.SliceStable(parts, func(i, j int) bool { return parts[i].StoredSize > parts[j].StoredSize })
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(r.o.Jobs, 1))
		for _, p := range parts {
			g.Go(func() error {
				err := r.stream(gctx, p.Key, p.SHA256, p.StoredSize, func(tarStream io.Reader) error {
					if err := r.combineOlder(tarStream, p.Tablespace, make([]byte, pg.BlockSize)); err != nil {
						return err
					}
					_, err := io.CopyBuffer(io.Discard, tarStream, make([]byte, 64<<10))
					return err
				})
				if err != nil {
					return fmt.Errorf("backup %s (parent in the chain), part %s: %w", b.ID, p.Key, err)
				}
				r.comb.mu.Lock()
				r.res.StoredBytes += p.StoredSize
				r.comb.mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// combineOlder reads one part of an older backup, taking from it only the
// blocks of pending files.
func (r *run) combineOlder(tarStream io.Reader, tablespace string, buf []byte) error {
	x := r.roots[tablespace]
	tr := tar.NewReader(tarStream)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		if rel, ok := pg.FromIncrementalName(name); ok {
			if _, err := r.comb.incremental(x, rel, manifestPath(tablespace, rel), h, tr, buf); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			continue
		}
		if _, _, err := r.comb.whole(manifestPath(tablespace, name), h, tr, buf); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// manifestPath is the backup_manifest path of an archive entry.
func manifestPath(tablespace, name string) string {
	if tablespace == "" {
		return name
	}
	return "pg_tblspc/" + tablespace + "/" + name
}

// rewriteIncrementalEntry renders a manifest line of an INCREMENTAL file
// as the entry of the file reconstructed from it.
func (r *run) rewriteIncrementalEntry(line []byte) ([]byte, error) {
	if !bytes.HasPrefix(line, []byte(`{ "Path": `)) || !bytes.Contains(line, []byte(pg.IncrementalPrefix)) {
		return line, nil
	}
	body := bytes.TrimRight(line, "\r\n")
	comma := bytes.HasSuffix(body, []byte(","))
	var e manifestEntry
	if err := json.Unmarshal(bytes.TrimSuffix(body, []byte(",")), &e); err != nil {
		return nil, fmt.Errorf("backup_manifest entry: %w", err)
	}
	rel, ok := pg.FromIncrementalName(e.Path)
	if !ok {
		return line, nil
	}
	p := r.comb.pending[rel]
	if p == nil {
		return nil, fmt.Errorf("backup_manifest lists %s, which the backup's parts do not hold", e.Path)
	}
	size, sum, err := p.checksum(e.Algorithm)
	if err != nil {
		return nil, err
	}
	quoted, _ := json.Marshal(rel)
	var b strings.Builder
	fmt.Fprintf(&b, `{ "Path": %s, "Size": %d, "Last-Modified": %q`, quoted, size, e.LastModified)
	if e.Algorithm != "" && !strings.EqualFold(e.Algorithm, "NONE") {
		fmt.Fprintf(&b, `, "Checksum-Algorithm": %q, "Checksum": %q`, e.Algorithm, sum)
	}
	b.WriteString(" }")
	if comma {
		b.WriteString(",")
	}
	b.WriteString("\n")
	return []byte(b.String()), nil
}

// checksum reads the reconstructed file back for its manifest entry.
func (p *pendingFile) checksum(algorithm string) (int64, string, error) {
	var h hash.Hash
	crc := false
	switch strings.ToUpper(algorithm) {
	case "", "NONE":
		return int64(p.length) * pg.BlockSize, "", nil
	case "CRC32C":
		h, crc = crc32.New(crc32.MakeTable(crc32.Castagnoli)), true
	case "SHA224":
		h = sha256.New224()
	case "SHA256":
		h = sha256.New()
	case "SHA384":
		h = sha512.New384()
	case "SHA512":
		h = sha512.New()
	default:
		return 0, "", fmt.Errorf("backup_manifest: unknown checksum algorithm %q", algorithm)
	}
	f, err := p.x.root.Open(p.name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	n, err := io.CopyBuffer(h, bufio.NewReaderSize(f, 1<<20), make([]byte, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("read back %s: %w", p.name, err)
	}
	sum := h.Sum(nil)
	if crc {
		// PostgreSQL prints the 32-bit value's little-endian bytes.
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], binary.BigEndian.Uint32(sum))
		sum = b[:]
	}
	return n, hex.EncodeToString(sum), nil
}

// checkChain refuses an incremental backup without its chain, or a chain
// that does not lead from it to a full backup.
func checkChain(o Options) error {
	b := o.Backup
	if b.Kind() == catalog.TypeFull {
		return nil
	}
	if len(o.Chain) < 2 || o.Chain[0].ID != b.ID || o.Chain[len(o.Chain)-1].Kind() != catalog.TypeFull {
		return fmt.Errorf("%w: backup %s is %s: restoring it needs its chain of parents down to a full backup", ErrChainIncomplete, b.ID, b.Kind())
	}
	for i, x := range o.Chain[:len(o.Chain)-1] {
		if x.ParentID != o.Chain[i+1].ID {
			return fmt.Errorf("%w: backup %s's parent is %s, not %s", ErrChainIncomplete, x.ID, x.ParentID, o.Chain[i+1].ID)
		}
	}
	return nil
}

// loadChain reads the records of b's chain, newest first (nil for a full
// backup), and checks it (see Chain).
func loadChain(ctx context.Context, s cloud.Store, l catalog.Layout, b *catalog.Backup) ([]*catalog.Backup, error) {
	if b.Kind() == catalog.TypeFull {
		return nil, nil
	}
	all := []*catalog.Backup{b}
	for cur := b; cur.Kind() != catalog.TypeFull && cur.ParentID != ""; {
		p, err := catalog.Load(ctx, s, l, cur.ParentID)
		if errors.Is(err, cloud.ErrNotFound) {
			break // Chain says which
		}
		if err != nil {
			return nil, fmt.Errorf("backup %s's parent %s: %w", cur.ID, cur.ParentID, err)
		}
		all = append(all, p)
		if len(all) > 10000 {
			break
		}
		cur = p
	}
	return Chain(b, all)
}

// labelFile is the backup_label's name in the data directory.
const labelFile = "backup_label"

// fixLabel removes the INCREMENTAL FROM lines of a PostgreSQL 17 native
// incremental backup's backup_label, as pg_combinebackup does: the server
// refuses to start from a label that has them ("this is an incremental
// backup, not a data directory"), and once combined the directory is a
// whole one. gbc's own incrementals carry a plain label.
func (r *run) fixLabel() error {
	old, err := r.data.root.ReadFile(labelFile)
	if err != nil {
		return fmt.Errorf("read %s: %w", labelFile, err)
	}
	var kept []string
	changed := false
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if strings.HasPrefix(line, "INCREMENTAL FROM ") {
			changed = true
			continue
		}
		kept = append(kept, line)
	}
	if !changed {
		return nil
	}
	label := []byte(strings.Join(kept, ""))
	if err := r.data.root.WriteFile(labelFile, label, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", labelFile, err)
	}
	r.comb.label = label
	return nil
}
