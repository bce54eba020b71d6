package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/snapshot/snapshottest"
)

func TestParseMountInfo(t *testing.T) {
	m, err := parseMountInfo(`36 35 98:0 /mnt1 /srv/pg\040data rw,noatime master:1 - ext4 /dev/root rw,errors=continue`)
	if err != nil {
		t.Fatal(err)
	}
	want := Mount{MountPoint: "/srv/pg data", Source: "/dev/root", FSType: "ext4", Options: "rw,noatime,errors=continue", DevNo: "98:0"}
	if !equalMount(m, want) {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	// No optional fields at all, and a trailing backslash left as is.
	m, err = parseMountInfo(`22 1 8:1 / /a\ rw - xfs /dev/sda1 rw`)
	if err != nil || m.MountPoint != `/a\` || m.Options != "rw" {
		t.Fatalf("got %+v, %v", m, err)
	}
	if _, err := parseMountInfo("garbage"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func equalMount(a, b Mount) bool {
	return a.MountPoint == b.MountPoint && a.Source == b.Source && a.FSType == b.FSType && a.Options == b.Options && a.DevNo == b.DevNo && slices.Equal(a.Disks, b.Disks)
}

func TestLocalHost(t *testing.T) {
	tr := snapshottest.NewTree(t)
	tr.Disk("xvda", "")
	tr.Partition("xvda", "xvda1")
	tr.Disk("nvme1n1", "vol0123456789abcdef0", "disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0")
	tr.Disk("sdc", "", "disk/azure/scsi1/lun0")
	tr.Disk("sdd", "")
	tr.Mapper("dm-0", "sdc")
	tr.Mapper("dm-1", "sdc", "sdd")
	tr.Mount("xvda1", "/", "ext4", "rw")
	tr.Mount("nvme1n1", "/srv/pg data", "xfs", "rw,noatime")
	tr.Mount("dm-0", "/srv/lvm", "xfs", "rw")
	tr.Mount("dm-1", "/srv/striped", "xfs", "rw")
	tr.Mount("", "/srv/pg data/tmp", "tmpfs", "rw")
	tr.Mount("nvme1n1", "/srv/lvm", "xfs", "rw") // over-mounts dm-0
	h := LocalHost{Root: tr.Root}

	ms, err := h.Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, mnt string
		disks     []string
	}{
		{"/var/lib", "/", []string{"xvda"}},
		{"/srv/pg data/15/main", "/srv/pg data", []string{"nvme1n1"}},
		{"/srv/pg data/tmp/x", "/srv/pg data/tmp", nil},
		{"/srv/pg datax", "/", []string{"xvda"}},
		{"/srv/lvm/a", "/srv/lvm", []string{"nvme1n1"}},
		{"/srv/striped", "/srv/striped", []string{"sdc", "sdd"}},
	} {
		m, ok := mountOf(ms, tc.path)
		if !ok || m.MountPoint != tc.mnt || !slices.Equal(m.Disks, tc.disks) {
			t.Errorf("mountOf(%s) = %+v, want %s on %v", tc.path, m, tc.mnt, tc.disks)
		}
	}
	if m, _ := mountAt(ms, "/srv/lvm"); !slices.Equal(m.Disks, []string{"nvme1n1"}) {
		t.Errorf("over-mounted /srv/lvm shows %v", m.Disks)
	}

	for _, tc := range []struct {
		l    Locator
		want string
	}{
		{Locator{Links: []string{"disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"}}, "nvme1n1"},
		{Locator{Serial: "vol0123456789abcdef0"}, "nvme1n1"},
		{Locator{Links: []string{"disk/azure/data/by-lun/0", "disk/azure/scsi1/lun0"}}, "sdc"},
		{Locator{Names: xenNames("/dev/sda")}, "xvda"},
		{Locator{Links: []string{"disk/by-id/google-nothere"}, Serial: "vol1", Names: []string{"sdz"}}, ""},
	} {
		got, err := h.Locate(tc.l)
		if err != nil || got != tc.want {
			t.Errorf("Locate(%+v) = %q, %v; want %q", tc.l, got, err, tc.want)
		}
	}
}

// fakeProvider is a Provider over a fixed list of disks, for checks that
// need no cloud.
type fakeProvider struct{ disks []Disk }

func (fakeProvider) Name() string { return "fake" }
func (f fakeProvider) AttachedDisks(context.Context, string) ([]Disk, error) {
	return f.disks, nil
}
func (fakeProvider) Snapshot(context.Context, Disk, Options) (catalog.Snapshot, error) {
	return catalog.Snapshot{}, errors.New("not here")
}
func (fakeProvider) Delete(context.Context, catalog.Snapshot) error { return nil }

func TestPlanRefusesUnsafeLayouts(t *testing.T) {
	dir := t.TempDir()
	striped, lvm, twice1, twice2 := filepath.Join(dir, "striped"), filepath.Join(dir, "lvm"), filepath.Join(dir, "p1"), filepath.Join(dir, "p2")
	for _, d := range []string{striped, lvm, twice1, twice2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr := snapshottest.NewTree(t)
	tr.Disk("sdc", "", "disk/azure/scsi1/lun0")
	tr.Disk("sdd", "", "disk/azure/scsi1/lun1")
	tr.Disk("sde", "", "disk/azure/scsi1/lun2")
	tr.Partition("sde", "sde1")
	tr.Partition("sde", "sde2")
	tr.Mapper("dm-0", "sdc", "sdd")
	tr.Mapper("dm-1", "sde1")
	tr.Mount("dm-0", striped, "xfs", "rw")
	tr.Mount("sde1", twice1, "xfs", "rw")
	tr.Mount("sde2", twice2, "xfs", "rw")
	p := fakeProvider{disks: []Disk{
		{Name: "a", ID: "id-a", Locator: Locator{Links: []string{"disk/azure/scsi1/lun0"}}},
		{Name: "b", ID: "id-b", Locator: Locator{Links: []string{"disk/azure/scsi1/lun1"}}},
		{Name: "c", ID: "id-c", Locator: Locator{Links: []string{"disk/azure/scsi1/lun2"}}},
	}}
	h := LocalHost{Root: tr.Root}
	ctx := context.Background()

	_, err := Plan(ctx, p, h, "vm", []string{"a", "b"}, []string{striped})
	if !errors.Is(err, ErrMount) || !strings.Contains(err.Error(), "spans disks sdc, sdd") {
		t.Errorf("striped volume: %v", err)
	}
	_, err = Plan(ctx, p, h, "vm", []string{"c"}, []string{twice1, twice2})
	if !errors.Is(err, ErrMount) || !strings.Contains(err.Error(), "mounted at both") {
		t.Errorf("two mounts of one disk: %v", err)
	}
	_, err = Plan(ctx, p, h, "vm", []string{"a", "a"}, []string{striped})
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("disk listed twice: %v", err)
	}
	_, err = Plan(ctx, p, h, "vm", []string{"a"}, nil)
	if !errors.Is(err, ErrMount) || !strings.Contains(err.Error(), "is not mounted") {
		t.Errorf("unmounted disk: %v", err)
	}
	_, err = Plan(ctx, p, h, "vm", nil, []string{striped})
	if err == nil || !strings.Contains(err.Error(), "--snapshot-disk") {
		t.Errorf("no disks: %v", err)
	}
	// One partition of a disk holding PGDATA, the disk by its id.
	ts, err := Plan(ctx, p, h, "vm", []string{"id-c"}, []string{twice1})
	if err != nil || len(ts) != 1 || ts[0].Device != "sde" || ts[0].Mount.MountPoint != twice1 {
		t.Errorf("partition: %+v, %v", ts, err)
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("very-long-server-name-", 5)
	for _, tc := range []struct{ in, gcp, azure string }{
		{"main-20261124t214842z-pgdata", "main-20261124t214842z-pgdata", "main-20261124t214842z-pgdata"},
		{"1st_Server.x", "s-1st-server-x", "1st_Server.x"},
		{"--x--", "x", "x"},
	} {
		if g := gcpName(tc.in); g != tc.gcp {
			t.Errorf("gcpName(%q) = %q, want %q", tc.in, g, tc.gcp)
		}
		if a := azureName(tc.in); a != tc.azure {
			t.Errorf("azureName(%q) = %q, want %q", tc.in, a, tc.azure)
		}
	}
	g1, g2 := gcpName(long+"a"), gcpName(long+"b")
	if len(g1) > 63 || g1 == g2 {
		t.Errorf("long GCP names %q and %q", g1, g2)
	}
	if a := azureName(long + long); len(a) > 80 {
		t.Errorf("long Azure name %q", a)
	}
	labels := gcpLabels(map[string]string{"Team": "DBA Ops", "9lives": "", "gbc-backup-id": "20261124T214842Z"})
	want := map[string]string{"team": "dba-ops", "t-9lives": "", "gbc-backup-id": "20261124t214842z"}
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			t.Errorf("gcpLabels: %s=%q, want %q (all: %v)", k, got, v, labels)
		}
	}
	if !sameSnapshot("https://x/projects/p/global/snapshots/s1", "s1") || !sameSnapshot("/SUBSCRIPTIONS/a/x", "/subscriptions/a/x") || sameSnapshot("", "") {
		t.Error("sameSnapshot")
	}
	if g, n := azureIDParts("/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/snapshots/n1", "snapshots"); g != "RG" || n != "n1" {
		t.Errorf("azureIDParts = %q %q", g, n)
	}
}

func TestWriteLabelFiles(t *testing.T) {
	dir := t.TempDir()
	rec := &catalog.Backup{ID: "b1", BackupLabel: "START WAL LOCATION: 0/2000028\n", TablespaceMap: "16384 /srv/ts\n"}
	for i := 0; i < 2; i++ { // a second run of the same recovery is harmless
		if err := WriteLabelFiles(dir, rec); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"backup_label": rec.BackupLabel, "tablespace_map": rec.TablespaceMap} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v", name, got, err)
		}
	}
	other := &catalog.Backup{ID: "b2", BackupLabel: "START WAL LOCATION: 0/5000028\n"}
	if err := WriteLabelFiles(dir, other); err == nil || !strings.Contains(err.Error(), "another backup's backup_label") {
		t.Fatalf("label of another backup: %v", err)
	}
	if err := WriteLabelFiles(dir, &catalog.Backup{ID: "b3"}); err == nil {
		t.Fatal("empty label accepted")
	}
}

func TestConfigFor(t *testing.T) {
	rec := &catalog.Backup{ID: "b1", Snapshots: []catalog.Snapshot{{Provider: "azure", ID: "x",
		Details: map[string]string{"subscription_id": "s1", "resource_group": "rg-old", "location": "westeurope"}}}}
	c, err := ConfigFor(rec, Config{ResourceGroup: "rg-new", Endpoint: "https://arm.example"})
	if err != nil || c.Provider != "azure" || c.SubscriptionID != "s1" || c.ResourceGroup != "rg-new" || c.Endpoint != "https://arm.example" {
		t.Fatalf("ConfigFor = %+v, %v", c, err)
	}
	if _, err := ConfigFor(rec, Config{Provider: "aws"}); err == nil {
		t.Fatal("a provider other than the record's accepted")
	}
	if _, err := ConfigFor(&catalog.Backup{ID: "b2"}, Config{}); err == nil {
		t.Fatal("a backup without snapshots accepted")
	}
}

// OpenWith puts a command's options (an endpoint: records hold none) over
// each recorded configuration, and never changes the recorded provider.
func TestOpenWith(t *testing.T) {
	ctx := context.Background()
	recorded := Config{Provider: "azure", SubscriptionID: "s1", ResourceGroup: "rg"}
	if _, err := OpenWith(Config{Endpoint: "http://10.1.2.3"})(ctx, recorded); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("endpoint override not applied: %v", err)
	}
	p, err := OpenWith(Config{Provider: "aws", Endpoint: "http://127.0.0.1:9"})(ctx, recorded)
	if err != nil || p.Name() != "azure" {
		t.Fatalf("OpenWith = %v, %v; want the recorded azure provider", p, err)
	}
	if c := recorded.overlay(Config{PollInterval: 3}); c != (Config{Provider: "azure", SubscriptionID: "s1", ResourceGroup: "rg", PollInterval: 3}) {
		t.Fatalf("overlay = %+v", c)
	}
}
