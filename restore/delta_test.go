package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gbc-backup/gbc/blockmap"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/pg"
)

const deltaSysID = "7311111111111111111"

// controlFor is a pg_control of system sysid, as long as a real one.
func controlFor(sysid string) string {
	b := make([]byte, 8192)
	var id uint64
	fmt.Sscan(sysid, &id)
	binary.LittleEndian.PutUint64(b, id)
	binary.LittleEndian.PutUint32(b[16:], 1) // shut down
	return string(b)
}

// block is an 8 KiB block filled with c.
func block(c byte) string { return strings.Repeat(string(c), pg.BlockSize) }

// deltaBackup stores a one-part backup of entries (with PG_VERSION and
// pg_control) and its manifest, as backup id.
func (f *fixture) deltaBackup(t *testing.T, id string, entries []entry) *catalog.Backup {
	t.Helper()
	entries = append([]entry{
		{name: "global", dir: true}, {name: "base", dir: true}, {name: "base/1", dir: true},
		{name: "pg_wal", dir: true}, {name: "pg_wal/archive_status", dir: true}, {name: "pg_tblspc", dir: true},
		{name: "PG_VERSION", body: "15\n"}, {name: "global/pg_control", body: controlFor(deltaSysID)},
		{name: "backup_label", body: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"},
		{name: "postgresql.auto.conf", body: "# Do not edit\n"},
	}, entries...)
	files := map[string]string{}
	for _, e := range entries {
		if !e.dir && e.link == "" {
			files[e.name] = e.body
		}
	}
	b := &catalog.Backup{Format: 1, ID: id, Server: "main", Status: catalog.StatusDone, SystemIdentifier: deltaSysID, Compression: "zstd"}
	stored := zst(t, makeTar(t, entries))
	key := f.layout.PartKey(id, "", 0, "zst")
	f.put(t, key, stored)
	b.Parts = []catalog.Part{{Key: key, StoredSize: int64(len(stored)), SHA256: sha(stored)}}
	man := zst(t, manifestFor(files))
	b.ManifestKey = f.layout.ManifestKey(id, "zst")
	b.ManifestSHA256, b.ManifestStoredSize = sha(man), int64(len(man))
	f.put(t, b.ManifestKey, man)
	return b
}

func newDeltaFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := cloud.Open(context.Background(), "file://"+t.TempDir(), cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &fixture{store: s, layout: catalog.Layout{Server: "main"}, stored: map[string][]byte{}}
}

var deltaEntries = []entry{
	{name: "base/1/1259", body: block('a') + block('b') + block('c')},
	{name: "base/1/2600", body: block('d')},
	{name: "base/1/2601", body: block('e') + block('f')},
	{name: "base/1/2602", body: "short"},
	{name: "base/1/2603", body: block('g')},
	{name: "base/1/PG_VERSION", body: "15\n", mode: 0o640},
	{name: "pg_xact", dir: true}, {name: "pg_xact/0000", body: "xact"},
}

// writtenByRestore are the files a restore writes itself, with the time
// it runs.
var writtenByRestore = map[string]bool{manifestName: true, recoverySignal: true, autoConf: true}

// treeOf describes every entry under dir: kind, mode, content, mtime, link.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %v", fi.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			mt := fi.ModTime().UnixMicro()
			if writtenByRestore[rel] {
				mt = 0 // the time of the restore
			}
			out[rel] = fmt.Sprintf("file %v %d %s %d", fi.Mode().Perm(), len(b), hex.EncodeToString(s[:8]), mt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %q, which a restore into an empty directory does not have", k, v)
		}
	}
}

func ctimeOf(t *testing.T, p string) (uint64, int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino, st.Ctim.Nano()
}

func deltaOptions(f *fixture, b *catalog.Backup, dest string) Options {
	return Options{Store: f.store, Layout: f.layout, Backup: b, Dest: dest, Jobs: 2, Delta: true,
		Recovery: &RecoveryConfig{WALRestore: "/bin/gbc-wal-restore", StoreURL: "file:///s", Server: "main", BackupID: b.ID, Now: mtime}}
}

// A delta restore over a directory that changed since a restore of the
// same backup writes only the blocks that differ, removes what the
// backup does not hold, and gives what a restore into an empty
// directory gives.
func TestDeltaRestore(t *testing.T) {
	tmp := t.TempDir()
	f := newDeltaFixture(t)
	b := f.deltaBackup(t, "20261124T210000Z", deltaEntries)
	want := filepath.Join(tmp, "fresh")
	if res, err := Run(context.Background(), deltaOptions(f, b, want)); err != nil || res.Delta {
		t.Fatalf("a delta restore into a missing directory: %+v %v (want a plain one)", res, err)
	}
	dest := filepath.Join(tmp, "data")
	if _, err := Run(context.Background(), deltaOptions(f, b, dest)); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dest, name) }
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p(name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What a server running on the copy changes.
	f1259, _ := os.OpenFile(p("base/1/1259"), os.O_WRONLY, 0)
	f1259.WriteAt([]byte(block('X')), pg.BlockSize) // the middle block
	f1259.Close()
	if err := os.Truncate(p("base/1/2601"), pg.BlockSize); err != nil { // shrunk
		t.Fatal(err)
	}
	write("base/1/2602", "longer than it was") // grown
	os.Remove(p("base/1/2603"))                // dropped
	os.Chmod(p("base/1/PG_VERSION"), 0o600)    // mode only
	pgv, _ := os.OpenFile(p("PG_VERSION"), os.O_WRONLY|os.O_APPEND, 0)
	pgv.WriteString("appended\n") // longer only: truncated, nothing written
	pgv.Close()
	os.Chtimes(p("PG_VERSION"), mtime, mtime) // the time is no clue
	write("base/1/99999", "a new table")
	write("base/77/1", "a new database")
	write("pg_wal/000000010000000000000009", "wal")
	write("pg_wal/archive_status/000000010000000000000009.done", "")
	write("postmaster.pid", "2147483646\n"+dest+"\n") // a server that is gone
	os.Remove(p("pg_xact/0000"))
	os.Mkdir(p("pg_xact/0000"), 0o700) // a directory where a file was
	os.Mkdir(p("empty_extra"), 0o700)
	os.Symlink("/nonexistent", p("base/1/link"))
	// A file hard-linked elsewhere must not be written through.
	outside := filepath.Join(tmp, "linked")
	os.WriteFile(outside, []byte(block('L')), 0o600)
	os.Remove(p("base/1/2600"))
	if err := os.Link(outside, p("base/1/2600")); err != nil {
		t.Fatal(err)
	}
	unchangedIno, unchangedCtime := ctimeOf(t, p("backup_label"))
	changedIno, _ := ctimeOf(t, p("base/1/1259"))

	res, err := Run(context.Background(), deltaOptions(f, b, dest))
	if err != nil {
		t.Fatal(err)
	}
	diffTrees(t, treeOf(t, dest), treeOf(t, want))
	if !res.Delta || res.Files != 11 {
		t.Errorf("result %+v", res)
	}
	// Written: 1259's middle block, 2601's second block (it was cut
	// short), 2600 (hard-linked: replaced),
	// 2603 (dropped), "short" over 2602's start (then truncated), and
	// pg_xact/0000 (a directory was there). postgresql.auto.conf only
	// loses the recovery settings appended, by truncation.
	if want := int64(4*pg.BlockSize + 5 + 4); res.Bytes != want {
		t.Errorf("wrote %d bytes, want %d", res.Bytes, want)
	}
	// base/1/PG_VERSION (its mode only), backup_label and pg_control
	// matched.
	if res.Kept != 3 {
		t.Errorf("kept %d files, want 3", res.Kept)
	}
	// 99999, base/77, the WAL and its status, postmaster.pid,
	// empty_extra, the link, and the first restore's backup_manifest and
	// recovery.signal (written anew).
	if res.Removed != 9 {
		t.Errorf("removed %d, want 9", res.Removed)
	}
	if i, c := ctimeOf(t, p("backup_label")); i != unchangedIno || c != unchangedCtime {
		t.Errorf("backup_label, which matched, was touched")
	}
	if i, _ := ctimeOf(t, p("base/1/1259")); i != changedIno {
		t.Errorf("base/1/1259 was replaced rather than written in place")
	}
	if b, _ := os.ReadFile(outside); string(b) != block('L') {
		t.Errorf("the delta restore wrote through a hard link")
	}
	if _, err := os.Stat(p(heldControl)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("held pg_control left: %v", err)
	}
	if _, err := os.Stat(p(LockFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}

	// Again, over what it just wrote: nothing to write but the recovery
	// settings appended to postgresql.auto.conf, nothing to remove.
	res, err = Run(context.Background(), deltaOptions(f, b, dest))
	if err != nil {
		t.Fatal(err)
	}
	diffTrees(t, treeOf(t, dest), treeOf(t, want))
	if res.Removed != 2 || res.Kept != res.Files-1 || res.Bytes != 0 { // backup_manifest, recovery.signal; postgresql.auto.conf
		t.Errorf("second delta: %+v", res)
	}
}

// failingStore fails every Get of one key.
type failingStore struct {
	cloud.Store
	key string
}

func (s *failingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if key == s.key {
		return nil, errors.New("the store is down")
	}
	return s.Store.Get(ctx, key)
}

// A delta restore that fails half-way leaves a directory PostgreSQL will
// not start (no pg_control), which another delta restore recognises and
// finishes.
func TestDeltaRestoreInterrupted(t *testing.T) {
	tmp := t.TempDir()
	f := newDeltaFixture(t)
	b := f.deltaBackup(t, "20261124T210000Z", deltaEntries)
	want := filepath.Join(tmp, "fresh")
	if _, err := Run(context.Background(), deltaOptions(f, b, want)); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(tmp, "data")
	if _, err := Run(context.Background(), deltaOptions(f, b, dest)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dest, "base/1/1259"), []byte("changed"), 0o600)
	o := deltaOptions(f, b, dest)
	o.Store = &failingStore{Store: f.store, key: b.Parts[0].Key}
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "the store is down") || !strings.Contains(err.Error(), "run gbc-restore --delta again to finish it") {
		t.Fatalf("%v, want the failure and what to do", err)
	}
	if _, err := os.Stat(filepath.Join(dest, controlFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an interrupted delta restore left %s, so the directory could be started: %v", controlFile, err)
	}
	if _, err := Run(context.Background(), deltaOptions(f, b, dest)); err != nil {
		t.Fatalf("delta restore after an interrupted one: %v", err)
	}
	diffTrees(t, treeOf(t, dest), treeOf(t, want))
}

// The refusals write nothing.
func TestDeltaRefusals(t *testing.T) {
	f := newDeltaFixture(t)
	b := f.deltaBackup(t, "20261124T210000Z", deltaEntries)
	restored := func(t *testing.T) string {
		dest := filepath.Join(t.TempDir(), "data")
		o := deltaOptions(f, b, dest)
		o.Delta = false
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		return dest
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	for _, c := range []struct {
		name  string
		setup func(t *testing.T) string
		msg   string
	}{
		{"not a data directory", func(t *testing.T) string {
			d := t.TempDir()
			os.WriteFile(filepath.Join(d, "notes.txt"), []byte("mine"), 0o600)
			return d
		}, "is not a PostgreSQL data directory (it has no PG_VERSION)"},
		{"no pg_control", func(t *testing.T) string {
			d := restored(t)
			os.Remove(filepath.Join(d, controlFile))
			return d
		}, "it has no global/pg_control"},
		{"another system", func(t *testing.T) string {
			d := restored(t)
			os.WriteFile(filepath.Join(d, controlFile), []byte(controlFor("42")), 0o600)
			return d
		}, "holds another system (system identifier 42) than backup 20261124T210000Z (" + deltaSysID + ")"},
		{"running server", func(t *testing.T) string {
			d := restored(t)
			os.WriteFile(filepath.Join(d, postmasterPID), fmt.Appendf(nil, "%d\n%s\n", sleeper.Process.Pid, d), 0o600)
			return d
		}, fmt.Sprintf(`is running on %%s (process %d "sleep", in postmaster.pid): stop it first`, sleeper.Process.Pid)},
		{"pid being written", func(t *testing.T) string {
			d := restored(t)
			os.WriteFile(filepath.Join(d, postmasterPID), nil, 0o600)
			return d
		}, "holds no process id"},
		{"foreign tablespace", func(t *testing.T) string {
			d := restored(t)
			ts := filepath.Join(t.TempDir(), "ts")
			os.MkdirAll(filepath.Join(ts, "PG_15_1"), 0o700)
			return d + "|" + ts
		}, "is not empty and"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := c.setup(t)
			o := deltaOptions(f, b, dest)
			if d, ts, ok := strings.Cut(dest, "|"); ok {
				dest, o.Dest = d, d
				bb := *b
				bb.Tablespaces = []catalog.Tablespace{{OID: "16400", Name: "ts1", Location: ts}}
				o.Backup = &bb
			}
			before := treeOf(t, dest)
			_, err := Run(context.Background(), o)
			var de *DeltaRefusal
			if !errors.As(err, &de) || !strings.Contains(err.Error(), strings.ReplaceAll(c.msg, "%s", dest)) {
				t.Fatalf("%v, want a DeltaRefusal saying %q", err, c.msg)
			}
			diffTrees(t, treeOf(t, dest), before)
		})
	}
	// Restore classifies it.
	dest := restored(t)
	os.WriteFile(filepath.Join(dest, controlFile), []byte(controlFor("42")), 0o600)
	if err := catalog.Save(context.Background(), f.store, f.layout, b); err != nil {
		t.Fatal(err)
	}
	req := f.request(dest)
	req.Delta, req.NoWALCheck = true, true
	if _, err := Restore(context.Background(), req); !errors.Is(err, ErrRefused) {
		t.Errorf("Restore: %v, want ErrRefused", err)
	}
	req.Snapshot = &SnapshotRecovery{Instance: "db2"}
	if err := req.Check(); !errors.Is(err, ErrInvalid) {
		t.Errorf("delta with a snapshot recovery: %v, want ErrInvalid", err)
	}
}

// countingStore counts the Gets of each key.
type countingStore struct {
	cloud.Store
	mu   sync.Mutex
	gets map[string]int
}

func (s *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s.mu.Lock()
	s.gets[key]++
	s.mu.Unlock()
	return s.Store.Get(ctx, key)
}

// A delta restore of an incremental chain takes the blocks that match
// the newest backup's block map from the local file, and downloads the
// older backups only for the blocks that differ locally.
func TestDeltaRestoreChain(t *testing.T) {
	tmp := t.TempDir()
	f := newDeltaFixture(t)
	rel := block('a') + block('b') + block('c') + block('d')
	full := f.deltaBackup(t, "20261124T210000Z", []entry{{name: "base/1/16384", body: rel}, {name: "base/1/16390", body: block('z')}})
	// The incremental: block 2 of 16384 changed, 16390 unchanged (one
	// block from the parent).
	inc := func(blocks []uint32, trunc uint32, data string) string {
		h := pg.IncrementalHeader{Blocks: blocks, TruncationBlockLength: trunc}
		return string(h.Encode()) + data
	}
	incr := f.deltaBackup(t, "20261125T210000Z", []entry{
		{name: "base/1/INCREMENTAL.16384", body: inc([]uint32{2}, 4, block('C'))},
		{name: "base/1/INCREMENTAL.16390", body: inc(nil, 1, "")},
	})
	incr.Type, incr.ParentID = catalog.TypeIncr, full.ID
	var bm bytes.Buffer
	w := blockmap.NewWriter(&bm)
	hashes := func(s string) []uint64 {
		var h []uint64
		for i := 0; i < len(s); i += pg.BlockSize {
			h = append(h, blockmap.Hash([]byte(s[i:i+pg.BlockSize])))
		}
		return h
	}
	final := block('a') + block('b') + block('C') + block('d')
	w.Add(&blockmap.Entry{Path: "base/1/16384", Size: int64(len(final)), MTime: mtime, Hashes: hashes(final)})
	w.Add(&blockmap.Entry{Path: "base/1/16390", Size: pg.BlockSize, MTime: mtime, Hashes: hashes(block('z'))})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	stored := zst(t, bm.Bytes())
	incr.BlockMap = &catalog.Object{Key: f.layout.BlockMapKey(incr.ID, "zst"), Size: int64(bm.Len()), StoredSize: int64(len(stored)), SHA256: sha(stored)}
	f.put(t, incr.BlockMap.Key, stored)

	cs := &countingStore{Store: f.store, gets: map[string]int{}}
	opts := func(dest string) Options {
		o := deltaOptions(f, incr, dest)
		o.Store, o.Chain = cs, []*catalog.Backup{incr, full}
		return o
	}
	want := filepath.Join(tmp, "fresh")
	if _, err := Run(context.Background(), opts(want)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(want, "base/1/16384")); string(b) != final {
		t.Fatal("the chain restore is wrong")
	}
	dest := filepath.Join(tmp, "data")
	if _, err := Run(context.Background(), opts(dest)); err != nil {
		t.Fatal(err)
	}
	fullPart := full.Parts[0].Key

	// Untouched: the full backup is not downloaded at all.
	cs.gets = map[string]int{}
	res, err := Run(context.Background(), opts(dest))
	if err != nil {
		t.Fatal(err)
	}
	diffTrees(t, treeOf(t, dest), treeOf(t, want))
	if cs.gets[fullPart] != 0 || cs.gets[incr.BlockMap.Key] != 1 {
		t.Errorf("untouched chain: gets %v, want no download of the full backup", cs.gets)
	}
	if res.Kept < 5 { // PG_VERSION, backup_label, pg_control, 16384, 16390
		t.Errorf("untouched chain: %+v", res)
	}

	// Blocks changed locally: 1 (from the full) and 2 (from the
	// incremental), and 16390 grew.
	fd, _ := os.OpenFile(filepath.Join(dest, "base/1/16384"), os.O_WRONLY, 0)
	fd.WriteAt([]byte(block('X')+block('Y')), pg.BlockSize)
	fd.Close()
	fd, _ = os.OpenFile(filepath.Join(dest, "base/1/16390"), os.O_WRONLY|os.O_APPEND, 0)
	fd.Write([]byte(block('q')))
	fd.Close()
	ino, _ := ctimeOf(t, filepath.Join(dest, "base/1/16384"))
	cs.gets = map[string]int{}
	if res, err = Run(context.Background(), opts(dest)); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, treeOf(t, dest), treeOf(t, want))
	if cs.gets[fullPart] != 1 {
		t.Errorf("changed chain: gets %v, want the full backup once", cs.gets)
	}
	if i, _ := ctimeOf(t, filepath.Join(dest, "base/1/16384")); i != ino {
		t.Error("16384 was replaced rather than written in place")
	}
	// 2 blocks of 16384, the manifest's postgresql.auto.conf, pg_control.
	if res.Bytes > 2*pg.BlockSize+8192+200 {
		t.Errorf("changed chain: wrote %d bytes", res.Bytes)
	}

	// Without a block map, the blocks are compared as they arrive: the
	// same result, the full backup downloaded.
	fd, _ = os.OpenFile(filepath.Join(dest, "base/1/16384"), os.O_WRONLY, 0)
	fd.WriteAt([]byte(block('X')), 0)
	fd.Close()
	noMap := *incr
	noMap.BlockMap = nil
	o := opts(dest)
	o.Backup, o.Chain = &noMap, []*catalog.Backup{&noMap, full}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, treeOf(t, dest), treeOf(t, want))
}
