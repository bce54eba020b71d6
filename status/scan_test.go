package status_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/status"
	"github.com/gbc-backup/gbc/wal"
)

const segSize = 16 << 20

func seg(tli uint32, no uint64) string { return wal.SegmentFromSegNo(tli, no, segSize).String() }

func putWAL(t testing.TB, s cloud.Store, server string, names ...string) {
	t.Helper()
	l := catalog.Layout{Server: server}
	for _, n := range names {
		if err := s.Put(context.Background(), l.WALKey(n, "zst"), cloud.BytesBody([]byte("wal")), cloud.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func putSegs(t testing.TB, s cloud.Store, server string, tli uint32, from, to uint64) {
	t.Helper()
	var names []string
	for no := from; no <= to; no++ {
		names = append(names, seg(tli, no))
	}
	putWAL(t, s, server, names...)
}

func putBackup(t testing.TB, s cloud.Store, server, id string, tli uint32, begin uint64, mod func(*catalog.Backup)) {
	t.Helper()
	start, err := time.Parse(catalog.IDLayout, id)
	if err != nil {
		t.Fatal(err)
	}
	b := &catalog.Backup{ID: id, Server: server, Status: catalog.StatusDone, Timeline: tli, WALSegmentSize: segSize,
		BeginTime: start, EndTime: start.Add(time.Minute), BeginWAL: seg(tli, begin), EndWAL: seg(tli, begin+1),
		StoredSize: 1000, DataSize: 5000}
	if mod != nil {
		mod(b)
	}
	if err := catalog.Save(context.Background(), s, catalog.Layout{Server: server}, b); err != nil {
		t.Fatal(err)
	}
}

func gather(t *testing.T, s cloud.Store, server string) status.Facts {
	t.Helper()
	f, err := status.Gather(t.Context(), s, server)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGatherWhole(t *testing.T) {
	s := cloud.NewMem()
	putBackup(t, s, "main", "20261101T000000Z", 1, 3, nil)
	putBackup(t, s, "main", "20261102T000000Z", 1, 10, func(b *catalog.Backup) { b.Type = catalog.TypeIncr; b.StoredSize = 500 })
	putBackup(t, s, "main", "20261103T000000Z", 1, 12, func(b *catalog.Backup) { b.Status = catalog.StatusFailed; b.Error = "boom" })
	putSegs(t, s, "main", 1, 0, 20) // older WAL than the oldest backup too
	putWAL(t, s, "main", seg(1, 3)+".00000028.backup", seg(1, 21)+".partial")
	f := gather(t, s, "main")
	if f.Backups != 2 || f.StoredSize != 1500 {
		t.Errorf("backups %d of %d bytes, want 2 of 1500", f.Backups, f.StoredSize)
	}
	if f.Last == nil || f.Last.ID != "20261102T000000Z" || f.Last.Type != "incr" {
		t.Errorf("last backup %+v, want 20261102T000000Z, incr", f.Last)
	}
	if f.LastFailed == nil || f.LastFailed.Error != "boom" {
		t.Errorf("last failed %+v, want the FAILED attempt", f.LastFailed)
	}
	if f.NewestWAL == nil || f.NewestWAL.Name != seg(1, 20) {
		t.Errorf("newest WAL %+v, want %s (complete segments only)", f.NewestWAL, seg(1, 20))
	}
	if f.CheckedFrom != seg(1, 3) || len(f.Gaps) != 0 {
		t.Errorf("checked from %s, gaps %+v; want from %s, none", f.CheckedFrom, f.Gaps, seg(1, 3))
	}
	if f.Drill != nil {
		t.Errorf("drill %+v, want none", f.Drill)
	}
}

func TestGatherGaps(t *testing.T) {
	s := cloud.NewMem()
	putBackup(t, s, "main", "20261101T000000Z", 1, 3, nil)
	putBackup(t, s, "main", "20261102T000000Z", 1, 10, nil)
	putSegs(t, s, "main", 1, 4, 4) // 3 missing: the oldest backup's own begin
	putSegs(t, s, "main", 1, 7, 11)
	putSegs(t, s, "main", 1, 13, 14)
	f := gather(t, s, "main")
	want := []status.Gap{
		{From: seg(1, 3), To: seg(1, 3), Segments: 1},
		{From: seg(1, 5), To: seg(1, 6), Segments: 2},
		{From: seg(1, 12), To: seg(1, 12), Segments: 1, AfterLatest: true},
	}
	if !slices.Equal(f.Gaps, want) {
		t.Errorf("gaps\n%+v, want\n%+v", f.Gaps, want)
	}
	v := status.Decide(f, status.Limits{}, time.Now())
	if v.State != status.Critical || len(v.Reasons) != 3 {
		t.Errorf("verdict %+v, want critical with 3 reasons", v)
	}
}

func TestGatherAcrossLogs(t *testing.T) {
	s := cloud.NewMem()
	putBackup(t, s, "main", "20261101T000000Z", 1, 250, nil)
	putSegs(t, s, "main", 1, 250, 300) // logs 0 and 1
	f := gather(t, s, "main")
	if len(f.Gaps) != 0 || f.NewestWAL.Name != seg(1, 300) {
		t.Errorf("gaps %+v, newest %+v; want none, %s", f.Gaps, f.NewestWAL, seg(1, 300))
	}
	s.Delete(t.Context(), catalog.Layout{Server: "main"}.WALKey(seg(1, 256), "zst"))
	f = gather(t, s, "main")
	if want := []status.Gap{{From: seg(1, 256), To: seg(1, 256), Segments: 1, AfterLatest: true}}; !slices.Equal(f.Gaps, want) {
		t.Errorf("gaps %+v, want %+v", f.Gaps, want)
	}
}

func TestGatherTimelines(t *testing.T) {
	s := cloud.NewMem()
	putBackup(t, s, "main", "20261101T000000Z", 1, 3, nil)
	putSegs(t, s, "main", 1, 3, 9)
	putWAL(t, s, "main", seg(1, 9)+".partial")
	// Timeline 2 forked in segment 9: its copy of 9 and what follows
	// are on the path, timeline 1's 9 and later (a dead branch) are not.
	putSegs(t, s, "main", 1, 11, 12)
	putSegs(t, s, "main", 2, 9, 12)
	hist := "1\t0/9000028\tno recovery target specified\n"
	if err := s.Put(t.Context(), "main/wals/00000002.history", cloud.BytesBody([]byte(hist)), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	f := gather(t, s, "main")
	if len(f.Gaps) != 0 || f.NewestWAL.Name != seg(2, 12) {
		t.Errorf("gaps %+v, newest %+v; want none, %s", f.Gaps, f.NewestWAL, seg(2, 12))
	}

	// A hole on timeline 2 is named by its timeline.
	s.Delete(t.Context(), catalog.Layout{Server: "main"}.WALKey(seg(2, 10), "zst"))
	f = gather(t, s, "main")
	if want := []status.Gap{{From: seg(2, 10), To: seg(2, 10), Segments: 1, AfterLatest: true}}; !slices.Equal(f.Gaps, want) {
		t.Errorf("gaps %+v, want %+v", f.Gaps, want)
	}

	// Without timeline 2's history, recovery cannot get there.
	s.Delete(t.Context(), "main/wals/00000002.history")
	f = gather(t, s, "main")
	if want := []status.Gap{{History: "00000002.history", AfterLatest: true}}; !slices.Equal(f.Gaps, want) {
		t.Errorf("gaps %+v, want %+v", f.Gaps, want)
	}
}

func TestGatherStandalone(t *testing.T) {
	s := cloud.NewMem()
	// The WAL between a standalone backup's end and the next backup is
	// deleted by retention on purpose: no gap.
	putBackup(t, s, "main", "20261101T000000Z", 1, 3, func(b *catalog.Backup) { b.Keep = catalog.KeepStandalone })
	putBackup(t, s, "main", "20261101T010000Z", 1, 5, func(b *catalog.Backup) { b.Type, b.ParentID = catalog.TypeIncr, "20261101T000000Z" })
	putBackup(t, s, "main", "20261102T000000Z", 1, 10, nil)
	putSegs(t, s, "main", 1, 3, 4)
	putSegs(t, s, "main", 1, 10, 12)
	f := gather(t, s, "main")
	if f.CheckedFrom != seg(1, 10) || len(f.Gaps) != 0 {
		t.Errorf("checked from %s, gaps %+v; want from %s, none", f.CheckedFrom, f.Gaps, seg(1, 10))
	}
}

func TestGatherNoBackup(t *testing.T) {
	s := cloud.NewMem()
	putSegs(t, s, "main", 1, 1, 5)
	f := gather(t, s, "main")
	if f.Last != nil || f.CheckedFrom != "" || f.NewestWAL == nil || f.NewestWAL.Name != seg(1, 5) {
		t.Errorf("facts %+v, want no backup, no gap check, newest %s", f, seg(1, 5))
	}
	if _, err := status.Gather(t.Context(), s, "mian"); !errors.Is(err, catalog.ErrUnknownServer) {
		t.Errorf("unknown server: %v, want ErrUnknownServer", err)
	}
}

func TestGatherDrill(t *testing.T) {
	s := cloud.NewMem()
	putBackup(t, s, "main", "20261101T000000Z", 1, 3, nil)
	putSegs(t, s, "main", 1, 3, 4)
	l := catalog.Layout{Server: "main"}
	for i, ok := range []bool{true, false} {
		d := &catalog.Drill{Server: "main", BackupID: "20261101T000000Z", OK: ok, RTOSeconds: float64(40 + i),
			Time: time.Date(2026, 11, 2+i, 3, 0, 0, 0, time.UTC)}
		if err := catalog.SaveDrill(t.Context(), s, l, d); err != nil {
			t.Fatal(err)
		}
	}
	f := gather(t, s, "main")
	if f.Drill == nil || f.Drill.OK || f.Drill.RTOSeconds != 41 {
		t.Errorf("drill %+v, want the newest (failed, RTO 41)", f.Drill)
	}
}

// countingStore records the prefixes listed through it.
type countingStore struct {
	cloud.Store
	mu     sync.Mutex
	listed []string
}

func (c *countingStore) Unwrap() cloud.Store { return c.Store }

func (c *countingStore) List(ctx context.Context, prefix string, fn func(cloud.Attrs) error) error {
	c.mu.Lock()
	c.listed = append(c.listed, prefix)
	c.mu.Unlock()
	return c.Store.List(ctx, prefix, fn)
}

func TestGatherListsOnlyWhatIsNeeded(t *testing.T) {
	fs, err := cloud.Open(t.Context(), "file://"+t.TempDir(), cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	s := &countingStore{Store: fs}
	putBackup(t, s, "main", "20261101T000000Z", 1, 600, nil)
	putSegs(t, s, "main", 1, 10, 20)   // log 0: older than every backup
	putSegs(t, s, "main", 1, 600, 610) // log 2
	putSegs(t, s, "other", 1, 600, 610)
	s.listed = nil
	f := gather(t, s, "main")
	if len(f.Gaps) != 0 || f.NewestWAL.Name != seg(1, 610) {
		t.Errorf("gaps %+v, newest %+v", f.Gaps, f.NewestWAL)
	}
	var walLists []string
	for _, p := range s.listed {
		if strings.HasPrefix(p, "main/wals/") {
			walLists = append(walLists, p)
		}
	}
	if want := []string{"main/wals/0000000100000002/"}; !slices.Equal(walLists, want) {
		t.Errorf("WAL listings %q, want %q: only the directory from the oldest backup on", walLists, want)
	}
}

func TestFleet(t *testing.T) {
	s := cloud.NewMem()
	for i, name := range []string{"b", "a", "c"} {
		putBackup(t, s, name, "20261101T000000Z", 1, 3, nil)
		putSegs(t, s, name, 1, 3, 3+uint64(i))
	}
	if err := s.Put(t.Context(), "README", cloud.BytesBody([]byte("not a server")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	facts, err := status.Fleet(t.Context(), s, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range facts {
		got = append(got, fmt.Sprintf("%s:%s", f.Server, f.NewestWAL.Name))
	}
	want := []string{"a:" + seg(1, 4), "b:" + seg(1, 3), "c:" + seg(1, 5)}
	if !slices.Equal(got, want) {
		t.Errorf("fleet %q, want %q", got, want)
	}
	empty, err := status.Fleet(t.Context(), cloud.NewMem(), 0)
	if err != nil || len(empty) != 0 {
		t.Errorf("empty store: %v, %v; want no servers", empty, err)
	}
}
