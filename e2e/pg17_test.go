package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/pg"
)

// PostgreSQL 17's own incremental BASE_BACKUP through package pg, on 17
// and 18: a full backup with its manifest, a few rows changed, then
// UPLOAD_MANIFEST and BASE_BACKUP ... INCREMENTAL on a new session. The
// changed table must come as an INCREMENTAL file holding the changed
// blocks, whose header pg.ReadIncrementalHeader reads exactly as long as
// the server made it (so its field order and padding are the server's).
// Then summarize_wal is turned off and reloaded: the check and the backup
// must fail with the error that says what to do.
func TestPG17IncrementalBaseBackup(t *testing.T) {
	for _, major := range []int{17, 18} {
		t.Run(fmt.Sprint(major), func(t *testing.T) { testIncrementalBaseBackup(t, major) })
	}
}

func testIncrementalBaseBackup(t *testing.T, major int) {
	c := harness.StartPostgres(t, harness.PGOptions{
		Version:  major,
		Settings: map[string]string{"summarize_wal": "on"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// About 1,700 blocks (13 MB), below a 1 GiB segment: one file.
	c.Exec(t, "CREATE TABLE inc AS SELECT i, repeat('x', 100) AS pad FROM generate_series(1, 100000) i")
	// Set every hint bit and freeze now: with data checksums (initdb's
	// default from 18), setting them after the full backup would log every
	// page again, and the server would send the file whole.
	c.Exec(t, "VACUUM (FREEZE) inc")
	c.Exec(t, "CHECKPOINT")
	relPath := c.QueryString(t, "SELECT pg_relation_filepath('inc')")

	full := replConn(ctx, t, c)
	if err := full.CheckIncrementalSupport(ctx); err != nil {
		t.Fatalf("CheckIncrementalSupport: %v", err)
	}
	fullRes := takeBaseBackup(ctx, t, full, pg.BaseBackupOptions{Label: "full", Fast: true, NoWait: true, Manifest: true})
	if len(fullRes.manifest) == 0 {
		t.Fatal("the full backup has no manifest")
	}
	if n := len(fullRes.files[relPath]); n != int(c.QueryInt(t, "SELECT pg_relation_size('inc')")) {
		t.Fatalf("full backup: %s is %d bytes, want the relation's size", relPath, n)
	}

	// Change rows in the first, a middle and the last block.
	changed := map[uint32]bool{}
	for _, i := range []int{1, 50000, 100000} {
		changed[uint32(c.QueryInt(t, "SELECT (ctid::text::point)[0]::bigint FROM inc WHERE i = $1", i))] = true
	}
	c.Exec(t, "UPDATE inc SET pad = 'changed' WHERE i IN (1, 50000, 100000)")
	c.Exec(t, "CHECKPOINT")
	relBlocks := uint32(c.QueryInt(t, "SELECT pg_relation_size('inc') / 8192"))

	// A new session, as gbc-backup's would be: the manifest is the
	// server's own bytes, uploaded in 64 KiB messages.
	incr := replConn(ctx, t, c)
	if err := incr.UploadManifest(ctx, bytes.NewReader(fullRes.manifest)); err != nil {
		t.Fatalf("UploadManifest: %v", err)
	}
	incrRes := takeBaseBackup(ctx, t, incr, pg.BaseBackupOptions{Label: "incr", Fast: true, NoWait: true, Manifest: true, Incremental: true})
	if _, ok := incrRes.files[relPath]; ok {
		t.Errorf("incremental backup holds %s whole", relPath)
	}
	if !strings.Contains(string(incrRes.manifest), pg.IncrementalName(relPath)) {
		t.Errorf("the incremental backup's manifest does not list %s", pg.IncrementalName(relPath))
	}
	incrFiles := 0
	for name, body := range incrRes.files {
		if _, ok := pg.FromIncrementalName(name); !ok {
			continue
		}
		incrFiles++
		h, err := pg.ReadIncrementalHeader(bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		// The whole file is the header, its padding and the blocks: a
		// header read in another field order or with other padding
		// would not add up.
		if h.FileSize() != int64(len(body)) {
			t.Errorf("%s: header of %d blocks, truncation length %d, says %d bytes; the file has %d",
				name, len(h.Blocks), h.TruncationBlockLength, h.FileSize(), len(body))
		}
		if name != pg.IncrementalName(relPath) {
			continue
		}
		t.Logf("%s: blocks %v of %d, truncation length %d", name, h.Blocks, relBlocks, h.TruncationBlockLength)
		if h.TruncationBlockLength != relBlocks {
			t.Errorf("%s: truncation length %d, want the relation's %d blocks", name, h.TruncationBlockLength, relBlocks)
		}
		if len(h.Blocks) == 0 || len(h.Blocks) > 10 {
			t.Errorf("%s holds %d blocks, want the few changed ones", name, len(h.Blocks))
		}
		held := map[uint32]int{}
		for i, b := range h.Blocks {
			held[b] = i
		}
		for b := range changed {
			i, ok := held[b]
			if !ok {
				t.Errorf("%s lacks changed block %d (holds %v)", name, b, h.Blocks)
				continue
			}
			// The block is the page as the UPDATE left it: its LSN
			// (pd_lsn, the page's first 8 bytes) is past the full backup's
			// start, and the full backup's copy is different.
			page := body[h.HeaderSize()+int64(i)*pg.BlockSize:][:pg.BlockSize]
			lsn := pg.LSN(uint64(binary.LittleEndian.Uint32(page[0:]))<<32 | uint64(binary.LittleEndian.Uint32(page[4:])))
			if lsn <= fullRes.start {
				t.Errorf("%s: block %d has page LSN %s, not past the full backup's start %s", name, b, lsn, fullRes.start)
			}
			if old := fullRes.files[relPath][int64(b)*pg.BlockSize:][:pg.BlockSize]; bytes.Equal(old, page) {
				t.Errorf("%s: block %d is as in the full backup", name, b)
			}
		}
	}
	if incrFiles == 0 || incrRes.files[pg.IncrementalName(relPath)] == nil {
		logSummaries(t, c, fullRes.start)
		t.Fatalf("the incremental backup holds %d INCREMENTAL files, none of them for %s", incrFiles, relPath)
	}
	t.Logf("full backup: %d files, %d bytes; incremental: %d files (%d INCREMENTAL), %d bytes",
		len(fullRes.files), fullRes.bytes, len(incrRes.files), incrFiles, incrRes.bytes)
	if incrRes.bytes >= fullRes.bytes {
		t.Errorf("the incremental backup (%d bytes) is not smaller than the full one (%d)", incrRes.bytes, fullRes.bytes)
	}

	// Without WAL summaries: the check, and the server's own refusal,
	// say what to do.
	c.Exec(t, "ALTER SYSTEM SET summarize_wal = off")
	c.Exec(t, "SELECT pg_reload_conf()")
	var off *pg.ReplConn
	for deadline := time.Now().Add(time.Minute); ; {
		off = replConn(ctx, t, c)
		err := off.CheckIncrementalSupport(ctx)
		if errors.Is(err, pg.ErrWALSummarizationOff) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("CheckIncrementalSupport after summarize_wal = off: %v, want ErrWALSummarizationOff", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A manifest the server cannot parse, and one that fails to read,
	// fail the upload and leave the session usable.
	if err := off.UploadManifest(ctx, strings.NewReader(`{"PostgreSQL-Backup-Manifest-Version": 2, "Files": [`)); err == nil {
		t.Error("UploadManifest of a truncated manifest succeeded")
	} else {
		t.Logf("truncated manifest: %v", err)
	}
	errRead := errors.New("the store went away")
	if err := off.UploadManifest(ctx, io.MultiReader(bytes.NewReader(fullRes.manifest[:100]), iotest.ErrReader(errRead))); !errors.Is(err, errRead) {
		t.Errorf("UploadManifest of a failing reader: %v, want its error", err)
	}
	if err := off.UploadManifest(ctx, bytes.NewReader(fullRes.manifest)); err != nil {
		t.Fatalf("UploadManifest: %v", err)
	}
	_, err := off.BaseBackup(ctx, pg.BaseBackupOptions{Label: "off", Fast: true, NoWait: true, Manifest: true, Incremental: true})
	if !errors.Is(err, pg.ErrWALSummarizationOff) || !strings.Contains(err.Error(), "set summarize_wal = on") {
		t.Fatalf("BASE_BACKUP INCREMENTAL with summarize_wal = off: %v, want ErrWALSummarizationOff", err)
	}
	t.Logf("summarize_wal = off: %v", err)
	// The session survives the refusal.
	if _, err := off.IdentifySystem(ctx); err != nil {
		t.Errorf("IDENTIFY_SYSTEM after the refused backup: %v", err)
	}
}

// logSummaries logs the WAL summaries the server has, and what they say
// of the test's table, to explain an incremental backup's choices.
func logSummaries(t *testing.T, c *harness.Cluster, since pg.LSN) {
	t.Helper()
	t.Logf("full backup started at %s; WAL summaries:\n%s", since, c.QueryString(t,
		"SELECT string_agg(format('%s %s-%s', tli, start_lsn, end_lsn), E'\\n' ORDER BY start_lsn) FROM pg_available_wal_summaries()"))
	t.Logf("what they say of inc (relfilenode %s):\n%s", c.QueryString(t, "SELECT pg_relation_filenode('inc')"), c.QueryString(t, `
		SELECT string_agg(format('%s-%s fork %s block %s limit %s', s.start_lsn, s.end_lsn, w.relforknumber, w.relblocknumber, w.is_limit_block), E'\n')
		FROM pg_available_wal_summaries() s, pg_wal_summary_contents(s.tli, s.start_lsn, s.end_lsn) w
		WHERE w.relfilenode = pg_relation_filenode('inc') AND (w.is_limit_block OR w.relblocknumber < 3)`))
}

func replConn(ctx context.Context, t *testing.T, c *harness.Cluster) *pg.ReplConn {
	t.Helper()
	r, err := pg.ConnectReplication(ctx, c.ConnString(), "gbc-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// baseBackupResult is what takeBaseBackup read: the data directory's files
// by name (tar headers' names, e.g. "base/5/16384"), the manifest, the
// start position, and the bytes of all archives.
type baseBackupResult struct {
	files    map[string][]byte
	manifest []byte
	start    pg.LSN
	bytes    int64
}

// takeBaseBackup runs BASE_BACKUP and reads its stream to the end. The
// test's cluster is small (about 40 MB), so the files are kept in memory.
func takeBaseBackup(ctx context.Context, t *testing.T, r *pg.ReplConn, o pg.BaseBackupOptions) baseBackupResult {
	t.Helper()
	s, err := r.BaseBackup(ctx, o)
	if err != nil {
		t.Fatalf("BASE_BACKUP %s: %v", o.Label, err)
	}
	res := baseBackupResult{files: map[string][]byte{}, start: s.StartLSN}
	for {
		sec, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("BASE_BACKUP %s: %v", o.Label, err)
		}
		if sec.Kind == pg.SectionManifest {
			if res.manifest, err = io.ReadAll(s); err != nil {
				t.Fatalf("BASE_BACKUP %s manifest: %v", o.Label, err)
			}
			continue
		}
		if sec.Name != "base.tar" {
			t.Fatalf("BASE_BACKUP %s: unexpected archive %q", o.Label, sec.Name)
		}
		tr := tar.NewReader(s)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("BASE_BACKUP %s: %s: %v", o.Label, sec.Name, err)
			}
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("BASE_BACKUP %s: %s: %v", o.Label, h.Name, err)
			}
			if h.Typeflag == tar.TypeReg {
				res.files[h.Name] = body
				res.bytes += int64(len(body))
			}
		}
	}
	if _, _, err := s.Finish(); err != nil {
		t.Fatalf("BASE_BACKUP %s end: %v", o.Label, err)
	}
	return res
}
