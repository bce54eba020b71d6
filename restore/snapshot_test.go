package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/snapshot"
)

func TestCheckMethod(t *testing.T) {
	snap := &catalog.Backup{ID: "20261124T200000Z", Method: "snapshot", Snapshots: []catalog.Snapshot{{Provider: "aws", ID: "snap-1"}}}
	file := &catalog.Backup{ID: "20261124T210000Z", Method: "concurrent"}
	for _, c := range []struct {
		b         *catalog.Backup
		fromDisks bool
		want      string // "" for accepted
	}{
		{snap, true, ""},
		{file, false, ""},
		{snap, false, "give --snapshot-recovery-instance"},
		{file, true, "restore it without --snapshot-recovery-instance"},
	} {
		err := checkMethod(c.b, c.fromDisks)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("backup %s, from disks %v: %v", c.b.ID, c.fromDisks, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid)):
			t.Errorf("backup %s, from disks %v: %v, want an invalid request saying %q", c.b.ID, c.fromDisks, err, c.want)
		}
	}
	req := Request{Snapshot: &SnapshotRecovery{Instance: "db2"}, Relocate: map[string]string{"fast": "/mnt/fast"}}
	if err := req.Check(); !errors.Is(err, ErrInvalid) {
		t.Errorf("--tablespace with --snapshot-recovery-instance: %v", err)
	}
}

// fakeDisks is a provider whose instance has one disk attached, made from
// a snapshot, and a machine that may have it mounted.
type fakeDisks struct {
	snapshot.Provider // nil: only the methods below are called
	snapshotID        string
	mountPoint        string // "" when nothing is mounted
}

func (f *fakeDisks) Name() string { return "aws" }
func (f *fakeDisks) AttachedDisks(context.Context, string) ([]snapshot.Disk, error) {
	return []snapshot.Disk{{Name: "db2-pgdata", SourceSnapshot: f.snapshotID, Locator: snapshot.Locator{Names: []string{"sdc"}}}}, nil
}
func (f *fakeDisks) Mounts() ([]snapshot.Mount, error) {
	ms := []snapshot.Mount{{MountPoint: "/", Source: "/dev/sda", Disks: []string{"sda"}}}
	if f.mountPoint != "" {
		ms = append(ms, snapshot.Mount{MountPoint: f.mountPoint, Source: "/dev/sdc", Disks: []string{"sdc"}})
	}
	return ms, nil
}
func (f *fakeDisks) Locate(snapshot.Locator) (string, error) { return "sdc", nil }

// A snapshot recovery checks the disks before it writes, then writes
// backup_label and the recovery configuration into the data directory
// on them, and downloads nothing.
func TestRestoreSnapshot(t *testing.T) {
	f := newFixture(t, "/unused")
	mnt := t.TempDir()
	pgdata := filepath.Join(mnt, "pgdata")
	if err := os.MkdirAll(pgdata, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"PG_VERSION": "15\n", standbySignal: "", autoConf: "# Do not edit\n"} {
		if err := os.WriteFile(filepath.Join(pgdata, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b := &catalog.Backup{Format: 1, ID: "20261124T200000Z", Server: "main", Status: catalog.StatusDone, Method: "snapshot",
		DataDirectory: pgdata, BackupLabel: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n", FromStandby: true,
		Snapshots: []catalog.Snapshot{{Provider: "aws", ID: "snap-0a", Disk: "pgdata", MountPoint: mnt, Details: map[string]string{"region": "eu-west-1"}}}}
	if err := catalog.Save(context.Background(), f.store, f.layout, b); err != nil {
		t.Fatal(err)
	}
	disks := &fakeDisks{snapshotID: "snap-0a"}
	var opened snapshot.Config
	req := f.request(pgdata)
	req.Backup = b.ID
	req.Snapshot = &SnapshotRecovery{Instance: "db2", Override: snapshot.Config{Region: "eu-central-1"}, Host: disks,
		Open: func(_ context.Context, c snapshot.Config) (snapshot.Provider, error) { opened = c; return disks, nil }}
	var ev events
	req.Events = ev.add

	_, err := Restore(context.Background(), req)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, snapshot.ErrMount) || !strings.Contains(err.Error(), "nothing is mounted at "+mnt) {
		t.Fatalf("disk not mounted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(pgdata, "backup_label")); !os.IsNotExist(err) {
		t.Fatalf("a refused recovery wrote backup_label: %v", err)
	}
	if opened.Provider != "aws" || opened.Region != "eu-central-1" {
		t.Errorf("provider opened with %+v, want the record's with the override on top", opened)
	}

	disks.mountPoint = mnt
	ev.got = nil
	rep, err := Restore(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != nil || len(rep.Snapshots) != 1 || rep.Snapshots[0].ID != "snap-0a" || rep.Recovery == nil {
		t.Fatalf("report %+v", rep)
	}
	if label, err := os.ReadFile(filepath.Join(pgdata, "backup_label")); err != nil || string(label) != b.BackupLabel {
		t.Errorf("backup_label %q (%v)", label, err)
	}
	for name, want := range map[string]bool{recoverySignal: true, standbySignal: false} {
		if _, err := os.Stat(filepath.Join(pgdata, name)); (err == nil) != want {
			t.Errorf("%s present: %v, want %v", name, err == nil, want)
		}
	}
	if conf, _ := os.ReadFile(filepath.Join(pgdata, autoConf)); !strings.Contains(string(conf), "restore_command = '/bin/gbc-wal-restore") {
		t.Errorf("%s:\n%s", autoConf, conf)
	}
	if len(ev.got) != 2 || ev.got[0] != (FromStandby{Backup: rep.Backup}) || ev.got[1] != (Started{Backup: rep.Backup, Dest: pgdata, Snapshot: true}) {
		t.Errorf("events %#v", ev.got)
	}
}
