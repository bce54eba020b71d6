package cloud_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

// mustOpenFile opens a file:// store in a fresh directory, without retries.
func mustOpenFile(t *testing.T) cloud.Store {
	t.Helper()
	s, err := cloud.Open(t.Context(), "file://"+t.TempDir(), cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFileMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "unmounted")
	s, err := cloud.Open(t.Context(), "file://"+root, cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// An unmounted backup volume must not read as "segment not archived".
	_, err = s.Get(ctx, "wals/x")
	if !errors.Is(err, cloud.ErrNotFound) || !errors.Is(err, cloud.ErrNoBucket) {
		t.Errorf("Get under a missing root: %v, want ErrNotFound and ErrNoBucket", err)
	}
	if err := s.List(ctx, "", func(cloud.Attrs) error { return errors.New("called") }); err != nil {
		t.Errorf("List of a missing root: %v, want nothing", err)
	}
	if err := s.Put(ctx, "a/b", cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatalf("first Put creates the root: %v", err)
	}
	_, err = s.Get(ctx, "wals/x")
	if !errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrNoBucket) {
		t.Errorf("Get of a missing key under an existing root: %v, want ErrNotFound only", err)
	}
}

// TestFileNoLitter checks that failed and cancelled puts leave no
// temporary files, and deletes leave no empty directories.
func TestFileNoLitter(t *testing.T) {
	dir := t.TempDir()
	s, err := cloud.Open(t.Context(), "file://"+dir, cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "keep/me", cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b/c/fails", cloud.OneShotBody(failingSource{}), cloud.PutOptions{}); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if err := s.Put(ctx, "keep/me", cloud.BytesBody([]byte("y")), cloud.PutOptions{IfNotExists: true}); !errors.Is(err, cloud.ErrExists) {
		t.Fatalf("IfNotExists on an existing key: %v", err)
	}
	if err := s.Put(ctx, "deep/er/obj", cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "deep/er/obj"); err != nil {
		t.Fatal(err)
	}
	var found []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(d.Name(), ".") || (d.IsDir() && rel == "deep") {
			found = append(found, rel)
		}
		return nil
	})
	if len(found) != 0 {
		t.Errorf("litter left in the store: %q", found)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the root itself was pruned: %v", err)
	}
}

type failingSource struct{}

func (failingSource) Read(p []byte) (int, error) { return 0, errors.New("disk on fire") }

// TestFileFormat pins the on-disk format documented in file.go, which
// operators rely on to read an object by hand (tail -c +4097).
func TestFileFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := cloud.Open(t.Context(), "file://"+dir, cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "wals/seg.zst", cloud.BytesBody([]byte("payload")), cloud.PutOptions{Metadata: map[string]string{"sha256": "abc"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "wals", "seg.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4096+7 || string(b[:8]) != "GBCOBJ1\n" || string(b[4096:]) != "payload" || !strings.Contains(string(b[:4096]), `"sha256":"abc"`) {
		t.Errorf("unexpected file layout: %q...", b[:64])
	}
}

func TestFileKeyDirectoryConflict(t *testing.T) {
	s := mustOpenFile(t)
	ctx := t.Context()
	if err := s.Put(ctx, "a/b", cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "a/b/c"} {
		for _, ifNotExists := range []bool{false, true} {
			err := s.Put(ctx, key, cloud.BytesBody([]byte("x")), cloud.PutOptions{IfNotExists: ifNotExists})
			if err == nil || errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrExists) || !strings.Contains(err.Error(), "both an object and a prefix") {
				t.Errorf("Put(%q, IfNotExists=%v) = %v, want a plain conflict error", key, ifNotExists, err)
			}
		}
	}
}
