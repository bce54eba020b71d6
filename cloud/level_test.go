package cloud_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

func TestListLevel(t *testing.T) {
	dir := t.TempDir()
	fileURL := "file://" + dir
	stores := map[string]func() cloud.Store{
		"mem": cloud.NewMem,
		"file": func() cloud.Store {
			s, err := cloud.Open(t.Context(), fileURL, cloud.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"file-prefix": func() cloud.Store {
			s, err := cloud.Open(t.Context(), "file://"+t.TempDir()+"/sub/root", cloud.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"mem-prefix": func() cloud.Store { return cloud.WithPrefix(cloud.NewMem(), "p/q") },
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			s := open()
			defer s.Close()
			for _, k := range []string{"a/b/c", "a/b/d", "a/e", "a.x", "a0/f", "b"} {
				if err := s.Put(ctx, k, cloud.BytesBody([]byte("data")), cloud.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if name == "file" {
				// A directory without objects (left by a crashed Put) is
				// no entry.
				if err := os.MkdirAll(filepath.Join(dir, "empty", "deeper"), 0o750); err != nil {
					t.Fatal(err)
				}
			}
			level := func(prefix string) []string {
				var got []string
				err := cloud.ListLevel(ctx, s, prefix, func(a cloud.Attrs) error {
					if a.Key[len(a.Key)-1] != '/' && a.Size != 4 {
						t.Errorf("%s: size %d, want 4", a.Key, a.Size)
					}
					got = append(got, a.Key)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got, want := level(""), []string{"a.x", "a/", "a0/", "b"}; !slices.Equal(got, want) {
				t.Errorf("level \"\": %q, want %q", got, want)
			}
			if got, want := level("a/"), []string{"a/b/", "a/e"}; !slices.Equal(got, want) {
				t.Errorf("level a/: %q, want %q", got, want)
			}
			if got := level("none/"); len(got) != 0 {
				t.Errorf("level none/: %q, want nothing", got)
			}
			if err := cloud.ListLevel(ctx, s, "a", func(cloud.Attrs) error { return nil }); err == nil {
				t.Error("a prefix without a trailing slash was accepted")
			}
		})
	}
}
