package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/retention"
	"github.com/gbc-backup/gbc/retention/prune"
	"github.com/gbc-backup/gbc/wal"
)

// What "gbc-backup-delete leaves no garbage" means after a kill, and how a
// test sees it without waiting an hour.
//
// A delete killed after a backup's record went leaves objects without a
// record, and a run soon after must not touch them: they could be a
// backup being written whose record is not there yet. They are garbage
// only once older than --orphan-age (at least an hour), as are the
// leftovers of killed uploads and a STARTED backup whose record never
// declared a heartbeat; a dead STARTED backup that declared one is garbage
// once its heartbeat stopped for 15 minutes. So the garbage check runs the
// delete once more as the next cron run would, an --orphan-age later: the
// same engine as gbc-backup-delete (prune.Run) with its clock moved on,
// and nothing else changed. What remains must be DONE backups, each
// holding exactly the objects its record names, and the WAL they need.

// pruneOrphanAge is gbc-backup-delete's smallest --orphan-age.
const pruneOrphanAge = time.Hour

// pruneLater runs the delete engine as gbc-backup-delete would run an
// --orphan-age from now, with a policy that keeps every DONE backup: it
// cleans garbage only. Objects written in the last 2 s stay young, so
// that an archive_command upload under way is not taken for debris.
func pruneLater(t *testing.T, s cloud.Store, server string, point int) *prune.Report {
	t.Helper()
	p, err := retention.ParsePolicy("REDUNDANCY 1000000")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := prune.Run(context.Background(), s, catalog.Layout{Server: server}, prune.Options{
		Policy: &p, OrphanAge: pruneOrphanAge, Now: time.Now().Add(pruneOrphanAge - 2*time.Second),
	})
	if err != nil {
		t.Fatalf("point %d: the delete an --orphan-age later: %v", point, err)
	}
	return rep
}

// checkNoGarbage fails the test unless the server's area of the store
// holds only DONE backups, each exactly the objects its record names, no
// leftover of a killed upload (file:// temporary files, S3 multipart
// uploads), nothing of the backup gone (deleted, if not ""), and exactly
// the WAL the remaining backups need: every segment from the lowest begin
// WAL to the newest end WAL, and nothing before it but history files.
func checkNoGarbage(t *testing.T, st harness.Store, s cloud.Store, server, gone string, point int) {
	t.Helper()
	ctx := context.Background()
	l := catalog.Layout{Server: server}
	if gone != "" {
		if keys := listKeys(t, s, l.BackupRoot(gone)); len(keys) > 0 {
			t.Errorf("point %d: deleted backup %s left %v", point, gone, keys)
		}
	}
	objects := map[string][]string{} // by backup id
	for _, k := range listKeys(t, s, l.BaseRoot()) {
		id, _, _ := strings.Cut(strings.TrimPrefix(k, l.BaseRoot()), "/")
		objects[id] = append(objects[id], k)
	}
	var floor, tip *catalog.Backup
	for id, keys := range objects {
		b, err := catalog.Load(ctx, s, l, id)
		if err != nil || b.Status != catalog.StatusDone {
			t.Errorf("point %d: base/%s/ (%d objects) is garbage: record %v, status %v", point, id, len(keys), err, statusOf(b))
			continue
		}
		named := map[string]bool{l.RecordKey(id): true, b.ManifestKey: true}
		for _, p := range b.Parts {
			named[p.Key] = true
		}
		if b.BlockMap != nil {
			named[b.BlockMap.Key] = true
		}
		for _, k := range keys {
			if !named[k] {
				t.Errorf("point %d: %s is under DONE backup %s, whose record does not name it", point, k, id)
			}
		}
		if floor == nil || b.BeginWAL < floor.BeginWAL {
			floor = b
		}
		if tip == nil || b.EndWAL > tip.EndWAL {
			tip = b
		}
	}
	checkNoStaleUploads(t, st, server, point)
	if floor == nil {
		return
	}

	// WAL, on the one timeline of these tests: segment names order as
	// positions.
	archived := map[string]bool{}
	for _, k := range listKeys(t, s, l.WALRoot()) {
		base, _ := compress.SplitKey(k)
		name := base[strings.LastIndexByte(base, '/')+1:]
		n, err := wal.ParseName(name)
		if err != nil {
			t.Errorf("point %d: %s is not a WAL file", point, k)
			continue
		}
		if n.Kind != wal.History && n.SegmentName() < floor.BeginWAL {
			t.Errorf("point %d: WAL %s is before %s, where the oldest remaining backup %s begins: garbage", point, name, floor.BeginWAL, floor.ID)
		}
		if n.Kind == wal.Segment {
			archived[name] = true
		}
	}
	seg, err := wal.ParseName(floor.BeginWAL)
	if err != nil {
		t.Fatal(err)
	}
	for seg.String() <= tip.EndWAL {
		if !archived[seg.String()] {
			t.Errorf("point %d: WAL %s is missing, and backup %s (begin %s) needs it", point, seg, floor.ID, floor.BeginWAL)
		}
		if seg, err = seg.Next(floor.WALSegmentSize); err != nil {
			t.Fatal(err)
		}
	}
}

func statusOf(b *catalog.Backup) catalog.Status {
	if b == nil {
		return ""
	}
	return b.Status
}

// checkNoStaleUploads fails the test if a killed upload left something
// under the server's prefix that no listing shows: a file:// temporary
// file, or an incomplete S3 multipart upload.
func checkNoStaleUploads(t *testing.T, st harness.Store, server string, point int) {
	t.Helper()
	switch st.Name {
	case "file":
		err := filepath.Walk(filepath.Join(st.Bucket, server), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && strings.HasPrefix(fi.Name(), ".") && strings.Contains(fi.Name(), ".tmp-") {
				t.Errorf("point %d: temporary file %s left", point, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	case "s3":
		// MinIO ignores a prefix that names no object: list the test's
		// bucket whole.
		out, err := harness.SharedMinIO(t).Client().ListMultipartUploads(context.Background(),
			&s3.ListMultipartUploadsInput{Bucket: aws.String(st.Bucket)})
		if err != nil {
			t.Fatal(err)
		}
		prefix := strings.TrimPrefix(st.URL, "s3://"+st.Bucket+"/") + "/" + server + "/"
		for _, u := range out.Uploads {
			if strings.HasPrefix(aws.ToString(u.Key), prefix) {
				t.Errorf("point %d: incomplete multipart upload of %s left (started %s)", point, aws.ToString(u.Key), aws.ToTime(u.Initiated))
			}
		}
	}
}
