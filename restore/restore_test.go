package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

type entry struct {
	name, link string
	body       string
	dir        bool
	mode       int64
}

var mtime = time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)

func makeTar(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o600
		}
		switch {
		case e.dir:
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o700
		case e.link != "":
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t *testing.T, data []byte) []byte {
	t.Helper()
	c, _ := compress.Lookup("zstd")
	var out bytes.Buffer
	w, err := c.NewWriter(&out, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// manifestFor renders a PostgreSQL-format backup_manifest of files.
func manifestFor(files map[string]string) []byte {
	var b strings.Builder
	b.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n")
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		sum, _ := fileChecksum("CRC32C", []byte(files[n]))
		fmt.Fprintf(&b, `{ "Path": %q, "Size": %d, "Last-Modified": "2026-11-24 21:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": %q }`, n, len(files[n]), sum)
		if i < len(names)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n")
	body := b.String()
	return []byte(fmt.Sprintf("%s\"Manifest-Checksum\": \"%s\"}\n", body, sha([]byte(body))))
}

type fixture struct {
	store  cloud.Store
	layout catalog.Layout
	backup *catalog.Backup
	// stored holds what was put under each key, for tests that damage it.
	stored map[string][]byte
}

// put stores data under key.
func (f *fixture) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := f.store.Put(context.Background(), key, cloud.BytesBody(data), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f.stored[key] = data
}

// newFixture stores a backup with a data part split in two and one
// tablespace part.
func newFixture(t *testing.T, tsLocation string) *fixture {
	t.Helper()
	s, err := cloud.Open(context.Background(), "file://"+t.TempDir(), cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &fixture{store: s, layout: catalog.Layout{Server: "main"}, stored: map[string][]byte{}}
	tsMap := "16384 " + tsLocation + "\n"
	files := map[string]string{
		"backup_label":                    "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
		"tablespace_map":                  tsMap,
		"global/pg_control":               "control",
		"base/1/1259":                     strings.Repeat("x", 100000),
		"postgresql.auto.conf":            "# Do not edit\n",
		"pg_tblspc/16384/PG_15_1/5/16385": "tsdata",
	}
	parts := [][]entry{
		{{name: "base", dir: true}, {name: "base/1", dir: true}, {name: "base/1/1259", body: files["base/1/1259"], mode: 0o640}},
		{{name: "global/", dir: true}, {name: "global/pg_control", body: files["global/pg_control"]},
			{name: "backup_label", body: files["backup_label"]}, {name: "tablespace_map", body: tsMap},
			{name: "postgresql.auto.conf", body: files["postgresql.auto.conf"]},
			{name: "pg_wal", dir: true}, {name: "pg_tblspc", dir: true}},
	}
	id := "20261124T210000Z"
	b := &catalog.Backup{
		Format: 1, ID: id, Server: "main", Status: catalog.StatusDone,
		Tablespaces: []catalog.Tablespace{{OID: "16384", Name: "ts1", Location: tsLocation}},
	}
	for i, p := range parts {
		stored := zst(t, makeTar(t, p))
		key := f.layout.PartKey(id, "", i, "zst")
		f.put(t, key, stored)
		b.Parts = append(b.Parts, catalog.Part{Key: key, StoredSize: int64(len(stored)), SHA256: sha(stored)})
	}
	stored := zst(t, makeTar(t, []entry{{name: "PG_15_1", dir: true}, {name: "PG_15_1/5/16385", body: "tsdata"}}))
	key := f.layout.PartKey(id, "16384", 0, "zst")
	f.put(t, key, stored)
	b.Parts = append(b.Parts, catalog.Part{Key: key, Tablespace: "16384", StoredSize: int64(len(stored)), SHA256: sha(stored)})

	man := zst(t, manifestFor(files))
	b.ManifestKey = f.layout.ManifestKey(id, "zst")
	b.ManifestSHA256, b.ManifestStoredSize = sha(man), int64(len(man))
	f.put(t, b.ManifestKey, man)
	f.backup = b
	return f
}

func (f *fixture) options(dest string) Options {
	return Options{Store: f.store, Layout: f.layout, Backup: f.backup, Dest: dest, Jobs: 3,
		Recovery: &RecoveryConfig{WALRestore: "/bin/gbc-wal-restore", StoreURL: "file:///s", Server: "main", BackupID: f.backup.ID}}
}

func TestRunRelocatesTablespaceAndKeepsManifestValid(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "orig-ts"))
	dest := filepath.Join(tmp, "data")
	newTS := filepath.Join(tmp, "new ts")
	o := f.options(dest)
	o.Relocate = map[string]string{"ts1": newTS}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 6 || res.StoredBytes == 0 {
		t.Errorf("result %+v", res)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(filepath.Join(dest, "global/pg_control")); got != "control" {
		t.Errorf("pg_control = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dest, heldControl)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("held pg_control left behind: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dest, "base/1/1259"))
	if err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("base/1/1259: %v %v %v", fi.Mode(), fi.ModTime(), err)
	}
	if got := read(filepath.Join(dest, "pg_tblspc/16384/PG_15_1/5/16385")); got != "tsdata" {
		t.Errorf("tablespace file through the link = %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(dest, "pg_tblspc/16384")); l != newTS {
		t.Errorf("pg_tblspc/16384 -> %q, want %q", l, newTS)
	}
	if _, err := os.Stat(filepath.Join(tmp, "orig-ts")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the original tablespace location was written although relocated")
	}
	newMap := read(filepath.Join(dest, "tablespace_map"))
	if newMap != "16384 "+newTS+"\n" {
		t.Errorf("tablespace_map = %q", newMap)
	}
	for _, d := range []string{"pg_wal/archive_status", "pg_replslot", "pg_notify"} {
		if fi, err := os.Stat(filepath.Join(dest, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v", fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dest, "recovery.signal")); err != nil {
		t.Error(err)
	}
	conf := read(filepath.Join(dest, "postgresql.auto.conf"))
	if !strings.HasPrefix(conf, "# Do not edit\n") || !strings.Contains(conf, "restore_command = '/bin/gbc-wal-restore file:///s main %f %p'") {
		t.Errorf("postgresql.auto.conf:\n%s", conf)
	}

	// The restored manifest must describe the rewritten map and carry a
	// valid checksum, as pg_verifybackup checks it.
	man := read(filepath.Join(dest, "backup_manifest"))
	sum, _ := fileChecksum("CRC32C", []byte(newMap))
	if !strings.Contains(man, fmt.Sprintf(`{ "Path": "tablespace_map", "Size": %d, "Last-Modified": "2026-11-24 21:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": %q }`+"\n", len(newMap), sum)) {
		t.Errorf("manifest entry not updated:\n%s", man)
	}
	i := strings.LastIndex(strings.TrimSuffix(man, "\n"), "\n")
	if want := fmt.Sprintf("\"Manifest-Checksum\": \"%s\"}\n", sha([]byte(man[:i+1]))); man[i+1:] != want {
		t.Errorf("manifest checksum line %q, want %q", man[i+1:], want)
	}
}

func TestRunUnrelocatedKeepsManifestBytes(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	o := f.options(filepath.Join(tmp, "data"))
	o.Recovery = nil
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(tmp, "data", "backup_manifest"))
	rc, _ := f.store.Get(context.Background(), f.backup.ManifestKey)
	c, _ := compress.Lookup("zstd")
	dr, _ := c.NewReader(rc)
	want, _ := io.ReadAll(dr)
	if !bytes.Equal(got, want) {
		t.Error("the manifest changed although no tablespace moved")
	}
	if _, err := os.Stat(filepath.Join(tmp, "data", "recovery.signal")); !errors.Is(err, os.ErrNotExist) {
		t.Error("recovery.signal written with no recovery config")
	}
	if l, _ := os.Readlink(filepath.Join(tmp, "data", "pg_tblspc/16384")); l != filepath.Join(tmp, "ts") {
		t.Errorf("link %q", l)
	}
}

func TestRunRefusesNonEmptyDirs(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	dest := filepath.Join(tmp, "data")
	os.MkdirAll(dest, 0o700)
	os.WriteFile(filepath.Join(dest, "PG_VERSION"), []byte("15\n"), 0o600)
	_, err := Run(context.Background(), f.options(dest))
	var ne *NotEmptyError
	if !errors.As(err, &ne) {
		t.Fatalf("want NotEmptyError, got %v", err)
	}
	// A non-empty tablespace location is refused before the data
	// directory is created.
	os.MkdirAll(filepath.Join(tmp, "ts"), 0o700)
	os.WriteFile(filepath.Join(tmp, "ts", "x"), nil, 0o600)
	_, err = Run(context.Background(), f.options(filepath.Join(tmp, "data2")))
	if !errors.As(err, &ne) || ne.Dir != filepath.Join(tmp, "ts") {
		t.Fatalf("want NotEmptyError on the tablespace, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "data2")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused restore created its data directory")
	}
}

func TestRunChecksumMismatch(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	p := f.backup.Parts[1]
	f.backup.Parts[1].SHA256 = strings.Repeat("0", 64)
	dest := filepath.Join(tmp, "data")
	_, err := Run(context.Background(), f.options(dest))
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), p.Key) || !strings.Contains(err.Error(), "unusable") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, "global/pg_control")); !errors.Is(err, os.ErrNotExist) {
		t.Error("pg_control in place after a failed restore: PostgreSQL could start it")
	}
}

func TestRunTruncatedPart(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	k := f.backup.Parts[0].Key
	f.put(t, k, f.stored[k][:len(f.stored[k])/2])
	_, err := Run(context.Background(), f.options(filepath.Join(tmp, "data")))
	if err == nil || !strings.Contains(err.Error(), k) {
		t.Fatalf("error %v", err)
	}
}

func TestRunUnknownTablespace(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	o := f.options(filepath.Join(tmp, "data"))
	o.Relocate = map[string]string{"nope": "/x"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "ts1") {
		t.Fatalf("error %v", err)
	}
	o.Relocate = map[string]string{"16384": "relative/path"}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("error %v", err)
	}
	o.Relocate = map[string]string{"16384": filepath.Join(tmp, "data", "ts")}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("error %v", err)
	}
}

func TestExtractRejectsEscapes(t *testing.T) {
	for what, entries := range map[string][]entry{
		"dot-dot":          {{name: "../evil", body: "x"}},
		"absolute":         {{name: "/etc/evil", body: "x"}},
		"nested dot-dot":   {{name: "base/../../evil", body: "x"}},
		"through symlink":  {{name: "link", link: "/tmp"}, {name: "link/evil", body: "x"}},
		"relative symlink": {{name: "up", link: "../.."}, {name: "up/evil", body: "x"}},
		"duplicate file":   {{name: "a", body: "1"}, {name: "a", body: "2"}},
	} {
		t.Run(what, func(t *testing.T) {
			outer := t.TempDir()
			dir := filepath.Join(outer, "in")
			os.Mkdir(dir, 0o700)
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			x := newExtractor(root, nil)
			_, err = x.extract(bytes.NewReader(makeTar(t, entries)), make([]byte, 4096))
			if err == nil {
				t.Fatal("extract accepted it")
			}
			if _, err := os.Stat(filepath.Join(outer, "evil")); err == nil {
				t.Fatal("a file was written outside the directory")
			}
		})
	}
}

func TestEntryName(t *testing.T) {
	for in, want := range map[string]string{"./base/1": "base/1", "global/": "global", ".": ".", "./": ".", "a//b": "a/b"} {
		if got, err := entryName(in); err != nil || got != want {
			t.Errorf("entryName(%q) = %q, %v", in, got, err)
		}
	}
}

func TestRewriteTablespaceMap(t *testing.T) {
	got, err := rewriteTablespaceMap([]byte("16384 /old/a\\\\b\n16385 /x\n"), []Placement{{OID: "16384", Location: `/new/with\back`}, {OID: "16385", Location: "/x"}})
	if err != nil || string(got) != "16384 /new/with\\\\back\n16385 /x\n" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := rewriteTablespaceMap([]byte("99 /a\n"), nil); err == nil {
		t.Fatal("an unknown OID was accepted")
	}
}

func TestFileChecksumCRC32C(t *testing.T) {
	// CRC32C("123456789") is 0xE3069283; PostgreSQL prints the value's
	// little-endian bytes.
	if got, _ := fileChecksum("CRC32C", []byte("123456789")); got != "839206e3" {
		t.Fatalf("got %s", got)
	}
}

// flakyStore breaks the first download of key after half its bytes.
type flakyStore struct {
	cloud.Store
	key   string
	size  int
	mu    sync.Mutex
	broke int
}

type brokenReader struct {
	r    io.ReadCloser
	left int
}

func (b *brokenReader) Close() error { return b.r.Close() }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

func (f *flakyStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := f.Store.Get(ctx, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || key != f.key || f.broke > 0 {
		return rc, err
	}
	f.broke++
	return &brokenReader{r: rc, left: f.size / 2}, nil
}

func TestRunRetriesABrokenDownload(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	// The part with pg_control and several files, stored uncompressed so
	// that its first attempt writes files before it breaks, which the
	// second must not collide with.
	p := &f.backup.Parts[1]
	c, _ := compress.Lookup("zstd")
	dr, _ := c.NewReader(bytes.NewReader(f.stored[p.Key]))
	raw, _ := io.ReadAll(dr)
	p.Key = strings.TrimSuffix(p.Key, ".zst")
	p.SHA256, p.StoredSize = sha(raw), int64(len(raw))
	f.put(t, p.Key, raw)
	fs := &flakyStore{Store: f.store, key: p.Key, size: len(raw)}
	o := f.options(filepath.Join(tmp, "data"))
	o.Store = fs
	var (
		mu     sync.Mutex
		warned []string
	)
	o.Events = func(ev Event) {
		if r, ok := ev.(PartRetry); ok {
			mu.Lock()
			defer mu.Unlock()
			warned = append(warned, fmt.Sprintf("part %s: %v; attempt %d of %d", r.Key, r.Err, r.Attempt, r.Attempts))
		}
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if fs.broke != 1 || len(warned) != 1 || !strings.Contains(warned[0], "connection reset") || !strings.Contains(warned[0], "download") ||
		!strings.Contains(warned[0], "attempt 2 of 3") {
		t.Fatalf("broke %d times, warnings %q", fs.broke, warned)
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "data", "global/pg_control")); err != nil || string(b) != "control" {
		t.Fatalf("pg_control %q %v", b, err)
	}
}
