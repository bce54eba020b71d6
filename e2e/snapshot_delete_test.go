package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/retention/prune"
	"github.com/gbc-backup/gbc/snapshot"
	"github.com/gbc-backup/gbc/snapshot/snapshottest"
)

// gbc-backup-delete on snapshot backups, through each provider's real SDK
// and fake API: the provider snapshots go with the record, snapshots
// already gone are fine, and a snapshot that cannot be deleted keeps the
// record until a later run succeeds.

// snapDelete is how each fake names the delete request, and a refusal
// of it in the provider's own words (not one its SDK retries).
var snapDelete = map[string]struct {
	action string
	fault  snapshottest.Fault
}{
	"aws":   {"DeleteSnapshot", snapshottest.Fault{Status: http.StatusForbidden, Code: "UnauthorizedOperation"}},
	"gcp":   {"snapshots.delete", snapshottest.Fault{Status: http.StatusForbidden, Code: "forbidden"}},
	"azure": {"snapshots.delete", snapshottest.Fault{Status: http.StatusForbidden, Code: "AuthorizationFailed"}},
}

// snapName is the fake's name of a recorded snapshot: the id itself (AWS)
// or its last path segment (GCP URL, Azure resource id).
func snapName(s catalog.Snapshot) string { return s.ID[strings.LastIndex(s.ID, "/")+1:] }

// deleteBackups runs gbc-backup-delete as the DBA's cron job would, pointed
// at the fake provider API with the same options as gbc-backup.
func (db *snapDB) deleteBackups(t *testing.T, flags ...string) (string, string, int) {
	t.Helper()
	flags = append(append([]string(nil), flags...),
		"--snapshot-endpoint-url", db.sc.conf.Endpoint, "--snapshot-poll-interval", "20ms")
	env := append(append([]string(nil), db.st.Env...), awsEnv...)
	return db.pg.RunGBC(t, env, db.st.Argv("gbc-backup-delete", flags, snapServer)...)
}

func TestSnapshotDelete(t *testing.T) {
	for _, provider := range snapshot.Providers {
		t.Run(provider, func(t *testing.T) { testSnapshotDelete(t, newSnapCloud(t, provider)) })
	}
}

func testSnapshotDelete(t *testing.T, sc *snapCloud) {
	db := newSnapDB(t, sc)
	sc.cloud.OnSnapshot = nil // nothing is restored here: no disk copies
	for i := 0; i < 3; i++ {
		if out, errOut, code := db.backup(t, []string{"pgdata", "pgtblspc"}); code != 0 {
			t.Fatalf("gbc-backup #%d: exit %d\nstdout: %s\nstderr: %s", i+1, code, out, errOut)
		}
	}
	recs := db.records(t)
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	names := func(bs ...*catalog.Backup) []string {
		var out []string
		for _, b := range bs {
			if len(b.Snapshots) != 2 {
				t.Fatalf("backup %s has %d snapshots, want 2", b.ID, len(b.Snapshots))
			}
			for _, s := range b.Snapshots {
				out = append(out, snapName(s))
			}
		}
		slices.Sort(out)
		return out
	}
	live := func() []string { return sc.cloud.Live() }
	if got, want := live(), names(recs...); !slices.Equal(got, want) {
		t.Fatalf("live snapshots %v, want %v", got, want)
	}
	s := db.st.Open(t)
	gone := func(b *catalog.Backup) {
		t.Helper()
		if k := listKeys(t, s, retLayout.BackupRoot(b.ID)); len(k) != 0 {
			t.Errorf("backup %s deleted, but its objects remain: %v", b.ID, k)
		}
	}
	del := snapDelete[sc.name]

	// Dry runs name the snapshots, and ask the provider nothing.
	out, errOut, code := db.deleteBackups(t, "--dry-run", "--backup-id", recs[0].ID)
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	for _, sn := range recs[0].Snapshots {
		if !strings.Contains(out, sn.ID) || !strings.Contains(out, sn.Disk) {
			t.Errorf("dry run does not show snapshot %s of disk %s:\n%s", sn.ID, sn.Disk, out)
		}
	}
	if !strings.Contains(out, "Would delete provider snapshots") {
		t.Errorf("dry run output:\n%s", out)
	}
	out, errOut, code = db.deleteBackups(t, "--dry-run", "--format", "json", "--backup-id", recs[0].ID)
	if code != 0 {
		t.Fatalf("dry run (json): exit %d: %s", code, errOut)
	}
	var rep prune.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("dry run JSON: %v\n%s", err, out)
	}
	want := []prune.Snapshot{{Provider: sc.name, ID: recs[0].Snapshots[0].ID, Disk: "pgdata"}, {Provider: sc.name, ID: recs[0].Snapshots[1].ID, Disk: "pgtblspc"}}
	if len(rep.Deleted) != 1 || rep.Deleted[0].ID != recs[0].ID || !slices.Equal(rep.Deleted[0].Snapshots, want) {
		t.Errorf("dry run JSON deletes %+v, want backup %s with snapshots %+v", rep.Deleted, recs[0].ID, want)
	}
	if n := sc.cloud.Calls(del.action); n != 0 || len(live()) != 6 {
		t.Fatalf("dry run: %d delete requests, live snapshots %v", n, live())
	}

	// Deleting a backup deletes its snapshots, and only its.
	out, errOut, code = db.deleteBackups(t, "--backup-id", recs[0].ID)
	if code != 0 {
		t.Fatalf("gbc-backup-delete: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, "Deleted provider snapshots") || !strings.Contains(out, recs[0].Snapshots[0].ID) {
		t.Errorf("gbc-backup-delete output:\n%s", out)
	}
	gone(recs[0])
	if got, want := live(), names(recs[1], recs[2]); !slices.Equal(got, want) {
		t.Errorf("live snapshots %v, want %v (those of the other backups)", got, want)
	}

	// Snapshots deleted at the provider behind gbc's back: the backup is
	// still deleted.
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	p, err := snapshot.Open(ctx, sc.conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range recs[1].Snapshots {
		if err := p.Delete(ctx, sn); err != nil {
			t.Fatal(err)
		}
	}
	before := sc.cloud.Calls(del.action)
	if out, errOut, code := db.deleteBackups(t, "--backup-id", recs[1].ID); code != 0 {
		t.Fatalf("gbc-backup-delete of a backup whose snapshots are gone: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if n := sc.cloud.Calls(del.action) - before; n != 2 {
		t.Errorf("%d delete requests for the 2 snapshots already gone, want 2", n)
	}
	gone(recs[1])

	// A refused deletion keeps the record (the backup can be found and
	// deleted again) and fails the command; the next run finishes,
	// deleting what is left and passing over what is gone.
	sc.cloud.Inject(del.action, del.fault)
	out, errOut, code = db.deleteBackups(t, "--backup-id", recs[2].ID)
	if code == 0 || !strings.Contains(errOut, del.fault.Code) || !strings.Contains(errOut, "record is kept") ||
		!strings.Contains(errOut, recs[2].Snapshots[0].ID) {
		t.Fatalf("gbc-backup-delete with a refused snapshot deletion: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	b, err := catalog.Load(ctx, s, retLayout, recs[2].ID)
	if err != nil || b.Status != catalog.StatusDone || len(listKeys(t, s, retLayout.BackupRoot(recs[2].ID))) == 0 {
		t.Fatalf("record after a refused snapshot deletion: %+v, %v", b, err)
	}
	if got, want := live(), []string{snapName(recs[2].Snapshots[0])}; !slices.Equal(got, want) {
		t.Errorf("live snapshots %v, want %v (the refused one)", got, want)
	}
	if out, errOut, code := db.deleteBackups(t, "--backup-id", recs[2].ID); code != 0 {
		t.Fatalf("gbc-backup-delete, again: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	gone(recs[2])
	if got := live(); len(got) != 0 {
		t.Errorf("snapshots left: %v", got)
	}
}
