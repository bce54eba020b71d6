package prune

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/retention"
)

// incremental stores a DONE incremental backup on parent.
func incremental(t *testing.T, s cloud.Store, begin time.Time, parent *catalog.Backup, beginSeg, endSeg uint32) *catalog.Backup {
	t.Helper()
	b := backup(t, s, begin, catalog.StatusDone, 1, beginSeg, endSeg, "")
	b.Type, b.ParentID = catalog.TypeIncr, parent.ID
	if err := catalog.Save(context.Background(), s, layout, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// chainStore holds f1 <- i1 <- i2 and a newer full f2, with WAL 1..14.
func chainStore(t *testing.T, s cloud.Store, now time.Time) (f1, i1, i2, f2 *catalog.Backup) {
	f1 = backup(t, s, now.Add(-4*day), catalog.StatusDone, 1, 2, 3, "")
	i1 = incremental(t, s, now.Add(-3*day), f1, 5, 6)
	i2 = incremental(t, s, now.Add(-2*day), i1, 8, 9)
	f2 = backup(t, s, now.Add(-1*day), catalog.StatusDone, 1, 11, 12, "")
	wals(t, s, 1, 1, 14)
	return
}

// recordOrder lists the ids whose records s saw deleted, in order.
func recordOrder(s *opStore) []string {
	var out []string
	for _, call := range s.deletes {
		for _, k := range call {
			if strings.HasSuffix(k, "/backup.json") {
				out = append(out, strings.Split(k, "/")[2])
			}
		}
	}
	return out
}

func TestRunWithDependents(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: openStore(t)}
	now := time.Now()
	f1, i1, i2, f2 := chainStore(t, s, now)
	before := keys(t, s, "")

	// Refused without --with-dependents, naming every dependent.
	_, err := Run(ctx, s, layout, Options{Target: f1.ID, OrphanAge: day, Now: now})
	if !errors.Is(err, retention.ErrRefused) || !strings.Contains(err.Error(), i1.ID+", "+i2.ID) {
		t.Fatalf("delete of a full with dependents: %v", err)
	}
	// A dry run shows all of them, children first, and deletes nothing.
	opt := Options{Target: f1.ID, WithDependents: true, OrphanAge: day, Now: now}
	dry := opt
	dry.DryRun = true
	rep, err := Run(ctx, s, layout, dry)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{i2.ID, i1.ID, f1.ID}
	if got := ids(rep.Deleted); !reflect.DeepEqual(got, want) {
		t.Errorf("dry run deletes %v, want %v", got, want)
	}
	if after := keys(t, s, ""); !reflect.DeepEqual(before, after) || len(s.deletes) != 0 {
		t.Fatal("a refused delete or a dry run changed the store")
	}

	rep, err = Run(ctx, s, layout, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rep.Deleted); !reflect.DeepEqual(got, want) {
		t.Errorf("deleted %v, want %v", got, want)
	}
	if got := recordOrder(s); !reflect.DeepEqual(got, want) {
		t.Errorf("records deleted in the order %v, want %v (children first)", got, want)
	}
	if got := keys(t, s, layout.BaseRoot()); len(got) != 4 || !strings.Contains(got[0], f2.ID) {
		t.Errorf("backups left: %v, want f2's 4 objects", got)
	}
	if got, want := keys(t, s, layout.WALRoot()), walKeys(1, span(11, 14)...); !reflect.DeepEqual(got, want) {
		t.Errorf("WAL left %v, want %v", got, want)
	}
}

// A backup that stays although planned for deletion (here: kept while the
// run was under way) holds every backup it is built on: the run never
// leaves an incremental backup without its parent.
func TestRunSkippedChildHoldsParents(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: openStore(t)}
	now := time.Now()
	f1, i1, i2, f2 := chainStore(t, s, now)
	// Objects without a record, older than the chain: deleted first.
	orphan := "20200101T000000Z"
	put(t, s, layout.PartKey(orphan, "", 0, "zst"), "part")
	added := false
	s.onDelete = func(keys []string) error {
		if !added && strings.Contains(keys[0], orphan) {
			added = true
			b, err := catalog.Load(ctx, s.Store, layout, i2.ID)
			if err != nil {
				return err
			}
			b.Keep = catalog.KeepStandalone
			return catalog.Save(ctx, s.Store, layout, b)
		}
		return nil
	}
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now.Add(2 * day)})
	if err != nil {
		t.Fatal(err)
	}
	if !added {
		t.Fatal("the orphan was not deleted first")
	}
	if got := ids(rep.Deleted); !reflect.DeepEqual(got, []string{orphan}) {
		t.Errorf("deleted %v, want the orphan only", got)
	}
	if got, want := ids(rep.Skipped), []string{i2.ID, i1.ID, f1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("skipped %v, want %v", got, want)
	}
	if len(rep.Skipped) == 3 && !strings.Contains(rep.Skipped[2].Reason, i1.ID) {
		t.Errorf("reason f1 stays: %q", rep.Skipped[2].Reason)
	}
	for _, b := range []*catalog.Backup{f1, i1, i2, f2} {
		if k := keys(t, s, layout.BackupRoot(b.ID)); len(k) != 4 {
			t.Errorf("backup %s: %v, want its 4 objects", b.ID, k)
		}
	}
}
