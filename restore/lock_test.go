package restore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

// gatedStore holds every Get until open is closed, and says when the
// first one arrived: a restore caught in the middle of its download.
type gatedStore struct {
	cloud.Store
	arrived chan struct{}
	once    sync.Once
	open    chan struct{}
}

func (s *gatedStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s.once.Do(func() { close(s.arrived) })
	select {
	case <-s.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Get(ctx, key)
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// Two restores into the same empty directory: the second refuses with a
// BusyError and touches nothing, the first completes, and no lock file is
// left in the restored directory.
func TestRunConcurrentRestores(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exists bool // DEST_DIR exists, empty, before both start
	}{{"missing dir", false}, {"empty dir", true}} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			f := newFixture(t, filepath.Join(tmp, "ts"))
			dest := filepath.Join(tmp, "data")
			if tc.exists {
				os.Mkdir(dest, 0o700)
			}
			gate := &gatedStore{Store: f.store, arrived: make(chan struct{}), open: make(chan struct{})}
			first := f.options(dest)
			first.Store = gate
			done := make(chan error, 1)
			go func() { _, err := Run(context.Background(), first); done <- err }()
			<-gate.arrived // the first restore holds the directory

			before := listDir(t, dest)
			_, err := Run(context.Background(), f.options(dest))
			var be *BusyError
			if !errors.As(err, &be) || be.Dir != dest {
				t.Errorf("second restore: %v, want a BusyError for %s", err, dest)
			}
			if after := listDir(t, dest); len(after) != len(before) {
				t.Errorf("the refused restore changed %s: %q, then %q", dest, before, after)
			}

			close(gate.open)
			if err := <-done; err != nil {
				t.Fatalf("first restore: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dest, LockFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lock file left in the restored directory: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dest, "global/pg_control")); err != nil {
				t.Errorf("the first restore is incomplete: %v", err)
			}
			// Once it is done, the directory is another restore's
			// ordinary "not empty".
			_, err = Run(context.Background(), f.options(dest))
			var ne *NotEmptyError
			if !errors.As(err, &ne) {
				t.Errorf("restore into the finished directory: %v, want NotEmptyError", err)
			}
			if _, err := os.Stat(filepath.Join(dest, LockFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused restore left a lock file: %v", err)
			}
		})
	}
}

// A lock file that nobody holds (a restore killed right after taking it)
// does not stop a restore into an otherwise empty directory, and a failed
// restore does not leave its lock behind.
func TestRunStaleLockAndFailure(t *testing.T) {
	tmp := t.TempDir()
	f := newFixture(t, filepath.Join(tmp, "ts"))
	dest := filepath.Join(tmp, "data")
	os.Mkdir(dest, 0o700)
	os.WriteFile(filepath.Join(dest, LockFile), nil, 0o600)
	if _, err := Run(context.Background(), f.options(dest)); err != nil {
		t.Fatalf("restore over a stale lock file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dest, LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}

	dest2 := filepath.Join(tmp, "data2")
	os.RemoveAll(filepath.Join(tmp, "ts"))
	o := f.options(dest2)
	o.Backup.Parts[0].SHA256 = "00"
	if _, err := Run(context.Background(), o); err == nil {
		t.Fatal("restore with a bad checksum succeeded")
	}
	if _, err := os.Stat(filepath.Join(dest2, LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed restore left its lock file: %v", err)
	}
}
