package keepcmd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

// runCmd runs gbc-backup-keep with args in this process and returns its
// exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	saved := [2]*os.File{os.Stdout, os.Stderr}
	var files [2]*os.File
	for i := range files {
		f, err := os.CreateTemp(t.TempDir(), "std")
		if err != nil {
			t.Fatal(err)
		}
		files[i] = f
	}
	os.Stdout, os.Stderr = files[0], files[1]
	code := cli.Run([]*cli.Command{Command()}, append([]string{"gbc-backup-keep"}, args...))
	os.Stdout, os.Stderr = saved[0], saved[1]
	var out [2]string
	for i, f := range files {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		out[i] = string(b)
	}
	return code, out[0], out[1]
}

func synth(t *testing.T, s cloud.Store, l catalog.Layout, ago time.Duration, parent string) *catalog.Backup {
	t.Helper()
	ctx := context.Background()
	begin := time.Now().UTC().Add(-ago).Truncate(time.Second)
	b := &catalog.Backup{ID: begin.Format(catalog.IDLayout), Server: l.Server, Status: catalog.StatusDone, BeginTime: begin, ParentID: parent}
	if parent != "" {
		b.Type = catalog.TypeIncr
	}
	b.ManifestKey = l.ManifestKey(b.ID, "zst")
	if err := s.Put(ctx, b.ManifestKey, cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := catalog.Save(ctx, s, l, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// A keep on an incremental backup is written on it alone; the commands
// say what it holds, and --release frees it all.
func TestKeepChain(t *testing.T) {
	ctx := context.Background()
	url := "file://" + t.TempDir()
	s, err := cloud.Open(ctx, url, cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := catalog.Layout{Server: "main"}
	f1 := synth(t, s, l, 3*time.Hour, "")
	i1 := synth(t, s, l, 2*time.Hour, f1.ID)
	i2 := synth(t, s, l, 1*time.Hour, i1.ID)
	broken := synth(t, s, l, 30*time.Minute, "20200101T000000Z")
	keepOf := func(id string) string {
		b, err := catalog.Load(ctx, s, l, id)
		if err != nil {
			t.Fatal(err)
		}
		return b.Keep
	}

	code, _, stderr := runCmd(t, "--target", "standalone", url, "main", i2.ID)
	if code != 0 || !strings.Contains(stderr, "now kept (standalone), with the 2 backup(s) it is built on ("+i1.ID+", "+f1.ID+")") {
		t.Errorf("keep of an incremental: exit %d, stderr %q", code, stderr)
	}
	if keepOf(i2.ID) != catalog.KeepStandalone || keepOf(i1.ID) != "" || keepOf(f1.ID) != "" {
		t.Errorf("keeps: %q %q %q, want the annotation on %s only", keepOf(f1.ID), keepOf(i1.ID), keepOf(i2.ID), i2.ID)
	}
	code, stdout, stderr := runCmd(t, "--status", url, "main", f1.ID)
	if code != 0 || stdout != "none\n" || !strings.Contains(stderr, "stays with kept backup "+i2.ID) {
		t.Errorf("status of a backup a kept one is built on: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runCmd(t, "--release", url, "main", f1.ID)
	if code != 0 || !strings.Contains(stderr, "release that one") || keepOf(i2.ID) != catalog.KeepStandalone {
		t.Errorf("release of a backup held by a kept one: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "--release", url, "main", i2.ID)
	if code != 0 || keepOf(i2.ID) != "" || !strings.Contains(stderr, "and to the 2 backup(s) it is built on") {
		t.Errorf("release of the incremental: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "--target", "full", url, "main", f1.ID)
	if code != 0 || !strings.Contains(stderr, "with the 2 backup(s) built on it ("+i2.ID+", "+i1.ID+")") {
		t.Errorf("keep of a full with dependents: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCmd(t, "--target", "full", url, "main", broken.ID)
	if code != cli.ExitConflict || !strings.Contains(stderr, "cannot be restored") || keepOf(broken.ID) != "" {
		t.Errorf("keep of a backup whose parent is missing: exit %d, stderr %q", code, stderr)
	}
}
