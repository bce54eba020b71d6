package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// smallDisk mounts a tmpfs of size bytes for this test and returns its
// path. It needs root, which CI has; elsewhere the test fails, since a
// skipped fault test proves nothing.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := harness.TempDir(t)
	mnt := filepath.Join(dir, "small")
	if err := os.Mkdir(mnt, 0o777); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0777", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs (the full-disk tests run as root): %v: %s", size, err, out)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt
}

// TestDiskFull: a full disk during gbc-wal-restore and gbc-restore ends
// the command with the disk-full status (126 for restore_command, which
// must stop recovery; 6 on a standby and for gbc-restore), one line that
// says so, and nothing half-written that could be used: no WAL file under
// the requested name, no temporary left behind, and no pg_control in a
// half-restored data directory.
func TestDiskFull(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	b := bkBackup(t, pg, st)
	seg := pg.SwitchWAL(t)
	pg.WaitArchived(t, seg, 2*time.Minute)

	t.Run("gbc-wal-restore", func(t *testing.T) {
		mnt := smallDisk(t, "256k") // smaller than the 1 MiB segments
		for _, standby := range []bool{false, true} {
			want := 126
			if standby {
				want = 6
				if err := os.WriteFile(filepath.Join(mnt, "standby.signal"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			dest := filepath.Join(mnt, "RECOVERYXLOG")
			r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env, Dir: mnt},
				st.Argv("gbc-wal-restore", []string{"--prefetch", "0"}, bkServer, seg, dest)...)
			if r.ExitCode != want || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
				t.Errorf("standby %v: exit %d, stderr %q; want %d and one line", standby, r.ExitCode, r.Stderr, want)
			}
			entries, _ := os.ReadDir(mnt)
			for _, e := range entries {
				if e.Name() != "standby.signal" {
					t.Errorf("standby %v: %s left on the full disk", standby, e.Name())
				}
			}
		}
	})

	t.Run("gbc-restore", func(t *testing.T) {
		mnt := smallDisk(t, "8m") // far smaller than the data directory
		dest := filepath.Join(mnt, "data")
		r := pg.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv(harness.Bin(t, "gbc-restore"), nil, bkServer, b.ID, dest)...)
		if r.ExitCode != 6 || !strings.Contains(strings.ToLower(r.Stderr), "no space") {
			t.Errorf("gbc-restore onto a full disk: exit %d, stderr %q; want 6 and a line saying the disk is full", r.ExitCode, r.Stderr)
		}
		if _, err := os.Stat(filepath.Join(dest, "global", "pg_control")); !os.IsNotExist(err) {
			t.Errorf("a half-restored directory has global/pg_control, so it could be started: %v", err)
		}
	})
}
