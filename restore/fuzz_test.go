package restore

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPatchManifest: no backup_manifest, however damaged, panics the
// patcher.
func FuzzPatchManifest(f *testing.F) {
	f.Add([]byte("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{ \"Path\": \"backup_label\", \"Size\": 3, \"Last-Modified\": \"2026-11-24 21:48:42 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"00000000\" }\n],\n\"Manifest-Checksum\": \"00\"}\n"), []byte("abc"))
	f.Add([]byte(""), []byte(""))
	f.Fuzz(func(t *testing.T, manifest, content []byte) {
		_ = patchManifest(io.Discard, bytes.NewReader(manifest), "backup_label", content)
	})
}

// FuzzExtract: no tar stream panics the extractor or writes outside the
// directory it extracts into.
func FuzzExtract(f *testing.F) {
	var ok bytes.Buffer
	tw := tar.NewWriter(&ok)
	tw.WriteHeader(&tar.Header{Name: "base/1/", Typeflag: tar.TypeDir, Mode: 0o700})
	tw.WriteHeader(&tar.Header{Name: "base/1/1234", Typeflag: tar.TypeReg, Mode: 0o600, Size: 5})
	tw.Write([]byte("hello"))
	tw.WriteHeader(&tar.Header{Name: "pg_wal", Typeflag: tar.TypeSymlink, Linkname: "/elsewhere/pg_wal"})
	tw.Close()
	f.Add(ok.Bytes())
	var evil bytes.Buffer
	tw = tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o600, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	f.Add(evil.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "root")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		x := newExtractor(root, nil)
		_, _ = x.extract(bytes.NewReader(data), make([]byte, 32<<10))
		x.close()
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "root" && !strings.HasPrefix(e.Name(), ".") {
				t.Fatalf("extract wrote %s outside its root", e.Name())
			}
		}
	})
}
