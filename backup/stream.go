package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

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
	return s, sourceInfo{method: MethodStream, what: "method stream", parts: true, segSize: s.segSize}, nil
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
	return checkArchiving(mode, command, library, s.inRecovery, s.r.o.warnf)
}

func (s *streamSource) close(ctx context.Context)                                 { s.rc.Close(ctx) }
func (s *streamSource) cleanup(context.Context)                                   {}
func (s *streamSource) manifest(context.Context, *ended) (*storedManifest, error) { return s.man, nil }

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
	bs, err := s.rc.BaseBackup(ctx, pg.BaseBackupOptions{
		Label: label, Fast: !s.r.o.Spread, Manifest: true, TablespaceMap: true, NoWait: !s.r.pgWaitsForArchive(),
	})
	if err != nil {
		return nil, err
	}
	s.bs = bs
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
		if err := retar(a, bs, buf, small, r.o.warnf); err != nil {
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

// retar copies the entries of a tar stream into an archive, which cuts
// them into parts. The named small files (backup_label, tablespace_map)
// are also kept in their buffers.
func retar(a *archiveWriter, r io.Reader, buf []byte, small map[string]*bytes.Buffer, warnf func(string, ...any)) error {
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
			warnf("skipping tar entry %q of type %q", h.Name, h.Typeflag)
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
		if err := a.WriteHeader(nh); err != nil {
			return err
		}
		if nh.Typeflag != tar.TypeReg {
			continue
		}
		var src io.Reader = tr
		if keep := small[h.Name]; keep != nil && h.Size <= maxSmallFile {
			src = io.TeeReader(tr, keep)
		}
		// The struct hides the archive's ReadFrom-less Write behind a
		// plain writer so that CopyBuffer uses buf, not its own 32 KiB.
		n, err := io.CopyBuffer(struct{ io.Writer }{a}, struct{ io.Reader }{src}, buf)
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		if n != h.Size {
			return fmt.Errorf("%s: %d bytes of %d", h.Name, n, h.Size)
		}
	}
}
