package snapshot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/api/option"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/snapshot"
	"github.com/gbc-backup/gbc/snapshot/snapshottest"
)

// cloudEnv is one provider's real SDK client on its local fake.
type cloudEnv struct {
	name  string
	cloud *snapshottest.Cloud
	open  snapshot.Opener
	// attach attaches disk to instance in the fake cloud (slot: AWS device
	// letter, GCP device name index, Azure LUN; -1 for the boot disk) and
	// adds its block device kernel to tree the way that cloud's images
	// name it.
	attach func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string)
	// diskArg is how an operator names disk on the command line.
	diskArg func(disk string) string
	// polls are the fake's actions that a client waiting for a snapshot
	// repeats.
	polls []string
}

const fastPoll = 5 * time.Millisecond

func awsEnv(t *testing.T) *cloudEnv {
	c := snapshottest.NewCloud()
	srv := snapshottest.NewAWS(t, c)
	return &cloudEnv{
		name:  "aws",
		cloud: c,
		open: func(ctx context.Context, conf snapshot.Config) (snapshot.Provider, error) {
			if conf.Region == "" {
				conf.Region = "eu-west-1"
			}
			conf.Endpoint, conf.PollInterval = srv.URL, fastPoll
			return snapshot.NewAWS(ctx, conf, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")))
		},
		attach: func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string) {
			c.Attach(instance, snapshottest.Attachment{Disk: disk, Device: "/dev/sd" + string(rune('f'+slot))})
			if tree != nil {
				// Nitro: an NVMe device whose serial is the volume id.
				tree.Disk(kernel, strings.Replace(snapshottest.AWSVolumeID(disk), "-", "", 1))
			}
		},
		diskArg: func(disk string) string { return disk }, // the Name tag
		polls:   []string{"DescribeSnapshots"},
	}
}

func gcpEnv(t *testing.T) *cloudEnv {
	c := snapshottest.NewCloud()
	srv := snapshottest.NewGCP(t, c)
	return &cloudEnv{
		name:  "gcp",
		cloud: c,
		open: func(ctx context.Context, conf snapshot.Config) (snapshot.Provider, error) {
			if conf.Project == "" {
				conf.Project, conf.Zone = "proj-1", "europe-west1-b"
			}
			conf.Endpoint, conf.PollInterval = srv.URL, fastPoll
			return snapshot.NewGCP(ctx, conf, option.WithoutAuthentication())
		},
		attach: func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string) {
			dev := "persistent-disk-" + string(rune('0'+slot+1))
			c.Attach(instance, snapshottest.Attachment{Disk: disk, Device: dev})
			if tree != nil {
				tree.Disk(kernel, "", "disk/by-id/google-"+dev)
			}
		},
		diskArg: func(disk string) string { return disk },
		polls:   []string{"snapshots.get"},
	}
}

func azureEnv(t *testing.T) *cloudEnv {
	c := snapshottest.NewCloud()
	srv := snapshottest.NewAzure(t, c)
	return &cloudEnv{
		name:  "azure",
		cloud: c,
		open: func(ctx context.Context, conf snapshot.Config) (snapshot.Provider, error) {
			if conf.SubscriptionID == "" {
				conf.SubscriptionID, conf.ResourceGroup = "sub-1", "rg-db"
			}
			conf.Endpoint, conf.PollInterval = srv.URL, fastPoll
			return snapshot.NewAzure(conf, snapshottest.FakeCredential{}, nil)
		},
		attach: func(tree *snapshottest.Tree, instance, disk string, slot int, kernel string) {
			c.Attach(instance, snapshottest.Attachment{Disk: disk, LUN: slot})
			if tree != nil {
				link := "disk/azure/scsi1/lun" + string(rune('0'+slot))
				if slot < 0 {
					link = "disk/azure/root"
				}
				tree.Disk(kernel, "", link)
			}
		},
		diskArg: func(disk string) string { return disk },
		// The SDK's poller follows the operation, then gbc waits for the
		// incremental snapshot's background copy.
		polls: []string{"operations.get", "snapshots.get"},
	}
}

func eachProvider(t *testing.T, f func(t *testing.T, e *cloudEnv)) {
	for _, p := range []struct {
		name string
		mk   func(*testing.T) *cloudEnv
	}{{"aws", awsEnv}, {"gcp", gcpEnv}, {"azure", azureEnv}} {
		t.Run(p.name, func(t *testing.T) { f(t, p.mk(t)) })
	}
}

// machine is an instance with a boot disk holding "/", a data disk holding
// PGDATA on its first partition and a tablespace disk, mounted on this
// test's temporary directories through a fake mountinfo.
type machine struct {
	tree             *snapshottest.Tree
	pgdata, tblspc   string
	dataMnt, tblsMnt string
}

func newMachine(t *testing.T, e *cloudEnv, instance string) *machine {
	dir := t.TempDir()
	m := &machine{tree: snapshottest.NewTree(t), dataMnt: filepath.Join(dir, "pg data"), tblsMnt: filepath.Join(dir, "tblspc")}
	m.pgdata, m.tblspc = filepath.Join(m.dataMnt, "15", "main"), filepath.Join(m.tblsMnt, "ts1")
	for _, d := range []string{m.pgdata, m.tblspc} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(m.pgdata, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []snapshottest.Disk{{Name: "boot", SizeGiB: 10}, {Name: "pgdata", SizeGiB: 100}, {Name: "pgtblspc", SizeGiB: 50}} {
		e.cloud.AddDisk(d)
	}
	e.attach(m.tree, instance, "boot", -1, "nvme0n1")
	e.attach(m.tree, instance, "pgdata", 0, "nvme1n1")
	e.attach(m.tree, instance, "pgtblspc", 1, "nvme2n1")
	m.tree.Partition("nvme0n1", "nvme0n1p1")
	m.tree.Partition("nvme1n1", "nvme1n1p1")
	m.tree.Mount("nvme0n1p1", filepath.Dir(dir), "ext4", "rw,relatime")
	m.tree.Mount("nvme1n1p1", m.dataMnt, "xfs", "rw,noatime")
	m.tree.Mount("nvme2n1", m.tblsMnt, "ext4", "rw,noatime")
	return m
}

func (m *machine) host() snapshot.Host { return snapshot.LocalHost{Root: m.tree.Root} }

func options(t snapshot.Target) snapshot.Options {
	return snapshot.Options{
		Name:        snapshot.SnapshotName("main", "20261124T214842Z", t.Disk.Name),
		Description: "gbc test",
		Tags:        map[string]string{"gbc-server": "main", "Team": "DBA"},
	}
}

func TestHappyPathAndRecovery(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		targets, err := snapshot.Plan(ctx, p, m.host(), "db1", []string{e.diskArg("pgdata"), e.diskArg("pgtblspc")}, []string{m.pgdata, m.tblspc})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := snapshot.Take(ctx, p, targets, options)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 2 {
			t.Fatalf("got %d snapshots, want 2", len(recs))
		}
		want := []struct {
			disk, device, mnt, opts string
			size                    int64
		}{
			{"pgdata", "/dev/nvme1n1p1", m.dataMnt, "rw,noatime,seclabel", 100},
			{"pgtblspc", "/dev/nvme2n1", m.tblsMnt, "rw,noatime,seclabel", 50},
		}
		snaps := e.cloud.Snapshots()
		for i, r := range recs {
			w := want[i]
			if r.Provider != e.name || r.ID == "" || r.Disk != w.disk || r.Device != w.device || r.MountPoint != w.mnt || r.MountOptions != w.opts || r.SizeGiB != w.size {
				t.Errorf("snapshot %d = %+v, want %+v", i, r, w)
			}
			name := r.ID[strings.LastIndex(r.ID, "/")+1:]
			s, ok := snaps[name]
			if !ok || s.State != "completed" || s.Disk != w.disk {
				t.Errorf("provider snapshot %s = %+v, want a completed snapshot of %s", name, s, w.disk)
			}
			if len(s.Tags) < 2 {
				t.Errorf("snapshot %s tags = %v, want the backup's tags", name, s.Tags)
			}
		}
		for _, action := range e.polls {
			// Two snapshots, each seen in progress PendingReads times.
			if n := e.cloud.Calls(action); n < 2*2 {
				t.Errorf("%s called %d times: the wait for completion did not poll", action, n)
			}
		}
		if e.name == "aws" && snaps[recs[0].ID].Tags["Name"] != "main-20261124t214842z-pgdata" {
			t.Errorf("EBS Name tag = %q", snaps[recs[0].ID].Tags["Name"])
		}

		// Recovery: the operator makes disks from the snapshots, attaches
		// them to a new instance and mounts them where they were.
		rec := &catalog.Backup{ID: "20261124T214842Z", Snapshots: recs, DataDirectory: m.pgdata}
		r := newRecoveryMachine(t, e, m, rec, "db2")
		if err := snapshot.CheckRecovery(ctx, p, r.host(), "db2", rec, m.pgdata); err != nil {
			t.Fatal(err)
		}
		// The original instance's disks are not made from the snapshots.
		err = snapshot.CheckRecovery(ctx, p, m.host(), "db1", rec, m.pgdata)
		if !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "no disk created from snapshot") {
			t.Fatalf("recovery check on the source instance: %v", err)
		}
		// A data directory off the snapshots' disks is refused.
		if err := snapshot.CheckRecovery(ctx, p, r.host(), "db2", rec, t.TempDir()); !errors.Is(err, snapshot.ErrMount) {
			t.Fatalf("recovery into another directory: %v", err)
		}

		if err := snapshot.DeleteAll(ctx, rec, e.open); err != nil {
			t.Fatal(err)
		}
		if live := e.cloud.Live(); len(live) != 0 {
			t.Fatalf("snapshots left after DeleteAll: %v", live)
		}
		// Again: everything is already gone, which is fine.
		if err := snapshot.DeleteAll(ctx, rec, e.open); err != nil {
			t.Fatalf("second DeleteAll: %v", err)
		}
	})
}

// newRecoveryMachine builds instance with disks made from rec's snapshots,
// mounted at the recorded mount points.
func newRecoveryMachine(t *testing.T, e *cloudEnv, src *machine, rec *catalog.Backup, instance string) *machine {
	r := &machine{tree: snapshottest.NewTree(t), pgdata: src.pgdata, dataMnt: src.dataMnt, tblsMnt: src.tblsMnt}
	e.cloud.AddDisk(snapshottest.Disk{Name: instance + "-boot", SizeGiB: 10})
	e.attach(r.tree, instance, instance+"-boot", -1, "sda")
	for i, s := range rec.Snapshots {
		disk := instance + "-" + s.Disk
		if err := e.cloud.DiskFromSnapshot(disk, s.ID[strings.LastIndex(s.ID, "/")+1:]); err != nil {
			t.Fatal(err)
		}
		kernel := "sd" + string(rune('c'+i))
		e.attach(r.tree, instance, disk, i+2, kernel)
		r.tree.Mount(kernel, s.MountPoint, "xfs", "rw")
	}
	return r
}

func TestRecoveryRefusesWrongMounts(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		targets, err := snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata", "pgtblspc"}, []string{m.pgdata, m.tblspc})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := snapshot.Take(ctx, p, targets, options)
		if err != nil {
			t.Fatal(err)
		}
		rec := &catalog.Backup{ID: "b1", Snapshots: recs}
		// Disks made and attached, but mounted swapped.
		tree := snapshottest.NewTree(t)
		for i, s := range recs {
			disk := "db2-" + s.Disk
			if err := e.cloud.DiskFromSnapshot(disk, s.ID[strings.LastIndex(s.ID, "/")+1:]); err != nil {
				t.Fatal(err)
			}
			e.attach(tree, "db2", disk, i, "sd"+string(rune('c'+i)))
		}
		tree.Mount("sdd", m.dataMnt, "xfs", "rw")
		tree.Mount("sdc", m.tblsMnt, "xfs", "rw")
		err = snapshot.CheckRecovery(ctx, p, snapshot.LocalHost{Root: tree.Root}, "db2", rec, m.pgdata)
		if !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "is mounted from /dev/sdd, not from disk db2-pgdata") {
			t.Fatalf("swapped mounts: %v", err)
		}
		// Not mounted at all.
		tree2 := snapshottest.NewTree(t)
		for i, s := range recs {
			e.attach(tree2, "db3", "db2-"+s.Disk, i, "sd"+string(rune('c'+i)))
		}
		err = snapshot.CheckRecovery(ctx, p, snapshot.LocalHost{Root: tree2.Root}, "db3", rec, m.pgdata)
		if !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "nothing is mounted at "+m.dataMnt) {
			t.Fatalf("unmounted disks: %v", err)
		}
	})
}

func TestDiskNotAttached(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		e.cloud.AddDisk(snapshottest.Disk{Name: "elsewhere", SizeGiB: 1})
		_, err = snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata", "elsewhere"}, []string{m.pgdata})
		if !errors.Is(err, snapshot.ErrNotFound) || !strings.Contains(err.Error(), "disk elsewhere is not attached to instance db1") {
			t.Fatalf("Plan with an unattached disk: %v", err)
		}
		_, err = snapshot.Plan(ctx, p, m.host(), "nosuchvm", []string{"pgdata"}, []string{m.pgdata})
		if !errors.Is(err, snapshot.ErrNotFound) {
			t.Fatalf("Plan on a missing instance: %v", err)
		}
		if n := len(e.cloud.Snapshots()); n != 0 {
			t.Fatalf("%d snapshots made by a refused plan", n)
		}
	})
}

func TestMountCheck(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		// The tablespace's disk is not listed.
		_, err = snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata"}, []string{m.pgdata, m.tblspc})
		if !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "directory "+m.tblspc+" is on /dev/nvme2n1") {
			t.Fatalf("tablespace off the listed disks: %v", err)
		}
		// PGDATA on the boot disk, through a symbolic link.
		onBoot := filepath.Join(t.TempDir(), "pgdata")
		if err := os.Symlink(m.pgdata, onBoot); err != nil {
			t.Fatal(err)
		}
		if _, err := snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata"}, []string{onBoot}); err != nil {
			t.Fatalf("PGDATA through a link onto a listed disk: %v", err)
		}
		_, err = snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata"}, []string{filepath.Dir(onBoot)})
		if !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "not on a listed disk") {
			t.Fatalf("directory on the boot disk: %v", err)
		}
		// A listed disk whose device this machine does not show: gbc runs
		// on another instance.
		other := snapshottest.NewTree(t)
		_, err = snapshot.Plan(ctx, p, snapshot.LocalHost{Root: other.Root}, "db1", []string{"pgdata"}, []string{m.pgdata})
		if !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "no block device of this machine") {
			t.Fatalf("disk of another machine: %v", err)
		}
	})
}

func TestSnapshotFails(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		targets, err := snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata", "pgtblspc"}, []string{m.pgdata})
		if err != nil {
			t.Fatal(err)
		}
		e.cloud.SetOutcome(snapshottest.Fail, 1)
		made, err := snapshot.Take(ctx, p, targets, options)
		if !errors.Is(err, snapshot.ErrFailed) {
			t.Fatalf("Take of failing snapshots: %v", err)
		}
		if len(made) != 2 || made[0].ID == "" || made[1].ID == "" {
			t.Fatalf("failed snapshots not returned for clean-up: %+v", made)
		}
		if err := snapshot.DeleteAll(ctx, &catalog.Backup{ID: "b", Snapshots: made}, e.open); err != nil {
			t.Fatalf("delete failed snapshots: %v", err)
		}
	})
}

func TestSnapshotTimeout(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		p, err := e.open(context.Background(), snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		targets, err := snapshot.Plan(context.Background(), p, m.host(), "db1", []string{"pgdata"}, []string{m.pgdata})
		if err != nil {
			t.Fatal(err)
		}
		e.cloud.SetOutcome(snapshottest.Hang, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		made, err := snapshot.Take(ctx, p, targets, options)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "--snapshot-timeout") {
			t.Fatalf("Take of a snapshot that never completes: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("timeout took %v", d)
		}
		if len(made) != 1 || made[0].ID == "" {
			t.Fatalf("pending snapshot not returned for clean-up: %+v", made)
		}
		if err := snapshot.DeleteAll(context.Background(), &catalog.Backup{ID: "b", Snapshots: made}, e.open); err != nil {
			t.Fatal(err)
		}
		if live := e.cloud.Live(); len(live) != 0 {
			t.Fatalf("snapshots left: %v", live)
		}
	})
}

func TestDeleteAlreadyGone(t *testing.T) {
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		id := map[string]string{
			"aws":   "snap-0123456789abcdef0",
			"gcp":   "main-20261124t214842z-pgdata",
			"azure": snapshottest.AzureID("sub-1", "rg-db", "snapshots", "main-20261124t214842z-pgdata"),
		}[e.name]
		if err := p.Delete(ctx, catalog.Snapshot{Provider: e.name, ID: id}); err != nil {
			t.Fatalf("delete of a missing snapshot: %v", err)
		}
	})
}

func TestErrorReplies(t *testing.T) {
	create := map[string]string{"aws": "CreateSnapshot", "gcp": "snapshots.insert", "azure": "snapshots.put"}
	code := map[string]string{"aws": "UnauthorizedOperation", "gcp": "forbidden", "azure": "AuthorizationFailed"}
	eachProvider(t, func(t *testing.T, e *cloudEnv) {
		ctx := context.Background()
		p, err := e.open(ctx, snapshot.Config{Provider: e.name})
		if err != nil {
			t.Fatal(err)
		}
		m := newMachine(t, e, "db1")
		targets, err := snapshot.Plan(ctx, p, m.host(), "db1", []string{"pgdata"}, []string{m.pgdata})
		if err != nil {
			t.Fatal(err)
		}
		e.cloud.Inject(create[e.name], snapshottest.Fault{Status: 403, Code: code[e.name]})
		made, err := snapshot.Take(ctx, p, targets, options)
		if err == nil || !strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), code[e.name]) {
			t.Fatalf("Take with a refused create: %v", err)
		}
		if len(made) != 0 {
			t.Fatalf("records of snapshots never made: %+v", made)
		}
	})
}

func TestAWSLock(t *testing.T) {
	e := awsEnv(t)
	ctx := context.Background()
	p, err := e.open(ctx, snapshot.Config{Provider: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	m := newMachine(t, e, "db1")
	// By instance id rather than Name tag.
	targets, err := snapshot.Plan(ctx, p, m.host(), snapshottest.AWSInstanceID("db1"), []string{snapshottest.AWSVolumeID("pgdata")}, []string{m.pgdata})
	if err != nil {
		t.Fatal(err)
	}
	made, err := snapshot.Take(ctx, p, targets, func(t snapshot.Target) snapshot.Options {
		o := options(t)
		o.Lock = &snapshot.Lock{Mode: "compliance", Days: 7}
		return o
	})
	if err != nil {
		t.Fatal(err)
	}
	s := e.cloud.Snapshots()[made[0].ID]
	if s.LockMode != "compliance" || s.LockDays != 7 || made[0].Details["lock_mode"] != "compliance" || made[0].Details["lock_expires_on"] == "" {
		t.Fatalf("lock not applied: %+v %+v", s, made[0].Details)
	}
	// A locked snapshot cannot be deleted: the error says so.
	err = snapshot.DeleteAll(ctx, &catalog.Backup{ID: "b", Snapshots: made}, e.open)
	if err == nil || !strings.Contains(err.Error(), "SnapshotLocked") {
		t.Fatalf("delete of a locked snapshot: %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		c    snapshot.Config
		want string
	}{
		{snapshot.Config{Provider: "aws"}, ""},
		{snapshot.Config{Provider: "gcp", Zone: "z"}, "--gcp-project"},
		{snapshot.Config{Provider: "gcp", Project: "p"}, "--snapshot-zone"},
		{snapshot.Config{Provider: "azure", SubscriptionID: "s"}, "--azure-resource-group"},
		{snapshot.Config{Provider: "ibm"}, "use one of aws, gcp, azure"},
		{snapshot.Config{Provider: "aws", Endpoint: "http://10.1.2.3:80"}, "loopback"},
		{snapshot.Config{Provider: "aws", Endpoint: "http://127.0.0.1:8080"}, ""},
		{snapshot.Config{Provider: "aws", Endpoint: "https://ec2.internal"}, ""},
		{snapshot.Config{Provider: "aws", Endpoint: "ec2.internal"}, "use a URL"},
	} {
		err := tc.c.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v.Check() = %v, want %q", tc.c, err, tc.want)
		}
	}
	for _, l := range []*snapshot.Lock{nil, {Mode: "governance", Days: 1}} {
		if err := l.Check(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
	for _, l := range []*snapshot.Lock{{Mode: "strict", Days: 1}, {Mode: "compliance", Days: 0}} {
		if err := l.Check(); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

func TestSnapshotName(t *testing.T) {
	got := snapshot.SnapshotName("Main", "20261124T214842Z", "https://x/zones/z/disks/pg-data")
	if got != "main-20261124t214842z-pg-data" {
		t.Fatalf("SnapshotName = %q", got)
	}
	if !slices.Contains(snapshot.Providers, "azure") {
		t.Fatal("azure missing from Providers")
	}
}
