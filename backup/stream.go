package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/blockmap"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/pg"
)

// streamSource takes the backup over the replication protocol
// (BASE_BACKUP): the server reads its files and sends one tar stream per
// tablespace, which gbc re-cuts into parts through the same pipeline as a
// local backup, and its own backup_manifest, which gbc stores as it is.
type streamSource struct {
	r          *run
	rc         *pg.ReplConn
	sys        pg.SystemInfo
	segSize    int64
	inRecovery bool
	bs         *pg.BaseBackupStream

	label, spcMap bytes.Buffer
	files         int64
	tsBytes       map[string]int64
	man           *storedManifest
	gotBase       bool
	// own, for an incremental backup, is the backup_manifest gbc writes
	// in place of the server's, which lists whole files where the parts
	// hold INCREMENTAL ones.
	own *manifestWriter
}

// openStream connects for replication and checks that the server archives.
func (r *run) openStream(ctx context.Context) (*streamSource, sourceInfo, error) {
	rc, err := pg.ConnectReplication(ctx, r.o.ConnString, appName)
	if err != nil {
		return nil, sourceInfo{}, err
	}
	s := &streamSource{r: r, rc: rc, tsBytes: map[string]int64{}}
	if err := s.inspect(ctx); err != nil {
		rc.Close(context.WithoutCancel(ctx))
		return nil, sourceInfo{}, err
	}
	return s, sourceInfo{method: MethodStream, what: "method stream", parts: true, blocks: true, segSize: s.segSize,
		checkNative: func(ctx context.Context) error {
			if err := rc.CheckIncrementalSupport(ctx); err != nil {
				return fmt.Errorf("%w: %w (or take gbc's block-level incremental backup with --method local)", ErrRefused, err)
			}
			return nil
		}}, nil
}

func (s *streamSource) inspect(ctx context.Context) error {
	var err error
	if s.sys, err = s.rc.IdentifySystem(ctx); err != nil {
		return err
	}
	if s.segSize, err = s.rc.WALSegmentSize(ctx); err != nil {
		return err
	}
	if v, err := s.rc.Show(ctx, "in_hot_standby"); err == nil {
		s.inRecovery = v == "on"
	}
	mode, err := s.rc.Show(ctx, "archive_mode")
	if err != nil {
		return err
	}
	// archive_command may be hidden from a replication-only role: then
	// only archive_mode is checked.
	command, cerr := s.rc.Show(ctx, "archive_command")
	library, lerr := s.rc.Show(ctx, "archive_library")
	if cerr != nil || lerr != nil {
		command, library = "(unknown)", ""
	}
	return s.r.checkWALSource(ctx, mode, command, library, s.inRecovery, s.sys.SystemIdentifier)
}

func (s *streamSource) close(ctx context.Context) { s.rc.Close(ctx) }
func (s *streamSource) cleanup(context.Context)   {}
func (s *streamSource) manifest(ctx context.Context, e *ended) (*storedManifest, error) {
	if s.own == nil {
		return s.man, nil
	}
	r := s.r
	if err := s.own.Finish(walRanges(e.endTLI, s.bs.StartLSN, e.end)); err != nil {
		return nil, err
	}
	key := r.layout.ManifestKey(r.rec.ID, r.o.Codec.Ext())
	size, sum, err := s.own.Upload(ctx, r.o.Store, key)
	if err != nil {
		return nil, err
	}
	return &storedManifest{key: key, sha256: sum, size: size}, nil
}

func (s *streamSource) describe(ctx context.Context, rec *catalog.Backup) error {
	rec.PGVersion, rec.PGVersionString = s.rc.Version(), s.rc.VersionString()
	rec.SystemIdentifier, rec.WALSegmentSize, rec.FromStandby = s.sys.SystemIdentifier, s.segSize, s.inRecovery
	// The server's WAL position now bounds the backup's start from below
	// on a primary (its checkpoint comes later); see catalog's package
	// documentation for what retention makes of it.
	setBegin(rec, s.sys.Timeline, s.sys.XLogPos, s.segSize)
	rec.DataDirectory, rec.Tablespaces = s.r.sqlDetails(ctx)
	return nil
}

// uploadManifest sends the parent's backup_manifest (UPLOAD_MANIFEST), so
// that the next BASE_BACKUP ... INCREMENTAL sends only the blocks changed
// since the parent, as the server's WAL summaries tell.
func (s *streamSource) uploadManifest(ctx context.Context) error {
	m, err := s.r.openParentManifest(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := s.rc.UploadManifest(ctx, m); err != nil {
		return fmt.Errorf("upload the backup_manifest of parent %s: %w", s.r.parent.rec.ID, err)
	}
	return nil
}

// sqlDetails reads what the replication protocol does not tell (the data
// directory, tablespace names) over a plain session, when the role may open
// one; a backup does not need them.
func (r *run) sqlDetails(ctx context.Context) (string, []catalog.Tablespace) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, r.o.ConnString, appName)
	if err != nil {
		return "", nil
	}
	defer conn.Close(ctx)
	dir, _ := conn.DataDirectory(ctx)
	ts, err := conn.Tablespaces(ctx)
	if err != nil {
		return dir, nil
	}
	var out []catalog.Tablespace
	for _, t := range ts {
		out = append(out, catalog.Tablespace{OID: strconv.FormatUint(uint64(t.OID), 10), Name: t.Name, Location: t.Location})
	}
	return dir, out
}

// maxSmallFile bounds the backup_label and tablespace_map kept from the
// stream for the record; both are a few hundred bytes.
const maxSmallFile = 1 << 20

func (s *streamSource) start(ctx context.Context, label string) (*began, error) {
	if s.r.native {
		if err := s.uploadManifest(ctx); err != nil {
			return nil, err
		}
	}
	bs, err := s.rc.BaseBackup(ctx, pg.BaseBackupOptions{
		Label: label, Fast: !s.r.o.Spread, Manifest: true, TablespaceMap: true, NoWait: !s.r.pgWaitsForArchive(),
		Incremental: s.r.native,
	})
	if err != nil {
		return nil, err
	}
	s.bs = bs
	if s.r.blocks != nil && s.r.blocks.parent != nil {
		if s.own, err = newManifestWriter(s.r.o.Codec, s.r.o.Level, s.rc.Version(), s.sys.SystemIdentifier); err != nil {
			return nil, err
		}
	}
	return &began{tli: bs.Timeline, lsn: bs.StartLSN, apply: func(b *catalog.Backup) {
		b.Tablespaces = mergeTablespaces(b.Tablespaces, bs.Tablespaces)
	}}, nil
}

func (s *streamSource) copy(ctx context.Context, p *pipeline) error {
	r, bs := s.r, s.bs
	buf := make([]byte, 1<<20)
	for {
		sec, err := bs.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if sec.Kind == pg.SectionManifest && s.own != nil {
			s.man = &storedManifest{} // received, and replaced by gbc's own
			if _, err := io.Copy(io.Discard, bs); err != nil {
				return fmt.Errorf("backup_manifest: %w", err)
			}
			continue
		}
		if sec.Kind == pg.SectionManifest {
			key := r.layout.ManifestKey(r.rec.ID, r.o.Codec.Ext())
			size, sum, err := storeSpooled(p.ctx, r.o.Store, key, bs, r.o.Codec, r.o.Level)
			if err != nil {
				return fmt.Errorf("backup_manifest: %w", err)
			}
			s.man = &storedManifest{key: key, sha256: sum, size: size}
			continue
		}
		ts, err := archiveTablespace(sec.Name)
		if err != nil {
			return err
		}
		s.gotBase = s.gotBase || ts == ""
		a := p.archive(ts)
		var small map[string]*bytes.Buffer
		if ts == "" {
			small = map[string]*bytes.Buffer{labelFile: &s.label, spcMapFile: &s.spcMap}
		}
		rt := &retarrer{a: a, buf: buf, small: small, warnf: r.o.warnf, blocks: r.blocks, man: s.own}
		if ts != "" {
			rt.manPrefix = "pg_tblspc/" + ts + "/"
		}
		if err := rt.copy(bs); err != nil {
			return fmt.Errorf("archive %s: %w", sec.Name, err)
		}
		if err := a.Close(); err != nil {
			return err
		}
		s.files += a.Files
		if ts != "" {
			s.tsBytes[ts] = a.Bytes
		}
	}
}

func (s *streamSource) stop(context.Context, *pipeline) (*ended, error) {
	end, endTLI, err := s.bs.Finish()
	if err != nil {
		return nil, err
	}
	switch {
	case !s.gotBase:
		return nil, errors.New("BASE_BACKUP sent no archive of the data directory")
	case s.man == nil:
		return nil, errors.New("BASE_BACKUP sent no backup_manifest")
	case s.label.Len() == 0:
		return nil, errors.New("BASE_BACKUP's archive has no backup_label")
	}
	return &ended{
		endTLI: endTLI, end: end,
		label: s.label.String(), spcMap: s.spcMap.String(),
		files: s.files, tablespaceBytes: s.tsBytes,
	}, nil
}

// archiveTablespace maps a BASE_BACKUP archive name to the tablespace it
// holds: "base.tar" is the data directory, "<oid>.tar" a tablespace.
func archiveTablespace(name string) (string, error) {
	if name == "base.tar" {
		return "", nil
	}
	oid, ok := strings.CutSuffix(name, ".tar")
	if _, err := strconv.ParseUint(oid, 10, 32); !ok || err != nil {
		return "", fmt.Errorf("BASE_BACKUP sent an archive named %q: expected base.tar or <oid>.tar", name)
	}
	return oid, nil
}

// mergeTablespaces completes the tablespaces known from SQL (with names)
// with the ones BASE_BACKUP announced (OID and location only).
func mergeTablespaces(known []catalog.Tablespace, sent []pg.StreamTablespace) []catalog.Tablespace {
	out := append([]catalog.Tablespace(nil), known...)
	for _, t := range sent {
		oid := strconv.FormatUint(uint64(t.OID), 10)
		found := false
		for i := range out {
			if out[i].OID == oid {
				out[i].Location = t.Location
				found = true
			}
		}
		if !found {
			out = append(out, catalog.Tablespace{OID: oid, Location: t.Location})
		}
	}
	return out
}

// retarrer copies the entries of a tar stream into an archive, which cuts
// them into parts. The named small files (backup_label, tablespace_map)
// are also kept in their buffers. With blocks, relation files are hashed
// into the block map, and with a parent stored as their changed blocks;
// with man, every file is listed in gbc's own backup_manifest.
type retarrer struct {
	a         *archiveWriter
	buf       []byte
	small     map[string]*bytes.Buffer
	warnf     func(string, ...any)
	blocks    *blockSender
	man       *manifestWriter
	manPrefix string
	// spool holds a relation file's changed blocks until the file's end,
	// when the INCREMENTAL entry's size is known; at most one segment.
	spool *os.File
}

func (rt *retarrer) copy(r io.Reader) error {
	defer func() {
		if rt.spool != nil {
			rt.spool.Close()
		}
	}()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
		default:
			rt.warnf("skipping tar entry %q of type %q", h.Name, h.Typeflag)
			continue
		}
		nh := &tar.Header{
			Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size,
			Mode: h.Mode & 0o7777, ModTime: h.ModTime, Uid: h.Uid, Gid: h.Gid,
		}
		if nh.Typeflag != tar.TypeReg {
			nh.Size = 0
		}
		if nh.Typeflag == tar.TypeDir && !strings.HasSuffix(nh.Name, "/") {
			nh.Name += "/"
		}
		manName := rt.manPrefix + nh.Name
		if nh.Typeflag == tar.TypeReg && rt.blocks != nil && nh.Size%pg.BlockSize == 0 && relationPath(manName) {
			if err := rt.relation(nh, tr, manName); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			continue
		}
		if err := rt.a.WriteHeader(nh); err != nil {
			return err
		}
		if nh.Typeflag != tar.TypeReg {
			continue
		}
		var src io.Reader = tr
		if keep := rt.small[h.Name]; keep != nil && h.Size <= maxSmallFile {
			src = io.TeeReader(tr, keep)
		}
		var dst io.Writer = rt.a
		crc := crc32.New(castagnoli)
		if rt.man != nil {
			dst = io.MultiWriter(rt.a, crc)
		}
		// The structs hide the archive's ReadFrom-less Write behind a
		// plain writer so that CopyBuffer uses buf, not its own 32 KiB.
		n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, rt.buf)
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if n != h.Size {
			return fmt.Errorf("%s: %d bytes of %d", h.Name, n, h.Size)
		}
		if rt.man != nil {
			rt.man.AddFile(manName, n, nh.ModTime, crc.Sum32())
		}
	}
}

// relation copies a relation file of the stream: whole, with its blocks
// hashed into the map, or, when the parent's map has it, as the blocks
// whose hash differs.
func (rt *retarrer) relation(h *tar.Header, r io.Reader, manName string) error {
	bs := rt.blocks
	nblocks := h.Size / pg.BlockSize
	var pe *blockmap.Entry
	if bs.parent != nil {
		var err error
		if pe, err = bs.parent.ix.Lookup(manName); err != nil {
			return err
		}
	}
	hashes := make([]uint64, nblocks)
	block := rt.buf[:pg.BlockSize]
	if pe == nil {
		if err := rt.a.WriteHeader(h); err != nil {
			return err
		}
		crc := crc32.New(castagnoli)
		for b := range nblocks {
			if _, err := io.ReadFull(r, block); err != nil {
				return fmt.Errorf("read block %d: %w", b, err)
			}
			hashes[b] = blockmap.Hash(block)
			crc.Write(block)
			if _, err := rt.a.Write(block); err != nil {
				return err
			}
		}
		if rt.man != nil {
			rt.man.AddFile(manName, h.Size, h.ModTime, crc.Sum32())
		}
		bs.whole++
		return bs.bmap.Add(&blockmap.Entry{Path: manName, Size: h.Size, MTime: h.ModTime, Hashes: hashes})
	}
	// The server sends every block: the changed ones wait in the spool
	// until the end of the file says how many there are.
	if rt.spool == nil {
		f, err := tempFile("gbc-blocks-*")
		if err != nil {
			return err
		}
		rt.spool = f
	}
	if _, err := rt.spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("block spool: %w", err)
	}
	var changed []uint32
	for b := range nblocks {
		if _, err := io.ReadFull(r, block); err != nil {
			return fmt.Errorf("read block %d: %w", b, err)
		}
		hashes[b] = blockmap.Hash(block)
		if b >= int64(len(pe.Hashes)) || hashes[b] != pe.Hashes[b] {
			changed = append(changed, uint32(b))
			if _, err := rt.spool.Write(block); err != nil {
				return fmt.Errorf("block spool: %w", err)
			}
		}
	}
	ih := pg.IncrementalHeader{Blocks: changed, TruncationBlockLength: uint32(nblocks)}
	ih2 := *h
	ih2.Name, ih2.Size = pg.IncrementalName(h.Name), ih.FileSize()
	if err := rt.a.WriteHeader(&ih2); err != nil {
		return err
	}
	head := ih.Encode()
	crc := crc32.Update(0, castagnoli, head)
	if _, err := rt.a.Write(head); err != nil {
		return err
	}
	if _, err := rt.spool.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("block spool: %w", err)
	}
	for range changed {
		if _, err := io.ReadFull(rt.spool, block); err != nil {
			return fmt.Errorf("block spool: %w", err)
		}
		crc = crc32.Update(crc, castagnoli, block)
		if _, err := rt.a.Write(block); err != nil {
			return err
		}
	}
	if rt.man != nil {
		rt.man.AddFile(pg.IncrementalName(manName), ih2.Size, h.ModTime, crc)
	}
	bs.incremental++
	bs.blocksStored += int64(len(changed))
	return bs.bmap.Add(&blockmap.Entry{Path: manName, Size: h.Size, MTime: h.ModTime, Hashes: hashes})
}
