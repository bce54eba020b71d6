package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/retention/prune"
)

// What crashed processes leave, end to end: a backup killed long before
// --orphan-age (its heartbeat stopped), S3 multipart uploads and file://
// temporary files that no listing shows; and the bound on --jobs.

// ageFiles sets the mtime of every file under dir to t, as if written then.
func ageFiles(tb testing.TB, dir string, t time.Time) {
	tb.Helper()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// A backup whose heartbeat stopped 20 minutes ago (three of its 5-minute
// intervals and more) is dead with the default --orphan-age of a day: its
// record and parts go, and so does the WAL it pinned. One whose heartbeat
// is 5 minutes old is alive and keeps its WAL.
func TestRetentionHeartbeatStopped(t *testing.T) {
	for _, tc := range []struct {
		name string
		beat time.Duration
		dead bool
	}{
		{"stopped", 20 * time.Minute, true},
		{"beating", 5 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// file://, whose objects' times a test can set: a killed
			// backup's objects are as old as its last heartbeat.
			st := harness.NewStore(t, "file")
			s := openRetStore(t, st)
			now := time.Now().UTC().Truncate(time.Second)
			synthBackup(t, s, now.Add(-24*time.Hour), catalog.StatusDone, 1, 10, 11)
			started := synthBackup(t, s, now.Add(-3*time.Hour), catalog.StatusStarted, 1, 5, 5)
			started.Heartbeat, started.HeartbeatInterval = now.Add(-tc.beat), 300
			if err := catalog.Save(context.Background(), s, retLayout, started); err != nil {
				t.Fatal(err)
			}
			ageFiles(t, filepath.Join(st.Bucket, filepath.FromSlash(retLayout.BackupRoot(started.ID))), now.Add(-tc.beat))
			for n := uint64(1); n <= 12; n++ {
				retPut(t, s, retLayout.WALKey(retSeg(1, n), "zst"), "wal")
			}
			out := mustGBC(t, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
			t.Logf("gbc-backup-delete:\n%s", out)
			left := map[string]bool{}
			for _, k := range listKeys(t, s, retLayout.WALRoot()) {
				left[k] = true
			}
			for n := uint64(1); n <= 12; n++ {
				want := n >= 10 || (!tc.dead && n >= 5)
				if k := retLayout.WALKey(retSeg(1, n), "zst"); left[k] != want {
					t.Errorf("WAL %d present %v, want %v", n, left[k], want)
				}
			}
			if gone := len(listKeys(t, s, retLayout.BackupRoot(started.ID))) == 0; gone != tc.dead {
				t.Errorf("STARTED backup with a heartbeat %s old: deleted %v, want %v", tc.beat, gone, tc.dead)
			}
		})
	}
}

// Incomplete multipart uploads on a real MinIO: those of a backup deleted by
// the run are aborted; those of a backup in progress, a young one (an
// archive call may be uploading) and another server's stay. --dry-run counts
// and aborts nothing. (Uploads older than --orphan-age are aborted too, but
// MinIO dates an upload by its own clock and --orphan-age is at least an
// hour: cloud's unit tests cover that rule with a fake clock.)
func TestRetentionStaleUploads(t *testing.T) {
	st := harness.NewStore(t, "s3")
	s := openRetStore(t, st)
	client := harness.SharedMinIO(t).Client()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	old := synthBackup(t, s, now.Add(-48*time.Hour), catalog.StatusDone, 1, 2, 3)
	synthBackup(t, s, now.Add(-24*time.Hour), catalog.StatusDone, 1, 5, 6)
	running := synthBackup(t, s, now.Add(-time.Minute), catalog.StatusStarted, 1, 7, 7)

	// Keys in the bucket: the store URL's prefix is e2e/.
	full := func(key string) string { return "e2e/" + key }
	begin := func(key string) {
		t.Helper()
		up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(st.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(st.Bucket), Key: aws.String(key),
			UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, 1<<20))})
		if err != nil {
			t.Fatal(err)
		}
	}
	uploads := func() []string {
		t.Helper()
		out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(st.Bucket)})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		slices.Sort(keys)
		return keys
	}
	killed := full(retLayout.PartKey(old.ID, "", 2, "zst")) // a kill -9 during its third part
	stay := []string{
		full(retLayout.PartKey(running.ID, "", 2, "zst")),
		full(retLayout.WALKey(retSeg(1, 8), "zst")),
		"e2e/other/base/20261124T214842Z/data/0.tar.zst",
	}
	for _, k := range append([]string{killed}, stay...) {
		begin(k)
	}
	slices.Sort(stay)
	all := uploads()
	if len(all) != 4 {
		t.Fatalf("uploads before: %v", all)
	}

	out := mustGBC(t, st, "gbc-backup-delete", []string{"--dry-run", "--format", "json", "--retention-policy", "REDUNDANCY 1"}, retServer)
	var rep prune.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Stale != (prune.Stale{What: "multipart uploads", Count: 1, Bytes: 1 << 20}) {
		t.Errorf("dry run: stale %+v, want 1 multipart upload of 1 MiB", rep.Stale)
	}
	if got := uploads(); !slices.Equal(got, all) {
		t.Errorf("--dry-run aborted uploads: %v left of %v", got, all)
	}

	out = mustGBC(t, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
	t.Logf("gbc-backup-delete:\n%s", out)
	if !strings.Contains(out, "Stale multipart uploads removed: 1, 1.0MiB") {
		t.Errorf("the report does not say what was aborted:\n%s", out)
	}
	if got := uploads(); !slices.Equal(got, stay) {
		t.Errorf("uploads left: %v, want %v", got, stay)
	}
	if k := listKeys(t, s, retLayout.BackupRoot(old.ID)); len(k) != 0 {
		t.Errorf("the old backup left %v", k)
	}
}

// Temporary files of file:// Puts killed with kill -9, planted with old
// mtimes: those older than --orphan-age and those of a backup deleted now
// go, with the directories they alone kept; a young one, one of a backup in
// progress and hidden files that are not temporary files stay.
func TestRetentionStaleTempFiles(t *testing.T) {
	st := harness.NewStore(t, "file")
	s := openRetStore(t, st)
	now := time.Now().UTC().Truncate(time.Second)
	old := synthBackup(t, s, now.Add(-48*time.Hour), catalog.StatusDone, 1, 2, 3)
	synthBackup(t, s, now.Add(-24*time.Hour), catalog.StatusDone, 1, 5, 6)
	running := synthBackup(t, s, now.Add(-time.Minute), catalog.StatusStarted, 1, 7, 7)
	twoDaysAgo := now.Add(-48 * time.Hour)
	plant := func(key string, mtime time.Time) string {
		t.Helper()
		p := filepath.Join(st.Bucket, filepath.FromSlash(filepath.Dir(key)), "."+filepath.Base(key)+".tmp-2596996162")
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 300<<10), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{
		plant(retLayout.PartKey(old.ID, "", 2, "zst"), now),
		plant(retLayout.WALKey(retSeg(1, 3*256), "zst"), twoDaysAgo), // alone in its directory (log 3)
		plant(retLayout.RecordKey("20261101T000000Z"), twoDaysAgo),
	}
	stay := []string{
		plant(retLayout.PartKey(running.ID, "", 2, "zst"), twoDaysAgo),
		plant(retLayout.WALKey(retSeg(1, 8), "zst"), now),
	}
	foreign := filepath.Join(st.Bucket, "main", "wals", ".keep-me")
	if err := os.WriteFile(foreign, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	ageFiles(t, foreign, twoDaysAgo)
	stay = append(stay, foreign)

	out := mustGBC(t, st, "gbc-backup-delete", []string{"--dry-run", "--retention-policy", "REDUNDANCY 1"}, retServer)
	if !strings.Contains(out, "Stale temporary files to remove: 3, 900.0KiB") {
		t.Errorf("dry run report:\n%s", out)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("--dry-run removed %s: %v", p, err)
		}
	}
	out = mustGBC(t, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
	t.Logf("gbc-backup-delete:\n%s", out)
	if !strings.Contains(out, "Stale temporary files removed: 3, 900.0KiB") {
		t.Errorf("the report does not say what was removed:\n%s", out)
	}
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	for _, p := range stay {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	for _, d := range []string{retLayout.BackupRoot(old.ID), retLayout.BackupRoot("20261101T000000Z"), retLayout.WALRoot() + retSeg(1, 3*256)[:16]} {
		if _, err := os.Stat(filepath.Join(st.Bucket, filepath.FromSlash(d))); !os.IsNotExist(err) {
			t.Errorf("directory %s left behind: %v", d, err)
		}
	}
}

// --jobs is capped at 4 per core with one warning, and the backup stays
// within its memory budget; 0 is refused as a usage error.
func TestBackupJobsBound(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	argv := st.Argv(harness.Bin(t, "gbc-backup"), []string{"--jobs", "100000"}, bkServer)
	r := pg.RunGBCWith(t, harness.RunOptions{Env: st.Env}, argv...)
	if r.ExitCode != 0 {
		t.Fatalf("gbc-backup --jobs 100000: exit %d: %s", r.ExitCode, r.Stderr)
	}
	warning := fmt.Sprintf("gbc-backup: warning: --jobs 100000 is more than 4 per core: using %d\n", 4*runtime.NumCPU())
	if strings.Count(r.Stderr, "--jobs") != 1 || !strings.Contains(r.Stderr, warning) {
		t.Errorf("stderr %q, want the one line %q", r.Stderr, warning)
	}
	// The capped run must cost what the cap itself costs: measured side by
	// side, under the same load, not against a fixed figure that the
	// machine's load would move.
	capped := pg.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv(harness.Bin(t, "gbc-backup"), []string{"--jobs", strconv.Itoa(4 * runtime.NumCPU())}, bkServer)...)
	if capped.ExitCode != 0 {
		t.Fatalf("gbc-backup at the cap: exit %d: %s", capped.ExitCode, capped.Stderr)
	}
	t.Logf("peak RSS: --jobs 100000 %d MiB, --jobs %d %d MiB", r.MaxRSSKiB>>10, 4*runtime.NumCPU(), capped.MaxRSSKiB>>10)
	if r.MaxRSSKiB > capped.MaxRSSKiB*3/2+64<<10 {
		t.Errorf("gbc-backup --jobs 100000 peaked at %d MiB, against %d MiB at the cap", r.MaxRSSKiB>>10, capped.MaxRSSKiB>>10)
	}
	for _, jobs := range []string{"0", "-1"} {
		argv := st.Argv(harness.Bin(t, "gbc-backup"), []string{"--jobs", jobs}, bkServer)
		r := pg.RunGBCWith(t, harness.RunOptions{Env: st.Env}, argv...)
		if r.ExitCode != exitUsage || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "--jobs "+jobs) {
			t.Errorf("gbc-backup --jobs %s: exit %d, stderr %q; want exit %d and one line naming --jobs", jobs, r.ExitCode, r.Stderr, exitUsage)
		}
	}
}
