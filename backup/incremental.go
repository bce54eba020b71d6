package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/blockmap"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/wal"
)

// Block-level incremental backups.
//
// Every backup of the local and stream methods stores a block map (see
// package blockmap): the hash of every block of every relation file as a
// restore of the backup writes it. An incremental (or differential)
// backup loads its parent's map, reads each relation file, and stores
// only the blocks whose hash differs, as an INCREMENTAL.<name> file in
// PostgreSQL 17's format (pg.IncrementalHeader), so that one restore path
// combines gbc's incrementals and the server's native ones. Other files
// are stored whole, and a file removed since the parent is absent from
// the new backup's manifest, which is the list of files a restore writes.

// incrThreshold: a relation file with more than this fraction of its
// blocks changed is stored whole, as PostgreSQL 17 does (90%): the header
// and the combining would cost more than the few blocks saved.
const incrThreshold = 0.9

// ErrNoParent is wrapped by refusals to take an incremental backup for
// want of a usable parent.
var ErrNoParent = fmt.Errorf("%w: no usable parent backup", ErrRefused)

// parentBackup is the backup an incremental one holds the changes since,
// with its block map loaded.
type parentBackup struct {
	rec *catalog.Backup
	ix  *blockmap.Index
}

func (p *parentBackup) close() {
	if p != nil && p.ix != nil {
		p.ix.Close()
	}
}

// chooseParent finds the parent of an incremental or differential backup
// of the server rec describes (its system identifier, version and
// timeline are known): --parent, or for incr the newest DONE backup of the
// same system on this timeline's history, for diff the newest such full.
func (r *run) chooseParent(ctx context.Context, rec *catalog.Backup) (*catalog.Backup, error) {
	all, err := catalog.List(ctx, r.o.Store, r.layout)
	if err != nil {
		return nil, err
	}
	var hist *wal.TimelineHistory
	suits := func(b *catalog.Backup) error {
		switch {
		case b.Status != catalog.StatusDone:
			return fmt.Errorf("it is %s, not DONE", b.Status)
		case b.SystemIdentifier != rec.SystemIdentifier:
			return fmt.Errorf("it is of another system (identifier %s, the server's is %s)", b.SystemIdentifier, rec.SystemIdentifier)
		case b.PGVersion/10000 != rec.PGVersion/10000:
			return fmt.Errorf("it is of PostgreSQL %d, the server runs %d", b.PGVersion/10000, rec.PGVersion/10000)
		case b.Method == MethodSnapshot:
			return errors.New("it is a snapshot backup, which has no block map")
		case r.native && b.ManifestKey == "":
			return errors.New("it has no backup_manifest, which PostgreSQL's incremental backup starts from")
		case !r.native && b.BlockMap == nil:
			return errors.New("it has no block map (a PostgreSQL 17 native incremental backup, or one taken by a gbc release before incremental backups)")
		case r.o.Type == catalog.TypeDiff && b.Kind() != catalog.TypeFull:
			return fmt.Errorf("it is %s, and a differential backup's parent is a full backup", b.Kind())
		}
		if b.Timeline != rec.Timeline {
			if hist == nil {
				h, err := r.history(ctx, rec.Timeline)
				if err != nil {
					return err
				}
				hist = &h
			}
			end, err := pg.ParseLSN(b.EndLSN)
			if err != nil {
				return fmt.Errorf("its end LSN: %w", err)
			}
			if hist.TimelineOf(uint64(end)) != b.Timeline {
				return fmt.Errorf("it is on timeline %d, which timeline %d's history does not pass through at its end %s", b.Timeline, rec.Timeline, b.EndLSN)
			}
		}
		return nil
	}
	if r.o.Parent != "" {
		var b *catalog.Backup
		for _, x := range all {
			if x.ID == r.o.Parent || x.Name == r.o.Parent {
				b = x
			}
		}
		if b == nil {
			return nil, fmt.Errorf("%w: --parent %s: server %s has no such backup; see gbc-backup-list", ErrNoParent, r.o.Parent, r.o.Server)
		}
		if err := suits(b); err != nil {
			return nil, fmt.Errorf("%w: --parent %s cannot be the parent: %v", ErrNoParent, r.o.Parent, err)
		}
		return b, nil
	}
	var why []string
	for i := len(all) - 1; i >= 0; i-- { // newest first
		b := all[i]
		if b.Status != catalog.StatusDone {
			continue
		}
		err := suits(b)
		if err == nil {
			return b, nil
		}
		if len(why) < 3 {
			why = append(why, fmt.Sprintf("%s: %v", b.ID, err))
		}
	}
	want := "DONE backup"
	if r.o.Type == catalog.TypeDiff {
		want = "DONE full backup"
	}
	msg := fmt.Sprintf("%s: server %s has no %s of this system (%s) to base a --type %s backup on; take a --type full backup first",
		"no usable parent backup", r.o.Server, want, rec.SystemIdentifier, r.o.Type)
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	return nil, fmt.Errorf("%w: %s", ErrRefused, msg)
}

// history reads timeline tli's history file from the store.
func (r *run) history(ctx context.Context, tli uint32) (wal.TimelineHistory, error) {
	dir, err := os.MkdirTemp("", "gbc-history-*")
	if err != nil {
		return wal.TimelineHistory{}, err
	}
	defer os.RemoveAll(dir)
	name := wal.Name{Kind: wal.History, TLI: tli}
	dest := path.Join(dir, name.String())
	open := func(context.Context) (cloud.Store, error) { return r.o.Store, nil }
	if _, err := wal.Restore(ctx, open, r.layout, name, dest, wal.RestoreOptions{}); err != nil {
		return wal.TimelineHistory{}, fmt.Errorf("history of timeline %d, to check the parent's timeline: %w", tli, err)
	}
	f, err := os.Open(dest)
	if err != nil {
		return wal.TimelineHistory{}, err
	}
	defer f.Close()
	return wal.ParseHistory(tli, f)
}

// loadParent downloads and indexes the parent's block map, verifying the
// stored bytes' checksum and size as a restore verifies a part.
func (r *run) loadParent(ctx context.Context, b *catalog.Backup) (*parentBackup, error) {
	codec, err := compress.Lookup(b.Compression)
	if err != nil {
		return nil, fmt.Errorf("parent backup %s: %w", b.ID, err)
	}
	f, err := fetchVerified(ctx, r.o.Store, b.BlockMap)
	if err != nil {
		return nil, fmt.Errorf("parent backup %s: block map: %w", b.ID, err)
	}
	defer f.Close()
	dr, err := codec.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("parent backup %s: block map: %w", b.ID, err)
	}
	defer dr.Close()
	ix, err := blockmap.Load(dr, "")
	if err != nil {
		return nil, fmt.Errorf("parent backup %s: %s: %w", b.ID, b.BlockMap.Key, err)
	}
	return &parentBackup{rec: b, ix: ix}, nil
}

// relationPath tells whether a manifest path is a relation file that a
// block map covers: "<relfilenode>[_<fork>][.<segment>]" in global/, a
// database directory of base/, or one of a tablespace's.
func relationPath(p string) bool {
	dir, base := path.Split(p)
	if _, _, ok := parseRelationFile(base); !ok {
		return false
	}
	dir = strings.TrimSuffix(dir, "/")
	if dir == "global" {
		return true
	}
	parts := strings.Split(dir, "/")
	switch {
	case len(parts) == 2 && parts[0] == "base":
		return allDigits(parts[1])
	case len(parts) == 4 && parts[0] == "pg_tblspc":
		return allDigits(parts[1]) && strings.HasPrefix(parts[2], "PG_") && allDigits(parts[3])
	}
	return false
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if !isDigit(c) {
			return false
		}
	}
	return s != ""
}

// blockSender stores relation files, whole or as their changed blocks, and
// writes every relation file's entry into the new backup's block map.
type blockSender struct {
	parent *parentBackup // nil for a full backup
	bmap   *blockmap.Writer
	// reused, skipped and stored count files and blocks for the summary.
	reused, incremental, whole int64
	blocksStored               int64
}

// sendRelation copies one relation file from f (already opened, of the
// given info) into a. name is the archive name, manName the manifest's.
func (c *copier) sendRelation(a *archiveWriter, f *os.File, h *tar.Header, manName string, mtime time.Time) error {
	bs := c.blocks
	size := h.Size
	nblocks := size / pg.BlockSize
	var pe *blockmap.Entry
	if bs.parent != nil {
		var err error
		if pe, err = bs.parent.ix.Lookup(manName); err != nil {
			return err
		}
	}
	if pe == nil {
		return c.sendWhole(a, f, h, manName, mtime)
	}
	var hashes []uint64
	var changed []uint32
	if pe.Unchanged(size, mtime, bs.parent.rec.BeginTime) {
		hashes = pe.Hashes
		bs.reused++
	} else {
		// First pass: hash every block, and compare.
		hashes = make([]uint64, nblocks)
		var off int64
		for off < size {
			n, err := io.ReadFull(f, c.buf[:min(int64(len(c.buf)), size-off)])
			n -= n % pg.BlockSize
			for i := 0; i < n; i += pg.BlockSize {
				b := (off + int64(i)) / pg.BlockSize
				hashes[b] = blockmap.Hash(c.buf[i : i+pg.BlockSize])
				if b >= int64(len(pe.Hashes)) || hashes[b] != pe.Hashes[b] {
					changed = append(changed, uint32(b))
				}
			}
			off += int64(n)
			if err != nil {
				break // shrank meanwhile: the rest counts as changed, and is padded
			}
		}
		for b := off / pg.BlockSize; b < nblocks; b++ {
			changed = append(changed, uint32(b))
		}
		if float64(len(changed)) > incrThreshold*float64(nblocks) {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("seek %s: %w", f.Name(), err)
			}
			return c.sendWhole(a, f, h, manName, mtime)
		}
	}
	// Second pass: the changed blocks, as an INCREMENTAL file whose
	// older blocks come from the parent.
	ih := pg.IncrementalHeader{Blocks: changed, TruncationBlockLength: uint32(nblocks)}
	name := pg.IncrementalName(h.Name)
	ih2 := *h
	ih2.Name, ih2.Size = name, ih.FileSize()
	if err := a.WriteHeader(&ih2); err != nil {
		return err
	}
	head := ih.Encode()
	crc := crc32.Update(0, castagnoli, head)
	if _, err := a.Write(head); err != nil {
		return err
	}
	block := c.buf[:pg.BlockSize]
	for _, b := range changed {
		n, err := f.ReadAt(block, int64(b)*pg.BlockSize)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		clear(block[n:]) // truncated meanwhile: zeros, as a whole copy pads
		// The map holds what a restore writes: the bytes stored.
		hashes[b] = blockmap.Hash(block)
		crc = crc32.Update(crc, castagnoli, block)
		if _, err := a.Write(block); err != nil {
			return err
		}
	}
	c.man.AddFile(pg.IncrementalName(manName), ih2.Size, mtime, crc)
	bs.incremental++
	bs.blocksStored += int64(len(changed))
	return bs.bmap.Add(&blockmap.Entry{Path: manName, Size: size, MTime: mtime, Hashes: hashes})
}

// fetchVerified downloads a small object into an unlinked temporary file
// and checks its size and SHA-256 before anything reads it.
func fetchVerified(ctx context.Context, s cloud.Store, o *catalog.Object) (*os.File, error) {
	rc, err := s.Get(ctx, o.Key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := tempFile("gbc-fetch-*")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), rc)
	if err == nil && n != o.StoredSize {
		err = fmt.Errorf("%s is %d bytes, the record says %d", o.Key, n, o.StoredSize)
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != o.SHA256 {
		err = fmt.Errorf("%s: SHA-256 mismatch: the stored object is damaged", o.Key)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sendWhole copies a file whole (see sendFile), and for a relation file
// of a backup that keeps a block map, hashes its blocks into the map.
func (c *copier) sendWhole(a *archiveWriter, f *os.File, h *tar.Header, manName string, mtime time.Time) error {
	size := h.Size
	if err := a.WriteHeader(h); err != nil {
		return err
	}
	var hashes []uint64
	if c.blocks != nil && size%pg.BlockSize == 0 && relationPath(manName) {
		hashes = make([]uint64, 0, size/pg.BlockSize)
	}
	var crc uint32
	var done int64
	eof := false
	for done < size {
		want := min(int64(len(c.buf)), size-done)
		n := 0
		if !eof {
			var rerr error
			n, rerr = io.ReadFull(f, c.buf[:want])
			if rerr != nil && !errors.Is(rerr, io.ErrUnexpectedEOF) && !errors.Is(rerr, io.EOF) {
				return fmt.Errorf("read %s: %w", f.Name(), rerr)
			}
			eof = int64(n) < want
		}
		// Truncated while read: pad to the size in the header with
		// zeros, as BASE_BACKUP does; WAL replay rewrites what changed.
		clear(c.buf[n:want])
		chunk := c.buf[:want]
		crc = crc32.Update(crc, castagnoli, chunk)
		if hashes != nil {
			for i := int64(0); i+pg.BlockSize <= want; i += pg.BlockSize {
				hashes = append(hashes, blockmap.Hash(chunk[i:i+pg.BlockSize]))
			}
		}
		if _, err := a.Write(chunk); err != nil {
			return err
		}
		done += want
	}
	c.man.AddFile(manName, size, mtime, crc)
	if hashes == nil {
		return nil
	}
	c.blocks.whole++
	return c.blocks.bmap.Add(&blockmap.Entry{Path: manName, Size: size, MTime: mtime, Hashes: hashes})
}

// prepareBlocks chooses and loads the parent of an incremental backup, and
// starts the block map of a backup that keeps one. Refusals come before
// the STARTED record, so that they leave nothing behind.
func (r *run) prepareBlocks(ctx context.Context, rec *catalog.Backup, info sourceInfo) error {
	incremental := r.o.Type == catalog.TypeIncr || r.o.Type == catalog.TypeDiff
	if !info.blocks {
		if incremental {
			return fmt.Errorf("%w: a --method %s backup cannot be incremental: take incremental backups with --method local or --method stream", ErrRefused, info.method)
		}
		return nil
	}
	// PostgreSQL 17 and later send only the changed blocks themselves
	// (BASE_BACKUP ... INCREMENTAL, from WAL summaries): gbc uploads the
	// parent's backup_manifest and stores what the server sends.
	r.native = incremental && info.method == MethodStream && rec.PGVersion >= 170000
	if r.native && info.checkNative != nil {
		if err := info.checkNative(ctx); err != nil {
			return err
		}
	}
	if incremental {
		p, err := r.chooseParent(ctx, rec)
		if err != nil {
			return err
		}
		if r.native {
			r.parent = &parentBackup{rec: p}
		} else if r.parent, err = r.loadParent(ctx, p); err != nil {
			return err
		}
		rec.Type, rec.ParentID = r.o.Type, p.ID
		r.o.logf("backup type %s, parent %s (%s, %s)", r.o.Type, p.ID, p.Kind(), p.EndTime.UTC().Format(time.RFC3339))
	}
	if r.native {
		// A native incremental holds no block of the unchanged ones, so
		// it can hold no block map either: a later gbc block-level
		// incremental takes a full or gbc incremental as its parent.
		return nil
	}
	f, err := tempFile("gbc-blockmap-*")
	if err != nil {
		return err
	}
	r.bmapFile = f
	r.blocks = &blockSender{parent: r.parent, bmap: blockmap.NewWriter(f)}
	return nil
}

func (r *run) closeBlocks() {
	r.parent.close()
	if r.bmapFile != nil {
		r.bmapFile.Close()
	}
}

// storeBlockMap stores the block map, once every part is stored.
func (r *run) storeBlockMap(ctx context.Context) (*catalog.Object, error) {
	if r.blocks == nil {
		return nil, nil
	}
	if err := r.blocks.bmap.Close(); err != nil {
		return nil, err
	}
	size, err := r.bmapFile.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("block map spool: %w", err)
	}
	if _, err := r.bmapFile.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("block map spool: %w", err)
	}
	key := r.layout.BlockMapKey(r.rec.ID, r.o.Codec.Ext())
	stored, sum, err := storeSpooled(ctx, r.o.Store, key, r.bmapFile, r.o.Codec, r.o.Level)
	if err != nil {
		return nil, fmt.Errorf("block map: %w", err)
	}
	if bs := r.blocks; bs.parent != nil {
		r.o.logf("relation files: %d unchanged and not read, %d stored as %d changed blocks, %d stored whole", bs.reused, bs.incremental-bs.reused, bs.blocksStored, bs.whole)
	}
	return &catalog.Object{Key: key, Size: size, StoredSize: stored, SHA256: sum}, nil
}

// openParentManifest opens the parent's stored backup_manifest,
// verified and decompressed, for UPLOAD_MANIFEST.
func (r *run) openParentManifest(ctx context.Context) (io.ReadCloser, error) {
	b := r.parent.rec
	f, err := fetchVerified(ctx, r.o.Store, &catalog.Object{Key: b.ManifestKey, StoredSize: b.ManifestStoredSize, SHA256: b.ManifestSHA256})
	if err != nil {
		return nil, fmt.Errorf("parent backup %s: backup_manifest: %w", b.ID, err)
	}
	_, codec := compress.SplitKey(b.ManifestKey)
	dr, err := codec.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("parent backup %s: backup_manifest: %w", b.ID, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{dr, closers{dr, f}}, nil
}

type closers []io.Closer

func (c closers) Close() error {
	var err error
	for _, x := range c {
		if e := x.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}
