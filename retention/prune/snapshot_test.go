package prune

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/retention"
	"github.com/gbc-backup/gbc/snapshot"
)

// fakeProvider deletes snapshots in memory. It checks that a snapshot is
// deleted while its backup's record still exists (the record is the only
// reference to it), and fails the deletion of the ids in fail.
type fakeProvider struct {
	t     *testing.T
	s     cloud.Store
	mu    sync.Mutex
	fail  map[string]bool
	gone  map[string]bool
	calls int
}

func (p *fakeProvider) Name() string { return "aws" }

func (p *fakeProvider) AttachedDisks(context.Context, string) ([]snapshot.Disk, error) {
	return nil, errors.New("not used")
}

func (p *fakeProvider) Snapshot(context.Context, snapshot.Disk, snapshot.Options) (catalog.Snapshot, error) {
	return catalog.Snapshot{}, errors.New("not used")
}

func (p *fakeProvider) Delete(ctx context.Context, s catalog.Snapshot) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	id := s.Details["backup"]
	if _, err := p.s.Stat(ctx, layout.RecordKey(id)); err != nil {
		p.t.Errorf("snapshot %s deleted after the record of backup %s: %v", s.ID, id, err)
	}
	if p.fail[s.ID] {
		return errors.New("UnauthorizedOperation")
	}
	p.gone[s.ID] = true // already gone is not an error, as for real providers
	return nil
}

func (p *fakeProvider) open(context.Context, snapshot.Config) (snapshot.Provider, error) {
	return p, nil
}

// withSnapshots rewrites b's record as a snapshot backup's with one
// snapshot per disk.
func withSnapshots(t *testing.T, s cloud.Store, b *catalog.Backup, disks ...string) {
	t.Helper()
	b.Method = "snapshot"
	for _, d := range disks {
		b.Snapshots = append(b.Snapshots, catalog.Snapshot{Provider: "aws", ID: "snap-" + b.ID + "-" + d, Disk: d,
			Details: map[string]string{"region": "eu-west-1", "backup": b.ID}})
	}
	if err := catalog.Save(context.Background(), s, layout, b); err != nil {
		t.Fatal(err)
	}
}

// A snapshot backup's snapshots go before its record. When one cannot be
// deleted, the backup stays whole as far as the store goes (and keeps its
// WAL), the rest of the run still happens, and the run fails; the next run
// finishes, tolerating the snapshots already gone.
func TestRunSnapshots(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now()
	var bs []*catalog.Backup
	for i := range 3 {
		b := backup(t, s, now.Add(-time.Duration(3-i)*day), catalog.StatusDone, 1, uint32(2+3*i), uint32(3+3*i), "")
		withSnapshots(t, s, b, "pgdata", "pgtblspc")
		bs = append(bs, b)
	}
	wals(t, s, 1, 1, 10)
	fp := &fakeProvider{t: t, s: s, fail: map[string]bool{bs[1].Snapshots[1].ID: true}, gone: map[string]bool{}}
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	opt := Options{Policy: &p, OrphanAge: day, Now: now, SnapshotOpener: fp.open}

	// The dry run names the snapshots, and asks the provider nothing.
	dry := opt
	dry.DryRun = true
	rep, err := Run(ctx, s, layout, dry)
	if err != nil {
		t.Fatal(err)
	}
	if fp.calls != 0 || len(rep.Deleted) != 2 {
		t.Fatalf("dry run: %d provider calls, deleted %+v", fp.calls, rep.Deleted)
	}
	for i, b := range rep.Deleted {
		want := []Snapshot{{"aws", bs[i].Snapshots[0].ID, "pgdata"}, {"aws", bs[i].Snapshots[1].ID, "pgtblspc"}}
		if !reflect.DeepEqual(b.Snapshots, want) {
			t.Errorf("dry run: snapshots of %s: %+v, want %+v", b.ID, b.Snapshots, want)
		}
	}

	rep, err = Run(ctx, s, layout, opt)
	if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") || !strings.Contains(err.Error(), "record is kept") {
		t.Fatalf("run with a snapshot that cannot be deleted: %v", err)
	}
	if got := ids(rep.Deleted); !reflect.DeepEqual(got, []string{bs[0].ID}) {
		t.Errorf("deleted %v, want %s only", got, bs[0].ID)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].ID != bs[1].ID || !strings.Contains(rep.Skipped[0].Reason, "snapshots") {
		t.Errorf("skipped %+v, want %s", rep.Skipped, bs[1].ID)
	}
	if k := keys(t, s, layout.BackupRoot(bs[1].ID)); len(k) != 4 {
		t.Errorf("backup whose snapshots are not all deleted: %v, want its 4 objects", k)
	}
	// Its WAL stays: the floor is its begin, not the newest backup's.
	if got, want := keys(t, s, layout.WALRoot()), walKeys(1, span(5, 10)...); !reflect.DeepEqual(got, want) {
		t.Errorf("WAL left %v, want %v", got, want)
	}
	if !fp.gone[bs[0].Snapshots[0].ID] || !fp.gone[bs[0].Snapshots[1].ID] || !fp.gone[bs[1].Snapshots[0].ID] {
		t.Errorf("snapshots deleted: %v", fp.gone)
	}

	// Fixed (say, a permission granted): the next run finishes.
	fp.fail = nil
	rep, err = Run(ctx, s, layout, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rep.Deleted); !reflect.DeepEqual(got, []string{bs[1].ID}) || len(rep.Deleted[0].Snapshots) != 2 {
		t.Errorf("second run deleted %+v, want %s and its 2 snapshots", rep.Deleted, bs[1].ID)
	}
	if !fp.gone[bs[1].Snapshots[1].ID] || fp.gone[bs[2].Snapshots[0].ID] {
		t.Errorf("snapshots deleted: %v", fp.gone)
	}
	if got, want := keys(t, s, layout.WALRoot()), walKeys(1, span(8, 10)...); !reflect.DeepEqual(got, want) {
		t.Errorf("WAL left %v, want %v", got, want)
	}
}
