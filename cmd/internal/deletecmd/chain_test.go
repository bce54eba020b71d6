package deletecmd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/wal"
)

// runCmd runs argv in this process and returns its exit code, stdout and
// stderr (commands write to os.Stdout and os.Stderr).
func runCmd(t *testing.T, cmd *cli.Command, argv ...string) (int, string, string) {
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
	code := cli.Run([]*cli.Command{cmd}, argv)
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

// synth stores a DONE backup that began ago before now, built on parent
// when parent is not "", with two objects besides its record.
func synth(t *testing.T, s cloud.Store, l catalog.Layout, ago time.Duration, parent string, seg uint64) *catalog.Backup {
	t.Helper()
	ctx := context.Background()
	begin := time.Now().UTC().Add(-ago).Truncate(time.Second)
	b := &catalog.Backup{
		Format: catalog.FormatVersion, ID: begin.Format(catalog.IDLayout), Server: l.Server, Status: catalog.StatusDone, Timeline: 1,
		WALSegmentSize: wal.DefaultSegmentSize, BeginTime: begin, EndTime: begin.Add(time.Hour),
		BeginWAL: wal.SegmentFromSegNo(1, seg, wal.DefaultSegmentSize).String(), EndWAL: wal.SegmentFromSegNo(1, seg+1, wal.DefaultSegmentSize).String(),
		BeginLSN: wal.FormatLSN(seg*wal.DefaultSegmentSize + 0x28), EndLSN: wal.FormatLSN((seg+1)*wal.DefaultSegmentSize + 0x100),
		Type: catalog.TypeFull, ParentID: parent,
	}
	if parent != "" {
		b.Type = catalog.TypeIncr
	}
	b.ManifestKey = l.ManifestKey(b.ID, "zst")
	b.Parts = []catalog.Part{{Key: l.PartKey(b.ID, "", 0, "zst")}}
	for _, k := range []string{b.ManifestKey, b.Parts[0].Key} {
		if err := s.Put(ctx, k, cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := catalog.Save(ctx, s, l, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func listBase(t *testing.T, s cloud.Store, l catalog.Layout) []string {
	t.Helper()
	var out []string
	if err := s.List(context.Background(), l.BaseRoot(), func(a cloud.Attrs) error {
		out = append(out, a.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Deleting a backup others are built on is refused (exit 4) with one line
// naming all of them, unless --with-dependents, which --dry-run previews.
func TestDeleteWithDependents(t *testing.T) {
	url := "file://" + t.TempDir()
	s, err := cloud.Open(context.Background(), url, cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := catalog.Layout{Server: "main"}
	f1 := synth(t, s, l, 4*24*time.Hour, "", 2)
	i1 := synth(t, s, l, 3*24*time.Hour, f1.ID, 5)
	i2 := synth(t, s, l, 2*24*time.Hour, i1.ID, 8)
	f2 := synth(t, s, l, 1*24*time.Hour, "", 11)
	all := listBase(t, s, l)

	code, _, stderr := runCmd(t, Command(), "gbc-backup-delete", "--backup-id", f1.ID, url, "main")
	if code != cli.ExitConflict || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, i1.ID+", "+i2.ID) || !strings.Contains(stderr, "--with-dependents") {
		t.Errorf("delete of a full with dependents: exit %d, stderr %q; want exit %d and one line naming %s and %s", code, stderr, cli.ExitConflict, i1.ID, i2.ID)
	}
	if code, _, stderr := runCmd(t, Command(), "gbc-backup-delete", "--with-dependents", "--retention-policy", "REDUNDANCY 1", url, "main"); code != cli.ExitUsage {
		t.Errorf("--with-dependents with a policy: exit %d (%s)", code, stderr)
	}
	code, stdout, stderr := runCmd(t, Command(), "gbc-backup-delete", "--dry-run", "--with-dependents", "--backup-id", f1.ID, url, "main")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	t.Logf("gbc-backup-delete --dry-run:\n%s%s", stdout, stderr)
	for _, id := range []string{i2.ID, i1.ID} {
		if !strings.Contains(stdout, id) || !strings.Contains(stdout, "requested, built on a deleted backup "+f1.ID) {
			t.Errorf("dry run does not show %s as a dependent:\n%s", id, stdout)
		}
	}
	if strings.Index(stdout, i2.ID) > strings.Index(stdout, i1.ID) || strings.Index(stdout, i1.ID) > strings.Index(stdout, f1.ID+"  ") {
		t.Errorf("dry run does not list children first:\n%s", stdout)
	}
	if got := listBase(t, s, l); len(got) != len(all) {
		t.Fatalf("a refusal or a dry run changed the store: %v", got)
	}
	if code, _, stderr := runCmd(t, Command(), "gbc-backup-delete", "--with-dependents", "--backup-id", f1.ID, url, "main"); code != 0 {
		t.Fatalf("delete with dependents: exit %d: %s", code, stderr)
	}
	for _, k := range listBase(t, s, l) {
		if !strings.Contains(k, f2.ID) {
			t.Errorf("left %s; only %s should remain", k, f2.ID)
		}
	}
}
