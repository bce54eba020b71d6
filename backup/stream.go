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

// stream takes the backup over the replication protocol (BASE_BACKUP): the
// server reads its files and sends one tar stream per tablespace, which gbc
// re-cuts into parts through the same pipeline as a local backup, and its
// own backup_manifest, which gbc stores as it is.
func (r *run) stream(ctx context.Context) (*catalog.Backup, error) {
	rc, err := pg.ConnectReplication(ctx, r.o.ConnString, appName)
	if err != nil {
		return nil, err
	}
	defer rc.Close(context.WithoutCancel(ctx))
	sys, err := rc.IdentifySystem(ctx)
	if err != nil {
		return nil, err
	}
	segSize, err := rc.WALSegmentSize(ctx)
	if err != nil {
		return nil, err
	}
	inRecovery := false
	if s, err := rc.Show(ctx, "in_hot_standby"); err == nil {
		inRecovery = s == "on"
	}
	mode, err := rc.Show(ctx, "archive_mode")
	if err != nil {
		return nil, err
	}
	// archive_command may be hidden from a replication-only role: then
	// only archive_mode is checked.
	command, cerr := rc.Show(ctx, "archive_command")
	library, lerr := rc.Show(ctx, "archive_library")
	if cerr != nil || lerr != nil {
		command, library = "(unknown)", ""
	}
	if err := checkArchiving(mode, command, library, inRecovery, r.o.warnf); err != nil {
		return nil, err
	}
	if err := r.checkNameFree(ctx); err != nil {
		return nil, err
	}
	rec := r.newRecord(MethodStream)
	rec.PGVersion, rec.PGVersionString = rc.Version(), rc.VersionString()
	rec.SystemIdentifier, rec.WALSegmentSize, rec.FromStandby = sys.SystemIdentifier, segSize, inRecovery
	// The server's WAL position now bounds the backup's start from below
	// on a primary (its checkpoint comes later); see catalog's package
	// documentation for what retention makes of it.
	setBegin(rec, sys.Timeline, sys.XLogPos, segSize)
	rec.DataDirectory, rec.Tablespaces = r.sqlDetails(ctx)
	if err := r.create(ctx, rec); err != nil {
		return nil, err
	}
	r.o.logf("backup %s of server %s started (method stream)", rec.ID, r.o.Server)
	ctx = r.heartbeat(ctx)
	b, err := r.streamCopy(ctx, rc, segSize)
	if err != nil {
		return nil, r.fail(ctx, err)
	}
	return b, nil
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

func (r *run) streamCopy(ctx context.Context, rc *pg.ReplConn, segSize int64) (*catalog.Backup, error) {
	bs, err := rc.BaseBackup(ctx, pg.BaseBackupOptions{
		Label: r.rec.Label, Fast: !r.o.Spread, Manifest: true, TablespaceMap: true, NoWait: !r.pgWaitsForArchive(),
	})
	if err != nil {
		return nil, err
	}
	if err := r.update(ctx, func(b *catalog.Backup) {
		setBegin(b, bs.Timeline, bs.StartLSN, segSize)
		b.Tablespaces = mergeTablespaces(b.Tablespaces, bs.Tablespaces)
	}); err != nil {
		return nil, err
	}
	r.o.logf("backup started at WAL %s (%s)", bs.StartLSN, r.rec.BeginWAL)

	prog := r.startProgress(0)
	defer prog.stop()
	p := newPipeline(ctx, r.pipelineConfig(prog.add))
	fail := func(err error) (*catalog.Backup, error) { return nil, p.stop(err) }
	var (
		label, spcMap     bytes.Buffer
		files             int64
		tsBytes           = map[string]int64{}
		mkey, msum        string
		msize             int64
		gotManifest, gotB bool
	)
	buf := make([]byte, 1<<20)
	for {
		sec, err := bs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if sec.Kind == pg.SectionManifest {
			mkey = r.layout.ManifestKey(r.rec.ID, r.o.Codec.Ext())
			if msize, msum, err = storeSpooled(p.ctx, r.o.Store, mkey, bs, r.o.Codec, r.o.Level); err != nil {
				return fail(fmt.Errorf("backup_manifest: %w", err))
			}
			gotManifest = true
			continue
		}
		ts, err := archiveTablespace(sec.Name)
		if err != nil {
			return fail(err)
		}
		gotB = gotB || ts == ""
		a := p.archive(ts)
		var small map[string]*bytes.Buffer
		if ts == "" {
			small = map[string]*bytes.Buffer{labelFile: &label, spcMapFile: &spcMap}
		}
		if err := retar(a, bs, buf, small, r.o.warnf); err != nil {
			return fail(fmt.Errorf("archive %s: %w", sec.Name, err))
		}
		if err := a.Close(); err != nil {
			return fail(err)
		}
		files += a.Files
		if ts != "" {
			tsBytes[ts] = a.Bytes
		}
	}
	prog.stop()
	end, endTLI, err := bs.Finish()
	if err != nil {
		return fail(err)
	}
	switch {
	case !gotB:
		return fail(errors.New("BASE_BACKUP sent no archive of the data directory"))
	case !gotManifest:
		return fail(errors.New("BASE_BACKUP sent no backup_manifest"))
	case label.Len() == 0:
		return fail(errors.New("BASE_BACKUP's archive has no backup_label"))
	}
	parts, err := p.wait()
	if err != nil {
		return nil, err
	}
	endWAL := pg.SegmentName(endTLI, end.PrevSegment(segSize), segSize)
	if err := r.waitWAL(ctx, endWAL); err != nil {
		return nil, err
	}
	r.mu.Lock()
	b := r.rec
	b.EndLSN, b.EndWAL = end.String(), endWAL
	b.BackupLabel, b.TablespaceMap = label.String(), spcMap.String()
	b.Parts = parts
	b.ManifestKey, b.ManifestSHA256, b.ManifestStoredSize = mkey, msum, msize
	b.Files = files
	b.DataSize, b.StoredSize = 0, msize
	for _, pt := range parts {
		b.DataSize += pt.Size
		b.StoredSize += pt.StoredSize
	}
	for i := range b.Tablespaces {
		b.Tablespaces[i].Size = tsBytes[b.Tablespaces[i].OID]
	}
	r.mu.Unlock()
	return r.done(ctx)
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
