package backup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// A backup whose STARTED record was removed (gbc-backup-delete took it for
// an orphan) or replaced must not be committed as DONE over missing parts.
func TestDoneRefusesRecordChangedMeanwhile(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s cloud.Store, l catalog.Layout, id string)
		ok     bool
	}{
		{name: "unchanged", change: func(*testing.T, cloud.Store, catalog.Layout, string) {}, ok: true},
		{name: "deleted", change: func(t *testing.T, s cloud.Store, l catalog.Layout, id string) {
			if err := s.Delete(ctx, l.RecordKey(id)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "failed", change: func(t *testing.T, s cloud.Store, l catalog.Layout, id string) {
			b, err := catalog.Load(ctx, s, l, id)
			if err != nil {
				t.Fatal(err)
			}
			b.Status = catalog.StatusFailed
			if err := catalog.Save(ctx, s, l, b); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := cloud.NewMem()
			now := time.Date(2026, 11, 24, 21, 48, 42, 0, time.UTC)
			codec, _ := compress.Lookup("zstd")
			r := &run{o: Options{Store: s, Server: "main", Codec: codec, now: func() time.Time { return now }}, layout: catalog.Layout{Server: "main"}}
			r.stopBeat = func() {}
			if err := r.create(ctx, r.newRecord("local")); err != nil {
				t.Fatal(err)
			}
			tc.change(t, s, r.layout, r.rec.ID)
			_, err := r.done(ctx)
			if tc.ok {
				if err != nil {
					t.Fatalf("done: %v", err)
				}
				b, err := catalog.Load(ctx, s, r.layout, r.rec.ID)
				if err != nil || b.Status != catalog.StatusDone {
					t.Fatalf("record after done: %+v, %v", b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "not marking it DONE") && !strings.Contains(err.Error(), "read back the STARTED record") {
				t.Fatalf("done over a changed record: err = %v", err)
			}
			if b, err := catalog.Load(ctx, s, r.layout, r.rec.ID); err == nil && b.Status == catalog.StatusDone {
				t.Fatal("a DONE record was written over a changed record")
			}
		})
	}
}
