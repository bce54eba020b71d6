package prune

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/retention"
)

// fileStoreAt opens a file:// store in a fresh directory and returns it
// with the directory, so that a test can plant what a killed process
// leaves and age files.
func fileStoreAt(t *testing.T) (cloud.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := cloud.Open(context.Background(), "file://"+dir, cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// age sets the mtime of every file under dir/prefix to t, as if written
// then.
func age(tb testing.TB, dir, prefix string, t time.Time) {
	tb.Helper()
	err := filepath.Walk(filepath.Join(dir, filepath.FromSlash(prefix)), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// plantTemp leaves the temporary file of a Put of key that was killed,
// last written at mtime, and returns its path.
func plantTemp(t *testing.T, dir, key string, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(filepath.Dir(key)), "."+filepath.Base(key)+".tmp-123")
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, 1000), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// A backup killed long before --orphan-age, whose heartbeat stopped
// (its record says how often it beat), is dead: its WAL is no longer
// protected and it is cleaned up. A backup whose heartbeat is recent keeps
// its WAL.
func TestRunHeartbeatStopped(t *testing.T) {
	for _, tc := range []struct {
		name string
		beat time.Duration // ago
		dead bool
	}{
		{"stopped", 20 * time.Minute, true},
		{"beating", 4 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, dir := fileStoreAt(t)
			now := time.Now()
			done := backup(t, s, now.Add(-day), catalog.StatusDone, 1, 10, 11, "")
			started := backup(t, s, now.Add(-3*time.Hour), catalog.StatusStarted, 1, 5, 5, "")
			started.EndTime, started.EndWAL, started.EndLSN = time.Time{}, "", ""
			started.Heartbeat = now.Add(-tc.beat).UTC()
			started.HeartbeatInterval = 300
			if err := catalog.Save(ctx, s, layout, started); err != nil {
				t.Fatal(err)
			}
			// Its objects were written when the heartbeat last was.
			age(t, dir, layout.BackupRoot(started.ID), now.Add(-tc.beat))
			wals(t, s, 1, 1, 12)
			p, _ := retention.ParsePolicy("REDUNDANCY 1")
			rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			left := map[string]bool{}
			for _, k := range keys(t, s, layout.WALRoot()) {
				left[k] = true
			}
			for n := uint32(1); n <= 12; n++ {
				k := layout.WALKey(seg(1, n), "zst")
				want := n >= 10 || (!tc.dead && n >= 5)
				if left[k] != want {
					t.Errorf("WAL %d present %v, want %v", n, left[k], want)
				}
			}
			gone := len(keys(t, s, layout.BackupRoot(started.ID))) == 0
			if gone != tc.dead {
				t.Errorf("STARTED backup whose heartbeat was %s ago: deleted %v, want %v (report %+v)", tc.beat, gone, tc.dead, rep.Deleted)
			}
			if len(keys(t, s, layout.BackupRoot(done.ID))) == 0 {
				t.Error("the DONE backup was deleted")
			}
		})
	}
}

// The leftovers of killed uploads go: those of the backups deleted now,
// and old ones elsewhere, except under a backup in progress. --dry-run
// counts them and removes nothing.
func TestRunSweepsStaleUploads(t *testing.T) {
	ctx := context.Background()
	s, dir := fileStoreAt(t)
	now := time.Now()
	old := backup(t, s, now.Add(-3*day), catalog.StatusDone, 1, 2, 3, "")
	kept := backup(t, s, now.Add(-day), catalog.StatusDone, 1, 5, 6, "")
	running := backup(t, s, now.Add(-2*day), catalog.StatusStarted, 1, 5, 5, "")
	running.Heartbeat, running.HeartbeatInterval = now.UTC(), 300
	if err := catalog.Save(ctx, s, layout, running); err != nil {
		t.Fatal(err)
	}
	twoDaysAgo := now.Add(-2 * day)
	gone := []string{
		plantTemp(t, dir, layout.PartKey(old.ID, "", 2, "zst"), now), // its backup is deleted now
		plantTemp(t, dir, layout.WALKey(seg(1, 9), "zst"), twoDaysAgo),
	}
	stay := []string{
		plantTemp(t, dir, layout.PartKey(running.ID, "", 7, "zst"), twoDaysAgo), // a slow part of a live backup
		plantTemp(t, dir, layout.WALKey(seg(1, 10), "zst"), now),                // an archive call in progress
		plantTemp(t, dir, layout.PartKey(kept.ID, "", 2, "zst"), now),
		plantTemp(t, dir, "other/wals/x", twoDaysAgo), // another server's
	}
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	for _, dry := range []bool{true, false} {
		rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Stale.What != "temporary files" || rep.Stale.Count != 2 || rep.Stale.Bytes != 2000 {
			t.Errorf("dry run %v: stale %+v, want 2 temporary files of 2000 bytes", dry, rep.Stale)
		}
		for _, f := range gone {
			if _, err := os.Stat(f); dry != (err == nil) {
				t.Errorf("dry run %v: %s: %v", dry, f, err)
			}
		}
	}
	for _, f := range stay {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was removed: %v", f, err)
		}
	}
}

// A store that refuses to list or abort uploads gets a note, and the
// deletion of backups and WAL stands.
func TestRunSweepRefused(t *testing.T) {
	ctx := context.Background()
	s := refusingSweep{openStore(t)}
	now := time.Now()
	fourBackups(t, s, now)
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	noted := slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "stale uploads not cleaned up") })
	if len(rep.Deleted) == 0 || !noted {
		t.Errorf("report %+v, want deletions and a note about stale uploads", rep)
	}
}

type refusingSweep struct{ cloud.Store }

func (refusingSweep) SweepStale(context.Context, string, cloud.SweepOptions) (cloud.SweepResult, error) {
	return cloud.SweepResult{What: "multipart uploads"}, errors.Join(cloud.ErrPermission, errors.New("AccessDenied"))
}
