package prune

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/retention"
	"github.com/gbc-backup/gbc/wal"
)

const day = 24 * time.Hour

var layout = catalog.Layout{Server: "main"}

func openStore(t *testing.T) cloud.Store {
	t.Helper()
	s, err := cloud.Open(context.Background(), "file://"+t.TempDir(), cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s cloud.Store, key, content string) {
	t.Helper()
	if err := s.Put(context.Background(), key, cloud.BytesBody([]byte(content)), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// seg names segment number n of timeline tli, for 16 MiB segments.
func seg(tli, n uint32) string { return fmt.Sprintf("%08X%08X%08X", tli, n/256, n%256) }

// backup stores a backup of the given status whose id is its begin time,
// with two data parts and a manifest, and returns its record.
func backup(t *testing.T, s cloud.Store, begin time.Time, status catalog.Status, tli, beginSeg, endSeg uint32, keep string) *catalog.Backup {
	t.Helper()
	id := begin.UTC().Format(catalog.IDLayout)
	b := &catalog.Backup{
		ID: id, Server: layout.Server, Status: status, Timeline: tli,
		BeginTime: begin, EndTime: begin.Add(time.Hour),
		BeginWAL: seg(tli, beginSeg), EndWAL: seg(tli, endSeg),
		BeginLSN: wal.FormatLSN(uint64(beginSeg)<<24 | 0x28), EndLSN: wal.FormatLSN(uint64(endSeg)<<24 | 0x100),
		WALSegmentSize: 16 << 20, Keep: keep,
	}
	for i := range 2 {
		put(t, s, layout.PartKey(id, "", i, "zst"), "part")
	}
	put(t, s, layout.ManifestKey(id, "zst"), "manifest")
	if err := catalog.Save(context.Background(), s, layout, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// wals stores segments first..last of timeline tli.
func wals(t *testing.T, s cloud.Store, tli, first, last uint32) {
	t.Helper()
	for n := first; n <= last; n++ {
		put(t, s, layout.WALKey(seg(tli, n), "zst"), "wal")
	}
}

func backupFile(b *catalog.Backup) string {
	return layout.WALKey(fmt.Sprintf("%s.%08X.backup", b.BeginWAL, 0x28), "zst")
}

func keys(t *testing.T, s cloud.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := s.List(context.Background(), prefix, func(a cloud.Attrs) error {
		out = append(out, a.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func walKeys(tli uint32, segs ...uint32) []string {
	var out []string
	for _, n := range segs {
		out = append(out, layout.WALKey(seg(tli, n), "zst"))
	}
	return out
}

func span(a, b uint32) []uint32 {
	var out []uint32
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

// fourBackups is the store of the e2e scenario in miniature: four daily
// backups on timeline 1 with WAL between them, the second kept standalone,
// their .backup files, a history file and a foreign object under wals/.
func fourBackups(t *testing.T, s cloud.Store, now time.Time) []*catalog.Backup {
	var bs []*catalog.Backup
	for i, keep := range []string{"", catalog.KeepStandalone, "", ""} {
		b := backup(t, s, now.Add(-time.Duration(4-i)*day), catalog.StatusDone, 1, uint32(2+3*i), uint32(3+3*i), keep)
		put(t, s, backupFile(b), "label")
		bs = append(bs, b)
	}
	wals(t, s, 1, 1, 14)
	put(t, s, layout.WALKey("00000002.history", "zst"), "history")
	put(t, s, layout.WALRoot()+"notes.txt", "not WAL")
	return bs
}

func TestRunRedundancy(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now()
	bs := fourBackups(t, s, now)
	p, _ := retention.ParsePolicy("REDUNDANCY 2")

	// A dry run reports exactly what the real run then deletes.
	before := keys(t, s, "")
	dry, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, DryRun: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if after := keys(t, s, ""); !reflect.DeepEqual(before, after) {
		t.Fatalf("dry run changed the store")
	}
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rep.Deleted); !reflect.DeepEqual(got, []string{bs[0].ID}) {
		t.Errorf("deleted %v, want only %s (REDUNDANCY 2 with the second backup kept)", got, bs[0].ID)
	}
	if !reflect.DeepEqual(ids(dry.Deleted), ids(rep.Deleted)) || dry.Objects != rep.Objects || dry.Bytes != rep.Bytes ||
		!reflect.DeepEqual(dry.WAL.Ranges, rep.WAL.Ranges) {
		t.Errorf("dry run %+v\ndiffers from run %+v", dry, rep)
	}

	// Backups: the first one is gone entirely.
	if k := keys(t, s, layout.BackupRoot(bs[0].ID)); len(k) != 0 {
		t.Errorf("left of deleted backup: %v", k)
	}
	for _, b := range bs[1:] {
		if k := keys(t, s, layout.BackupRoot(b.ID)); len(k) != 4 {
			t.Errorf("backup %s has %d objects, want 4", b.ID, len(k))
		}
	}
	// WAL: the floor is the third backup's begin (segment 8); the
	// standalone backup keeps 5..6 and its .backup file; segment 1..4 and
	// 7 and the first backup's .backup file go.
	var want []string
	want = append(want, layout.WALKey("00000002.history", "zst"))
	want = append(want, walKeys(1, 5, 6)...)
	want = append(want, walKeys(1, span(8, 14)...)...)
	for _, b := range bs[1:] {
		want = append(want, backupFile(b))
	}
	want = append(want, layout.WALRoot()+"notes.txt")
	sort.Strings(want)
	if got := keys(t, s, layout.WALRoot()); !reflect.DeepEqual(got, want) {
		t.Errorf("WAL left:\n got %v\nwant %v", got, want)
	}
	if rep.WAL.Objects != 6 || rep.WAL.Floor != seg(1, 8) {
		t.Errorf("WAL report %+v", rep.WAL)
	}
	wantRanges := []retention.WALRange{
		{Timeline: 1, First: seg(1, 1), Last: seg(1, 4), Objects: 5, Bytes: rep.WAL.Ranges[0].Bytes},
		{Timeline: 1, First: seg(1, 7), Last: seg(1, 7), Objects: 1, Bytes: 3},
	}
	if !reflect.DeepEqual(rep.WAL.Ranges, wantRanges) {
		t.Errorf("ranges %+v, want %+v", rep.WAL.Ranges, wantRanges)
	}

	// Running again deletes nothing more.
	again, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now})
	if err != nil || again.Objects != 0 {
		t.Errorf("second run deleted %d objects, err %v", again.Objects, err)
	}
}

func ids(bs []Backup) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestRunTargetRefused(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now()
	bs := fourBackups(t, s, now)
	before := keys(t, s, "")
	for _, tt := range []struct {
		target string
		minRed int
		err    error
	}{
		{bs[1].ID, 0, retention.ErrRefused},     // kept
		{bs[0].ID, 3, retention.ErrRefused},     // 2 non-kept would remain
		{"nope", 0, retention.ErrUnknownBackup}, // unknown
	} {
		_, err := Run(ctx, s, layout, Options{Target: tt.target, MinRedundancy: tt.minRed, OrphanAge: day, Now: now})
		if !errors.Is(err, tt.err) {
			t.Errorf("target %s: err %v, want %v", tt.target, err, tt.err)
		}
	}
	if after := keys(t, s, ""); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused delete changed the store")
	}
	rep, err := Run(ctx, s, layout, Options{Target: "oldest", MinRedundancy: 2, OrphanAge: day, Now: now})
	if err != nil || !reflect.DeepEqual(ids(rep.Deleted), []string{bs[0].ID}) {
		t.Fatalf("delete oldest: %v, %v", ids(rep.Deleted), err)
	}
}

// opStore records the Delete calls and can fail or act on chosen ones.
type opStore struct {
	cloud.Store
	mu      sync.Mutex
	deletes [][]string
	// onDelete runs before a Delete; an error fails it.
	onDelete func(keys []string) error
}

func (o *opStore) Delete(ctx context.Context, keys ...string) error {
	o.mu.Lock()
	o.deletes = append(o.deletes, append([]string(nil), keys...))
	f := o.onDelete
	o.mu.Unlock()
	if f != nil {
		if err := f(keys); err != nil {
			return err
		}
	}
	return o.Store.Delete(ctx, keys...)
}

func TestRunOrder(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: openStore(t)}
	now := time.Now()
	bs := fourBackups(t, s, now)
	// A FAILED backup, old once the run looks two days ahead.
	backup(t, s, now.Add(-3*day+time.Hour), catalog.StatusFailed, 1, 3, 3, "")
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	if _, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now.Add(2 * day), BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	recordGone := map[string]bool{}
	walStarted := false
	for _, call := range s.deletes {
		if len(call) > 2 {
			t.Errorf("Delete of %d keys, batch size is 2", len(call))
		}
		for _, k := range call {
			switch {
			case strings.HasPrefix(k, layout.WALRoot()):
				walStarted = true
			case strings.HasSuffix(k, "/backup.json"):
				if walStarted {
					t.Errorf("record %s deleted after WAL", k)
				}
				recordGone[strings.Split(k, "/")[2]] = true
			default:
				id := strings.Split(k, "/")[2]
				if !recordGone[id] {
					t.Errorf("part %s deleted before its record", k)
				}
				if walStarted {
					t.Errorf("part %s deleted after WAL", k)
				}
			}
		}
	}
	if len(recordGone) != 3 || !walStarted {
		t.Errorf("records deleted: %v; WAL deleted: %v", recordGone, walStarted)
	}
	if k := keys(t, s, layout.BackupRoot(bs[3].ID)); len(k) != 4 {
		t.Errorf("newest backup damaged: %v", k)
	}
}

// A crash (here: a failing Delete) between a record and its parts leaves no
// DONE record with missing parts, and the next run finishes the job.
func TestRunCrashAfterRecord(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: openStore(t)}
	now := time.Now()
	bs := fourBackups(t, s, now)
	s.onDelete = func(keys []string) error {
		for _, k := range keys {
			if strings.Contains(k, "/data/") {
				return fmt.Errorf("simulated crash: %w", cloud.ErrTransient)
			}
		}
		return nil
	}
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	if _, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now}); err == nil {
		t.Fatal("no error from a failing delete")
	}
	all, err := catalog.List(ctx, s, layout)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.ID == bs[0].ID {
			t.Errorf("record of the interrupted backup still there: %+v", b)
		}
	}
	// WAL was not touched, since backups were not all gone.
	for _, call := range s.deletes {
		if strings.HasPrefix(call[0], layout.WALRoot()) {
			t.Errorf("WAL deleted after a failed backup deletion: %v", call)
		}
	}
	// The leftover parts are orphans: cleaned once older than --orphan-age.
	s.onDelete = nil
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now.Add(2 * day)})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs[:3] {
		if b.Keep != "" {
			continue
		}
		if k := keys(t, s, layout.BackupRoot(b.ID)); len(k) != 0 {
			t.Errorf("backup %s not cleaned: %v (report %+v)", b.ID, k, rep.Deleted)
		}
	}
}

// A backup that starts while delete runs (its STARTED record written after
// the scan) keeps its WAL: WAL is only deleted if obsolete for the catalog
// read again after the backups are gone.
func TestRunConcurrentBackupKeepsWAL(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: openStore(t)}
	now := time.Now()
	bs := fourBackups(t, s, now)
	var once sync.Once
	s.onDelete = func(keys []string) error {
		once.Do(func() {
			// A backup whose lower bound for its begin WAL is segment 4
			// (a long checkpoint): below every remaining DONE backup.
			b := &catalog.Backup{ID: now.UTC().Format(catalog.IDLayout), Server: layout.Server, Status: catalog.StatusStarted,
				Timeline: 1, BeginTime: now, BeginWAL: seg(1, 4), BeginLSN: "0/4000000", Heartbeat: now}
			if err := catalog.Create(ctx, s.Store, layout, b); err != nil {
				t.Error(err)
			}
		})
		return nil
	}
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rep.Deleted); len(got) != 2 {
		t.Errorf("deleted %v, want the two oldest non-kept backups", got)
	}
	left := map[string]bool{}
	for _, k := range keys(t, s, layout.WALRoot()) {
		left[k] = true
	}
	for _, k := range walKeys(1, span(4, 14)...) {
		if !left[k] {
			t.Errorf("WAL %s needed by the backup in progress was deleted", k)
		}
	}
	for _, k := range walKeys(1, 1, 2, 3) {
		if left[k] {
			t.Errorf("obsolete WAL %s kept", k)
		}
	}
	_ = bs
}

// gbc-backup-keep rewriting the record while the backup's parts are being
// deleted must not leave a record without parts.
func TestRunKeepDuringDelete(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: openStore(t)}
	now := time.Now()
	bs := fourBackups(t, s, now)
	var once sync.Once
	s.onDelete = func(keys []string) error {
		if strings.Contains(keys[0], "/"+bs[0].ID+"/") && !strings.HasSuffix(keys[0], "backup.json") {
			once.Do(func() {
				r := *bs[0]
				r.Keep = catalog.KeepFull
				if err := catalog.Save(ctx, s.Store, layout, &r); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	}
	p, _ := retention.ParsePolicy("REDUNDANCY 2")
	if _, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now}); err != nil {
		t.Fatal(err)
	}
	if k := keys(t, s, layout.BackupRoot(bs[0].ID)); len(k) != 0 {
		t.Errorf("left of the deleted backup: %v", k)
	}
}

// A damaged record stops every WAL deletion and is never deleted.
func TestRunUnreadableRecord(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	now := time.Now()
	fourBackups(t, s, now)
	bad := "20200101T000000Z"
	put(t, s, layout.RecordKey(bad), "{not json")
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now.Add(30 * day)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.WAL.Off == "" || rep.WAL.Objects != 0 {
		t.Errorf("WAL deleted despite an unreadable record: %+v", rep.WAL)
	}
	if len(keys(t, s, layout.BackupRoot(bad))) != 1 {
		t.Error("unreadable record deleted")
	}
}

// The WAL listing streams: a store far larger than a batch is cleaned with
// every Delete no larger than a batch, and at most Concurrency batches in
// flight (memory is measured by the e2e benchmark).
func TestRunManyWAL(t *testing.T) {
	ctx := context.Background()
	s := &opStore{Store: cloud.NewMem()}
	now := time.Now()
	backup(t, s, now.Add(-2*day), catalog.StatusDone, 1, 15000, 15001, "")
	for n := uint32(1); n <= 20000; n++ {
		put(t, s, layout.WALKey(seg(1, n), "zst"), "wal")
	}
	var inFlight, maxInFlight atomic.Int32
	s.onDelete = func([]string) error {
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		return nil
	}
	p, _ := retention.ParsePolicy("REDUNDANCY 1")
	rep, err := Run(ctx, s, layout, Options{Policy: &p, OrphanAge: day, Now: now, BatchSize: 100, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.WAL.Objects != 14999 || rep.WAL.KeptObjects != 5001 {
		t.Errorf("WAL %+v", rep.WAL)
	}
	if n := len(keys(t, s, layout.WALRoot())); n != 5001 {
		t.Errorf("%d WAL objects left, want 5001", n)
	}
	for _, call := range s.deletes {
		if len(call) > 100 {
			t.Fatalf("Delete of %d keys", len(call))
		}
	}
	if m := maxInFlight.Load(); m > 3 || m < 2 {
		t.Errorf("%d Deletes in flight at most, want 2 to 3", m)
	}
}

func TestWalName(t *testing.T) {
	for key, want := range map[string]string{
		"main/wals/0000000100000000/000000010000000000000003.zst":                 "000000010000000000000003",
		"main/wals/0000000100000000/000000010000000000000003":                     "000000010000000000000003",
		"main/wals/0000000100000000/000000010000000000000003.00000028.backup.lz4": "000000010000000000000003.00000028.backup",
		"main/wals/00000002.history.zst":                                          "00000002.history",
		"main/wals/0000000100000001/000000010000000000000003.zst":                 "", // wrong directory
		"main/wals/000000010000000000000003.zst":                                  "", // not in its directory
		"main/wals/0000000100000000/sub/000000010000000000000003.zst":             "",
		"main/wals/notes.txt":                                                     "",
	} {
		got, ok := walName(layout, key)
		if ok != (want != "") || got != want {
			t.Errorf("walName(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}
