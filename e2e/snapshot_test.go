package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/snapshot"
	"github.com/gbc-backup/gbc/snapshot/snapshottest"
)

// Snapshot backups end to end: gbc-backup on a real PostgreSQL 15, talking
// through each provider's real SDK to a local fake of its API, with a fake
// mountinfo/sysfs tree that puts the test's PGDATA and tablespace on the
// listed disks. The fake "snapshots" a disk by copying its files while the
// backup runs; the copies are then put back as disks made from the
// snapshots, which gbc-restore --snapshot-recovery-instance checks and
// prepares for recovery to the end of the archived WAL.

const snapServer = "main"

// snapCloud is one provider's fake and how gbc-backup reaches it.
type snapCloud struct {
	name  string
	cloud *snapshottest.Cloud
	conf  snapshot.Config // for in-process calls
	flags []string        // gbc-backup's provider options
	// attach attaches disk to instance in the fake, and adds its block
	// device to tree as the provider's images name it.
	attach func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string)
}

// awsEnv is the environment the AWS SDK needs to sign requests to the fake.
var awsEnv = []string{"AWS_ACCESS_KEY_ID=AKIDE2E", "AWS_SECRET_ACCESS_KEY=e2e-secret", "AWS_EC2_METADATA_DISABLED=true"}

func newSnapCloud(t *testing.T, provider string) *snapCloud {
	c := snapshottest.NewCloud()
	sc := &snapCloud{name: provider, cloud: c}
	switch provider {
	case "aws":
		srv := snapshottest.NewAWS(t, c)
		sc.conf = snapshot.Config{Provider: "aws", Region: "eu-west-1", Endpoint: srv.URL}
		sc.flags = []string{"--aws-region", "eu-west-1"}
		sc.attach = func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string) {
			c.Attach(instance, snapshottest.Attachment{Disk: disk, Device: "/dev/sd" + string(rune('f'+slot))})
			tree.Disk(kernel, strings.Replace(snapshottest.AWSVolumeID(disk), "-", "", 1))
		}
	case "gcp":
		srv := snapshottest.NewGCP(t, c)
		sc.conf = snapshot.Config{Provider: "gcp", Project: "proj-e2e", Zone: "europe-west1-b", Endpoint: srv.URL}
		sc.flags = []string{"--gcp-project", "proj-e2e", "--snapshot-zone", "europe-west1-b"}
		sc.attach = func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string) {
			dev := fmt.Sprintf("persistent-disk-%d", slot+1)
			c.Attach(instance, snapshottest.Attachment{Disk: disk, Device: dev})
			tree.Disk(kernel, "", "disk/by-id/google-"+dev)
		}
	case "azure":
		srv := snapshottest.NewAzure(t, c)
		sc.conf = snapshot.Config{Provider: "azure", SubscriptionID: "sub-e2e", ResourceGroup: "rg-db", Endpoint: srv.URL}
		sc.flags = []string{"--azure-subscription-id", "sub-e2e", "--azure-resource-group", "rg-db"}
		sc.attach = func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string) {
			c.Attach(instance, snapshottest.Attachment{Disk: disk, LUN: slot})
			link := fmt.Sprintf("disk/azure/scsi1/lun%d", slot)
			if slot < 0 {
				link = "disk/azure/root"
			}
			tree.Disk(kernel, "", link)
		}
	}
	sc.conf.PollInterval = 20 * time.Millisecond
	sc.flags = append(sc.flags, "--snapshot-endpoint-url", sc.conf.Endpoint, "--snapshot-poll-interval", "20ms")
	return sc
}

// snapDB is a cluster archiving to a file:// store, with a tablespace on a
// disk of its own, on a fake instance db1 with three disks: boot (holding
// "/"), pgdata (holding PGDATA's parent) and pgtblspc.
type snapDB struct {
	pg      *harness.Cluster
	st      harness.Store
	sc      *snapCloud
	tree    *snapshottest.Tree
	tsMount string // the tablespace disk's mount point
	tsLoc   string // the tablespace's location on it
	images  string // where the fake's snapshots copy the disks' files
}

func newSnapDB(t *testing.T, sc *snapCloud) *snapDB {
	st := harness.NewStore(t, "file")
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, snapServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
	})
	db := &snapDB{pg: pg, st: st, sc: sc, tree: snapshottest.NewTreeIn(t, harness.TempDir(t)), tsMount: harness.TempDir(t), images: harness.TempDir(t)}
	db.tsLoc = filepath.Join(db.tsMount, "ts")
	if err := os.Mkdir(db.tsLoc, 0o700); err != nil {
		t.Fatal(err)
	}
	harness.ChownToPG(t, db.tsLoc)
	pg.Exec(t, "CREATE TABLESPACE ts1 LOCATION '"+db.tsLoc+"'")
	pg.Exec(t, "CREATE TABLE a AS SELECT g FROM generate_series(1, 1000) g")
	pg.Exec(t, "CREATE TABLE b TABLESPACE ts1 AS SELECT g FROM generate_series(1, 500) g")

	for _, d := range []snapshottest.Disk{{Name: "boot", SizeGiB: 10}, {Name: "pgdata", SizeGiB: 200}, {Name: "pgtblspc", SizeGiB: 50}} {
		sc.cloud.AddDisk(d)
	}
	sc.attach(db.tree, "db1", "boot", -1, "nvme0n1")
	sc.attach(db.tree, "db1", "pgdata", 0, "nvme1n1")
	sc.attach(db.tree, "db1", "pgtblspc", 1, "nvme2n1")
	db.tree.Mount("nvme0n1", "/", "ext4", "rw,relatime")
	db.tree.Mount("nvme1n1", filepath.Dir(pg.DataDir), "ext4", "rw,noatime")
	db.tree.Mount("nvme2n1", db.tsMount, "xfs", "rw,noatime")
	// A snapshot holds the disk's files as they are while the backup runs.
	sc.cloud.OnSnapshot = func(disk string) {
		src := map[string]string{"pgdata": pg.DataDir, "pgtblspc": db.tsLoc}[disk]
		if src == "" {
			return
		}
		if out, err := exec.Command("cp", "-a", src, filepath.Join(db.images, disk)).CombinedOutput(); err != nil {
			t.Errorf("copy disk %s as its snapshot: %v: %s", disk, err, out)
		}
	}
	return db
}

// backup runs gbc-backup with snapshot options, as PostgreSQL's user as a
// DBA's cron job would (the file:// store is that user's), and returns
// stdout, stderr and the exit code.
func (db *snapDB) backup(t *testing.T, disks []string, extra ...string) (string, string, int) {
	t.Helper()
	flags := []string{"--snapshot-instance", "db1", "--snapshot-host-root", db.tree.Root, "--tags", "team=dba"}
	for _, d := range disks {
		flags = append(flags, "--snapshot-disk", d)
	}
	flags = append(append(flags, db.sc.flags...), extra...)
	env := append(append(append([]string(nil), db.st.Env...), db.pg.Env()...), awsEnv...)
	return db.pg.RunGBC(t, env, db.st.Argv("gbc-backup", flags, snapServer)...)
}

func (db *snapDB) records(t *testing.T) []*catalog.Backup {
	t.Helper()
	bs, err := catalog.List(context.Background(), db.st.Open(t), catalog.Layout{Server: snapServer})
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestSnapshotBackup(t *testing.T) {
	for _, provider := range snapshot.Providers {
		t.Run(provider, func(t *testing.T) { testSnapshotBackup(t, newSnapCloud(t, provider)) })
	}
}

func testSnapshotBackup(t *testing.T, sc *snapCloud) {
	db := newSnapDB(t, sc)
	pg := db.pg
	out, errOut, code := db.backup(t, []string{"pgdata", "pgtblspc"})
	if code != 0 {
		t.Fatalf("gbc-backup: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	id := strings.TrimSpace(out)

	show, errOut, code := harness.RunGBC(t, db.st.Env, db.st.Argv("gbc-backup-show", []string{"--format", "json"}, snapServer, id)...)
	if code != 0 {
		t.Fatalf("gbc-backup-show: exit %d: %s", code, errOut)
	}
	var rec catalog.Backup
	if err := json.Unmarshal([]byte(show), &rec); err != nil {
		t.Fatalf("gbc-backup-show --format json: %v\n%s", err, show)
	}
	if rec.Status != catalog.StatusDone || rec.Method != "snapshot" || rec.EndLSN == "" || rec.EndWAL == "" ||
		!strings.Contains(rec.BackupLabel, "START WAL LOCATION") || !strings.Contains(rec.TablespaceMap, db.tsLoc) {
		t.Fatalf("record: %s", show)
	}
	if len(rec.Snapshots) != 2 {
		t.Fatalf("record has %d snapshots, want 2: %s", len(rec.Snapshots), show)
	}
	for i, want := range []struct{ disk, mnt string }{{"pgdata", filepath.Dir(pg.DataDir)}, {"pgtblspc", db.tsMount}} {
		s := rec.Snapshots[i]
		if s.Provider != sc.name || s.ID == "" || s.Disk != want.disk || s.MountPoint != want.mnt || s.MountOptions == "" || s.SizeGiB == 0 {
			t.Errorf("snapshot %d: %+v, want disk %s at %s", i, s, want.disk, want.mnt)
		}
		name := s.ID[strings.LastIndex(s.ID, "/")+1:]
		fs := sc.cloud.Snapshots()[name]
		if fs.State != "completed" || len(fs.Tags) < 3 {
			t.Errorf("provider snapshot %s: %+v", name, fs)
		}
	}
	text, _, _ := harness.RunGBC(t, db.st.Env, db.st.Argv("gbc-backup-show", nil, snapServer, id)...)
	if !strings.Contains(text, "Snapshot "+sc.name) {
		t.Errorf("gbc-backup-show does not show the snapshots:\n%s", text)
	}

	// Writes after the backup, archived: recovery must replay them.
	pg.Exec(t, "INSERT INTO a SELECT g FROM generate_series(1001, 1500) g")
	pg.Exec(t, "INSERT INTO b SELECT g FROM generate_series(501, 1000) g")
	pg.WaitArchived(t, pg.SwitchWAL(t), time.Minute)
	pg.Stop(t)

	// The operator makes disks from the snapshots, attaches them to a new
	// instance and mounts them where the record says: here the copies
	// take the original directories' places.
	for _, mv := range [][2]string{
		{pg.DataDir, pg.DataDir + ".orig"}, {filepath.Join(db.images, "pgdata"), pg.DataDir},
		{db.tsLoc, db.tsLoc + ".orig"}, {filepath.Join(db.images, "pgtblspc"), db.tsLoc},
	} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	// gbc-restore runs on db2 as PostgreSQL's user, with no provider
	// option but the endpoint: region, zone, project and resource group
	// come from the record.
	tree := snapshottest.NewTreeIn(t, harness.TempDir(t))
	sc.cloud.AddDisk(snapshottest.Disk{Name: "db2-boot", SizeGiB: 10})
	sc.attach(tree, "db2", "db2-boot", -1, "sda")
	tree.Mount("sda", "/", "ext4", "rw")
	restoreEnv := append(append([]string(nil), db.st.Env...), awsEnv...)
	gbcRestore := func(flags ...string) (string, int) {
		t.Helper()
		flags = append([]string{"--snapshot-recovery-instance", "db2", "--snapshot-host-root", tree.Root,
			"--snapshot-endpoint-url", sc.conf.Endpoint, "--snapshot-poll-interval", "20ms", "--disable-archiving"}, flags...)
		_, errOut, code := pg.RunGBC(t, restoreEnv, db.st.Argv("gbc-restore", flags, snapServer, rec.ID, pg.DataDir)...)
		return errOut, code
	}
	kernels := map[string]string{}
	for i, s := range rec.Snapshots {
		disk := "db2-" + s.Disk
		if err := sc.cloud.DiskFromSnapshot(disk, s.ID[strings.LastIndex(s.ID, "/")+1:]); err != nil {
			t.Fatal(err)
		}
		kernels[s.Disk] = "sd" + string(rune('c'+i))
	}
	sc.attach(tree, "db2", "db2-pgdata", 2, kernels["pgdata"])
	tree.Mount(kernels["pgdata"], rec.Snapshots[0].MountPoint, "xfs", "rw")

	// Refusals, before anything is written: the tablespace's disk not
	// attached, then attached but mounted elsewhere; a target before the
	// end of the backup.
	errOut, code = gbcRestore()
	if code != 4 || !strings.Contains(errOut, "attached to instance db2") || !strings.Contains(errOut, rec.Snapshots[1].ID) {
		t.Fatalf("gbc-restore with the tablespace's disk not attached: exit %d, want 4: %s", code, errOut)
	}
	sc.attach(tree, "db2", "db2-pgtblspc", 3, kernels["pgtblspc"])
	tree.Mount(kernels["pgtblspc"], "/mnt/elsewhere", "xfs", "rw")
	errOut, code = gbcRestore()
	if code != 4 || !strings.Contains(errOut, "nothing is mounted at "+db.tsMount) {
		t.Fatalf("gbc-restore with the tablespace's disk mounted elsewhere: exit %d, want 4: %s", code, errOut)
	}
	errOut, code = gbcRestore("--target-lsn", rec.BeginLSN)
	if code != 2 || !strings.Contains(errOut, "--target-lsn") {
		t.Fatalf("gbc-restore with a target before the end of the backup: exit %d, want 2: %s", code, errOut)
	}
	for _, name := range []string{"backup_label", "recovery.signal"} {
		if _, err := os.Stat(filepath.Join(pg.DataDir, name)); err == nil {
			t.Fatalf("a refused gbc-restore wrote %s", name)
		}
	}

	tree.Mount(kernels["pgtblspc"], rec.Snapshots[1].MountPoint, "xfs", "rw")
	if errOut, code := gbcRestore(); code != 0 {
		t.Fatalf("gbc-restore --snapshot-recovery-instance: exit %d: %s", code, errOut)
	}
	conf, err := os.ReadFile(filepath.Join(pg.DataDir, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "restore_command = ") || !strings.Contains(string(conf), "gbc-wal-restore") {
		t.Fatalf("postgresql.auto.conf has no restore_command calling gbc-wal-restore:\n%s", conf)
	}

	r := pg.StartFrom(t, pg.DataDir, 0)
	r.WaitRecovered(t, 3*time.Minute)
	if n, m := r.QueryInt(t, "SELECT count(*) FROM a"), r.QueryInt(t, "SELECT count(*) FROM b"); n != 1500 || m != 1000 {
		t.Fatalf("recovered %d rows in a and %d in b, want 1500 and 1000", n, m)
	}

	// Deleting the backup's snapshots, twice: the second finds them gone.
	for _, kv := range awsEnv {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	p, err := snapshot.Open(ctx, sc.conf)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := snapshot.DeleteAll(ctx, &rec, func(ctx context.Context, c snapshot.Config) (snapshot.Provider, error) {
			return p, nil
		}); err != nil {
			t.Fatalf("DeleteAll #%d: %v", i+1, err)
		}
	}
	if live := sc.cloud.Live(); len(live) != 0 {
		t.Fatalf("snapshots left: %v", live)
	}
}

// TestSnapshotBackupRefusals: a disk not attached, PGDATA or a tablespace
// off the listed disks, a snapshot that fails and one that never
// completes, on a real cluster; then a good backup of the same cluster,
// which gbc-restore refuses without --snapshot-recovery-instance, as it
// refuses a file backup with it.
func TestSnapshotBackupRefusals(t *testing.T) {
	sc := newSnapCloud(t, "aws")
	db := newSnapDB(t, sc)
	sc.cloud.OnSnapshot = nil // no recovery here: no copies needed
	sc.cloud.AddDisk(snapshottest.Disk{Name: "elsewhere", SizeGiB: 1})

	_, errOut, code := db.backup(t, []string{"pgdata", "pgtblspc", "elsewhere"})
	if code != 5 || !strings.Contains(errOut, "disk elsewhere is not attached to instance db1") {
		t.Fatalf("disk not attached: exit %d: %s", code, errOut)
	}
	_, errOut, code = db.backup(t, []string{"pgdata"})
	if code != 4 || !strings.Contains(errOut, db.tsLoc) || !strings.Contains(errOut, "--snapshot-disk") {
		t.Fatalf("tablespace off the listed disks: exit %d: %s", code, errOut)
	}
	if bs := db.records(t); len(bs) != 0 {
		t.Fatalf("refused backups left %d records", len(bs))
	}

	sc.cloud.SetOutcome(snapshottest.Fail, 1)
	_, errOut, code = db.backup(t, []string{"pgdata", "pgtblspc"})
	if code != 1 || !strings.Contains(errOut, "snapshot failed") {
		t.Fatalf("failed snapshot: exit %d: %s", code, errOut)
	}
	sc.cloud.SetOutcome(snapshottest.Hang, 0)
	_, errOut, code = db.backup(t, []string{"pgdata", "pgtblspc"}, "--snapshot-timeout", "2s")
	if code != 1 || !strings.Contains(errOut, "--snapshot-timeout") {
		t.Fatalf("snapshot that never completes: exit %d: %s", code, errOut)
	}
	bs := db.records(t)
	if len(bs) != 2 {
		t.Fatalf("%d records after two failed backups, want 2 FAILED", len(bs))
	}
	for _, b := range bs {
		if b.Status != catalog.StatusFailed || len(b.Snapshots) != 2 || b.Error == "" {
			t.Errorf("record of a failed backup: %+v", b)
		}
	}
	// The failed backups' snapshots were deleted by gbc-backup itself.
	if live := sc.cloud.Live(); len(live) != 0 {
		t.Fatalf("snapshots of failed backups left: %v", live)
	}

	sc.cloud.SetOutcome(snapshottest.Complete, 2)
	out, errOut, code := db.backup(t, []string{"pgdata", "pgtblspc"})
	if code != 0 {
		t.Fatalf("backup after failures: exit %d: %s %s", code, out, errOut)
	}
	if live := sc.cloud.Live(); len(live) != 2 {
		t.Fatalf("live snapshots %v, want the last backup's two", live)
	}

	// gbc-restore refuses a snapshot backup without
	// --snapshot-recovery-instance, and a file backup with it.
	snapID := strings.TrimSpace(out)
	env := append(append([]string(nil), db.st.Env...), awsEnv...)
	dest := filepath.Join(harness.TempDir(t), "pgdata")
	_, errOut, code = db.pg.RunGBC(t, env, db.st.Argv("gbc-restore", nil, snapServer, snapID, dest)...)
	if code != 2 || !strings.Contains(errOut, "is a snapshot backup") || !strings.Contains(errOut, "--snapshot-recovery-instance") {
		t.Fatalf("gbc-restore of a snapshot backup without --snapshot-recovery-instance: exit %d, want 2: %s", code, errOut)
	}
	out, errOut, code = db.pg.RunGBC(t, env, db.st.Argv("gbc-backup", nil, snapServer)...)
	if code != 0 {
		t.Fatalf("file backup: exit %d: %s", code, errOut)
	}
	fileID := strings.TrimSpace(out)
	flags := []string{"--snapshot-recovery-instance", "db1", "--snapshot-host-root", db.tree.Root, "--snapshot-endpoint-url", sc.conf.Endpoint}
	_, errOut, code = db.pg.RunGBC(t, env, db.st.Argv("gbc-restore", flags, snapServer, fileID, dest)...)
	if code != 2 || !strings.Contains(errOut, "not a snapshot backup") || !strings.Contains(errOut, "without --snapshot-recovery-instance") {
		t.Fatalf("gbc-restore --snapshot-recovery-instance of a file backup: exit %d, want 2: %s", code, errOut)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Fatalf("a refused gbc-restore created %s", dest)
	}
}
