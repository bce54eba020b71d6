package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/pg"
)

// appName is what pg_stat_activity shows for gbc's sessions.
const appName = "gbc-backup"

// serverInfo is what the backup learns about the server before starting.
type serverInfo struct {
	version       int
	versionString string
	systemID      string
	catalogVer    int64
	segSize       int64
	inRecovery    bool
	dataDir       string
	tablespaces   []pg.Tablespace
}

func (r *run) inspect(ctx context.Context, conn *pg.Conn) (*serverInfo, error) {
	si := &serverInfo{version: conn.Version(), versionString: conn.VersionString()}
	var err error
	if si.systemID, err = conn.SystemIdentifier(ctx); err != nil {
		return nil, err
	}
	if si.catalogVer, err = conn.CatalogVersion(ctx); err != nil {
		return nil, err
	}
	if si.segSize, err = conn.WALSegmentSize(ctx); err != nil {
		return nil, err
	}
	if si.inRecovery, err = conn.InRecovery(ctx); err != nil {
		return nil, err
	}
	set, err := conn.Settings(ctx, "archive_mode", "archive_command", "archive_library")
	if err != nil {
		return nil, err
	}
	if err := r.checkWALSource(ctx, set["archive_mode"], set["archive_command"], set["archive_library"], si.inRecovery, si.systemID); err != nil {
		return nil, err
	}
	if si.dataDir, err = conn.DataDirectory(ctx); err != nil {
		return nil, fmt.Errorf("%w (the role needs pg_read_all_settings or superuser for --method local)", err)
	}
	if si.tablespaces, err = conn.Tablespaces(ctx); err != nil {
		return nil, err
	}
	return si, nil
}

// versionDir is TABLESPACE_VERSION_DIRECTORY, PG_<major>_<catversion>: the
// directory of a tablespace location that belongs to this server version.
func (si *serverInfo) versionDir() string {
	return fmt.Sprintf("PG_%d_%d", si.version/10000, si.catalogVer)
}

// connect opens the session the backup is held on and reads what the
// backup needs to know of the server. The caller closes the session:
// closing it aborts a backup still running on it, so every failure leaves
// the server as it was.
func (r *run) connect(ctx context.Context) (*pg.Conn, *serverInfo, error) {
	conn, err := pg.Connect(ctx, r.o.ConnString, appName)
	if err != nil {
		return nil, nil, err
	}
	si, err := r.inspect(ctx, conn)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return conn, si, nil
}

// localSource reads the files on this host, between pg_backup_start and
// pg_backup_stop on one held session.
type localSource struct {
	r    *run
	conn *pg.Conn
	si   *serverInfo
	man  *manifestWriter
	c    *copier
	res  *copyResult
	// control is pg_control, read after every other file.
	control     []byte
	controlInfo fs.FileInfo
}

// openLocal connects and checks that the data directory is readable here.
// With --method left to choose, a data directory that is not returns
// errNotHere, for the caller to stream the backup instead.
func (r *run) openLocal(ctx context.Context) (*localSource, sourceInfo, error) {
	conn, si, err := r.connect(ctx)
	if err != nil {
		return nil, sourceInfo{}, err
	}
	ok, err := readableDataDir(si.dataDir, si.systemID)
	if err == nil && !ok {
		err = fmt.Errorf("%w: the data directory %s is not readable here: run gbc-backup on the database host as its owner (or root), or use --method stream", ErrRefused, si.dataDir)
		if r.o.Method != MethodLocal {
			r.o.logf("data directory %s is not readable here: taking the backup with --method stream", si.dataDir)
			err = errNotHere
		}
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, sourceInfo{}, err
	}
	src := &localSource{r: r, conn: conn, si: si}
	return src, sourceInfo{
		method:  MethodLocal,
		what:    "method local, data directory " + si.dataDir,
		parts:   true,
		blocks:  true,
		segSize: si.segSize,
		estimate: func(ctx context.Context) int64 {
			// The databases' sizes.
			n, _ := conn.DatabaseSize(ctx)
			return n
		},
	}, nil
}

func (s *localSource) close(ctx context.Context) {
	if s.man != nil {
		s.man.Close()
	}
	s.conn.Close(ctx)
}

func (s *localSource) cleanup(context.Context) {}

func (s *localSource) describe(ctx context.Context, rec *catalog.Backup) error {
	return describeHost(ctx, s.conn, s.si, rec)
}

// describeHost fills the record of a backup read from this host's disks
// (local and snapshot methods).
func describeHost(ctx context.Context, conn *pg.Conn, si *serverInfo, rec *catalog.Backup) error {
	rec.PGVersion, rec.PGVersionString = si.version, si.versionString
	rec.SystemIdentifier, rec.WALSegmentSize = si.systemID, si.segSize
	rec.DataDirectory, rec.FromStandby = si.dataDir, si.inRecovery
	// Until the server names the backup's start, the last checkpoint's
	// redo point is a lower bound of the WAL it needs: what retention must
	// keep from now on (see catalog's package documentation).
	redo, tli, err := conn.Checkpoint(ctx)
	if err != nil {
		return err
	}
	setBegin(rec, tli, redo, si.segSize)
	for _, t := range si.tablespaces {
		rec.Tablespaces = append(rec.Tablespaces, catalog.Tablespace{OID: strconv.FormatUint(uint64(t.OID), 10), Name: t.Name, Location: t.Location})
	}
	return nil
}

// startHost runs pg_backup_start on the held session.
func startHost(ctx context.Context, conn *pg.Conn, label string, fast bool) (*began, error) {
	start, err := conn.BackupStart(ctx, label, fast)
	if err != nil {
		return nil, err
	}
	_, tli, err := conn.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	return &began{tli: tli, lsn: start}, nil
}

func setBegin(b *catalog.Backup, tli uint32, lsn pg.LSN, segSize int64) {
	b.Timeline = tli
	b.BeginLSN = lsn.String()
	b.BeginWAL = pg.SegmentName(tli, lsn.Segment(segSize), segSize)
}

func (s *localSource) start(ctx context.Context, label string) (*began, error) {
	r := s.r
	man, err := newManifestWriter(r.o.Codec, r.o.Level, s.si.version, s.si.systemID)
	if err != nil {
		return nil, err
	}
	s.man = man
	s.c = &copier{buf: make([]byte, 1<<20), man: man, blocks: r.blocks, warnf: r.o.warnf}
	return startHost(ctx, s.conn, label, !r.o.Spread)
}

func (s *localSource) copy(ctx context.Context, p *pipeline) error {
	stopWatch := watchSession(p, s.conn, s.r.o.sessionCheckEvery)
	res, err := s.r.copyFiles(p, s.c, s.si)
	stopWatch()
	if err != nil {
		return err
	}
	s.res = res
	// pg_control last, as BASE_BACKUP does, once everything it describes
	// was read. It is 8 KiB (PG_CONTROL_FILE_SIZE): held in memory until
	// the backup_label exists, so that all three go in one last part.
	s.control, s.controlInfo, err = pg.ReadControlFile(s.si.dataDir)
	return err
}

func (s *localSource) stop(ctx context.Context, p *pipeline) (*ended, error) {
	r := s.r
	// Every file is read, but the last parts may still be compressing
	// and uploading: pg_backup_stop need not wait for them, and the line
	// says so rather than let a slow upload look like a hung stop.
	r.o.logf("files read; stopping the backup while the last parts upload")
	stop, err := s.conn.BackupStop(ctx, r.pgWaitsForArchive())
	if err != nil {
		return nil, err
	}
	label, err := pg.ParseBackupLabel(stop.BackupLabel)
	if err != nil {
		return nil, err
	}
	tail := p.archive("")
	tail.n = s.res.dataParts
	now := r.o.now()
	for _, f := range []struct {
		name string
		data []byte
		mode fs.FileMode
		mt   time.Time
	}{
		{labelFile, []byte(stop.BackupLabel), 0o600, now},
		{spcMapFile, []byte(stop.TablespaceMap), 0o600, now},
		{controlFile, s.control, s.controlInfo.Mode().Perm(), s.controlInfo.ModTime()},
	} {
		if f.name == spcMapFile && len(f.data) == 0 {
			continue
		}
		if err := s.c.writeBytes(tail, f.name, f.name, f.data, f.mode, f.mt); err != nil {
			return nil, err
		}
	}
	if err := tail.Close(); err != nil {
		return nil, err
	}
	return &ended{
		startTLI: label.StartTimeline, startLSN: label.StartLSN,
		endTLI: label.StartTimeline, end: stop.LSN,
		label: stop.BackupLabel, spcMap: stop.TablespaceMap,
		files: s.man.Files(), tablespaceBytes: s.res.tablespaceBytes,
	}, nil
}

func (s *localSource) manifest(ctx context.Context, e *ended) (*storedManifest, error) {
	r := s.r
	r.o.logf("all %d parts uploaded; storing the manifest", e.parts)
	if err := s.man.Finish(walRanges(e.endTLI, e.startLSN, e.end)); err != nil {
		return nil, err
	}
	key := r.layout.ManifestKey(r.rec.ID, r.o.Codec.Ext())
	size, sum, err := s.man.Upload(ctx, r.o.Store, key)
	if err != nil {
		return nil, err
	}
	return &storedManifest{key: key, sha256: sum, size: size}, nil
}

// watchSession checks, while files are copied, that the session holding
// the backup is alive: if the server restarted or the connection broke,
// the server has aborted the backup, and the copy stops at once instead of
// reading the whole database for nothing. The returned function stops the
// watch and must be called before the session is used again (a session
// serves one query at a time).
func watchSession(p *pipeline, conn *pg.Conn, every time.Duration) func() {
	ctx, cancel := context.WithCancel(p.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := conn.Ping(ctx); err != nil && ctx.Err() == nil {
					p.abort(fmt.Errorf("the server aborted the backup (%w): the session holding it was lost", err))
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

type copyResult struct {
	dataParts       int
	tablespaceBytes map[string]int64
}

// copyFiles writes the data directory, then every tablespace, each as its
// own archive.
func (r *run) copyFiles(p *pipeline, c *copier, si *serverInfo) (*copyResult, error) {
	res := &copyResult{tablespaceBytes: map[string]int64{}}
	rootInfo, err := os.Stat(si.dataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	skip := map[string]bool{}
	for _, t := range si.tablespaces {
		if rel, err := filepath.Rel(si.dataDir, tablespaceDir(si, t)); err == nil && !strings.HasPrefix(rel, "..") && rel != "." {
			skip[filepath.ToSlash(rel)] = true
		}
	}
	data := p.archive("")
	w := &walker{root: si.dataDir, data: true, skip: skip, versionDir: "", dirMode: rootInfo.Mode().Perm(), warnf: r.o.warnf}
	if err := w.walk(p.ctx, func(e *entry) error { return c.send(data, e, "") }); err != nil {
		return nil, err
	}
	if err := data.Close(); err != nil {
		return nil, err
	}
	res.dataParts = data.n
	for _, t := range si.tablespaces {
		oid := strconv.FormatUint(uint64(t.OID), 10)
		a := p.archive(oid)
		w := &walker{root: tablespaceDir(si, t), versionDir: si.versionDir(), dirMode: rootInfo.Mode().Perm(), warnf: r.o.warnf}
		if err := w.walk(p.ctx, func(e *entry) error { return c.send(a, e, "pg_tblspc/"+oid+"/") }); err != nil {
			return nil, fmt.Errorf("tablespace %s (%s): %w", t.Name, t.Location, err)
		}
		if err := a.Close(); err != nil {
			return nil, err
		}
		res.tablespaceBytes[oid] = a.Bytes
	}
	return res, nil
}

// tablespaceDir is where a tablespace's files are on this host. A
// relative location is an in-place tablespace (allow_in_place_tablespaces),
// relative to the data directory, not to gbc's working directory.
func tablespaceDir(si *serverInfo, t pg.Tablespace) string {
	if filepath.IsAbs(t.Location) {
		return t.Location
	}
	return filepath.Join(si.dataDir, t.Location)
}

// copier copies files into archives and lists them in the manifest.
type copier struct {
	buf []byte
	man *manifestWriter
	// blocks, when set, keeps the block map, and with a parent stores
	// relation files as their changed blocks.
	blocks *blockSender
	warnf  func(string, ...any)
}

// send writes one walk entry. manPrefix turns a tablespace archive's path
// into the manifest's, which is relative to the data directory.
func (c *copier) send(a *archiveWriter, e *entry, manPrefix string) error {
	if e.typ == tar.TypeDir {
		return a.WriteHeader(dirHeader(e.rel, e.info))
	}
	return c.sendFile(a, e.path, e.rel, manPrefix+e.rel)
}

func dirHeader(name string, info fs.FileInfo) *tar.Header {
	h := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()}
	setOwner(h, info)
	return h
}

func setOwner(h *tar.Header, info fs.FileInfo) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		h.Uid, h.Gid = int(st.Uid), int(st.Gid)
	}
}

// sendFile copies one file. Its size is taken when it is opened: a file
// that grows meanwhile is copied up to that size, and one that shrinks is
// padded with zeros, as BASE_BACKUP does. Either way WAL replay from the
// backup's start rewrites what changed. A file that vanished before it was
// opened (a dropped table) is left out.
func (c *copier) sendFile(a *archiveWriter, path, name, manName string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		c.warnf("skipping special file %q", path)
		return nil
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: info.Size(), Mode: int64(info.Mode().Perm()), ModTime: info.ModTime()}
	setOwner(h, info)
	if c.blocks != nil && c.blocks.parent != nil && h.Size%pg.BlockSize == 0 && relationPath(manName) {
		return c.sendRelation(a, f, h, manName, info.ModTime())
	}
	return c.sendWhole(a, f, h, manName, info.ModTime())
}

// writeBytes writes a file whose content is in memory (backup_label,
// tablespace_map, pg_control).
func (c *copier) writeBytes(a *archiveWriter, name, manName string, data []byte, mode fs.FileMode, mtime time.Time) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: int64(mode), ModTime: mtime,
		Uid: os.Geteuid(), Gid: os.Getegid()}
	if err := a.WriteHeader(h); err != nil {
		return err
	}
	if _, err := a.Write(data); err != nil {
		return err
	}
	c.man.AddFile(manName, int64(len(data)), mtime, crc32.Checksum(data, castagnoli))
	return nil
}
