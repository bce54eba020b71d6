package retention

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// seg names segment n of timeline tli (log 0).
func seg(tli uint32, n uint32) string { return fmt.Sprintf("%08X%08X%08X", tli, 0, n) }

type opt func(*Entry)

func keep(k string) opt { return func(e *Entry) { e.Record.Keep = k } }
func status(s catalog.Status) opt {
	return func(e *Entry) {
		e.Record.Status = s
		if s != catalog.StatusDone {
			e.Record.EndTime, e.Record.EndWAL, e.Record.EndLSN = time.Time{}, "", ""
		}
	}
}
func named(n string) opt   { return func(e *Entry) { e.Record.Name = n } }
func parent(id string) opt { return func(e *Entry) { e.Record.ParentID = id } }
func heartbeat(ago time.Duration) opt {
	return func(e *Entry) { e.Record.Heartbeat = now.Add(-ago) }
}

// beat is a heartbeat ago before now from a writer that declares its
// interval, as gbc-backup does.
func beat(ago, interval time.Duration) opt {
	return func(e *Entry) {
		e.Record.Heartbeat = now.Add(-ago)
		e.Record.HeartbeatInterval = int64(interval / time.Second)
	}
}
func noBeginWAL() opt { return func(e *Entry) { e.Record.BeginWAL = "" } }
func noEndWAL() opt   { return func(e *Entry) { e.Record.EndWAL = "" } }

// bk is a backup that began ago before now on timeline tli at segment
// begin, ended one hour later at segment end, and whose objects were last
// written at its end.
func bk(ago time.Duration, tli, begin, end uint32, opts ...opt) Entry {
	bt := now.Add(-ago)
	et := bt.Add(time.Hour)
	e := Entry{
		ID: bt.Format("20060102T150405Z"),
		Record: &catalog.Backup{
			Format: 1, Status: catalog.StatusDone, Timeline: tli,
			BeginTime: bt, EndTime: et,
			BeginWAL: seg(tli, begin), EndWAL: seg(tli, end),
			BeginLSN: fmt.Sprintf("0/%X", begin<<24|0x28), EndLSN: fmt.Sprintf("0/%X", end<<24|0x100),
			WALSegmentSize: 16 << 20,
		},
		Objects: 3, Bytes: 1000, LastModified: et,
	}
	e.Record.ID = e.ID
	for _, o := range opts {
		o(&e)
	}
	if e.Record.Status != catalog.StatusDone {
		e.LastModified = bt
	}
	return e
}

// orphan is a base/<id>/ prefix without a record, last written ago.
func orphan(id string, ago time.Duration) Entry {
	return Entry{ID: id, Objects: 2, Bytes: 10, LastModified: now.Add(-ago)}
}

func ids(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func mustPolicy(t *testing.T, s string) *Policy {
	t.Helper()
	if s == "" {
		return nil
	}
	p, err := ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestDecideBackups(t *testing.T) {
	// Four daily backups, oldest first, with WAL between them.
	b1 := bk(4*day, 1, 2, 3)
	b2 := bk(3*day, 1, 5, 6)
	b3 := bk(2*day, 1, 8, 9)
	b4 := bk(1*day, 1, 11, 12)
	// A STARTED backup whose heartbeat is late but which stored a part a
	// minute ago.
	uploading := bk(2*time.Hour, 1, 13, 13, status(catalog.StatusStarted), beat(16*time.Minute, 5*time.Minute))
	uploading.LastModified = now.Add(-time.Minute)

	tests := []struct {
		name    string
		entries []Entry
		policy  string
		target  string
		minRed  int
		want    []string // deleted ids, oldest first
		wantErr error
	}{
		{name: "empty catalog, policy", policy: "REDUNDANCY 1"},
		{name: "empty catalog, target", target: "latest", wantErr: ErrUnknownBackup},
		{name: "redundancy 2 of 4", entries: []Entry{b1, b2, b3, b4}, policy: "REDUNDANCY 2", want: ids([]Entry{b1, b2})},
		{name: "redundancy 4 of 4", entries: []Entry{b1, b2, b3, b4}, policy: "REDUNDANCY 4"},
		{name: "redundancy 10 of 4", entries: []Entry{b4, b2, b1, b3}, policy: "redundancy 10"},
		{name: "redundancy 1 of 4", entries: []Entry{b4, b2, b1, b3}, policy: "REDUNDANCY 1", want: ids([]Entry{b1, b2, b3})},
		{
			name:    "kept backups do not count toward redundancy",
			entries: []Entry{b1, b2, b3, bk(1*day, 1, 11, 12, keep(catalog.KeepStandalone))},
			policy:  "REDUNDANCY 2", want: ids([]Entry{b1}),
		},
		{
			name:    "kept backups are never deleted by a policy",
			entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepFull)), b2, b3, b4},
			policy:  "REDUNDANCY 1", want: ids([]Entry{b2, b3}),
		},
		{
			name:    "an unknown keep value is a keep",
			entries: []Entry{bk(4*day, 1, 2, 3, keep("forever")), b2, b3, b4},
			policy:  "REDUNDANCY 1", want: ids([]Entry{b2, b3}),
		},
		{name: "minimum redundancy holds a policy back", entries: []Entry{b1, b2, b3, b4}, policy: "REDUNDANCY 1", minRed: 3, want: ids([]Entry{b1})},
		{name: "minimum redundancy above the catalog", entries: []Entry{b1, b2}, policy: "REDUNDANCY 1", minRed: 5},
		{
			name: "recovery window keeps the newest backup ending before it",
			entries: []Entry{
				bk(30*day, 1, 1, 2), bk(20*day, 1, 3, 4), bk(10*day, 1, 5, 6),
				bk(5*day, 1, 7, 8), bk(1*day, 1, 9, 10),
			},
			policy: "RECOVERY WINDOW OF 7 DAYS",
			want:   ids([]Entry{bk(30*day, 1, 1, 2), bk(20*day, 1, 3, 4)}),
		},
		{
			name:    "recovery window: a backup ending exactly at the window start is not before it",
			entries: []Entry{bk(20*day, 1, 1, 1), bk(10*day, 1, 2, 2), bk(7*day+time.Hour, 1, 3, 4), bk(1*day, 1, 9, 10)},
			policy:  "RECOVERY WINDOW OF 7 DAYS",
			want:    ids([]Entry{bk(20*day, 1, 1, 1)}),
		},
		{
			name:    "recovery window: every backup inside it",
			entries: []Entry{bk(3*day, 1, 1, 2), bk(2*day, 1, 3, 4), bk(1*day, 1, 9, 10)},
			policy:  "RECOVERY WINDOW OF 1 WEEK",
		},
		{
			name:    "recovery window: every backup before it keeps the newest",
			entries: []Entry{bk(300*day, 1, 1, 2), bk(200*day, 1, 3, 4), bk(100*day, 1, 9, 10)},
			policy:  "RECOVERY WINDOW OF 2 WEEKS",
			want:    ids([]Entry{bk(300*day, 1, 1, 2), bk(200*day, 1, 3, 4)}),
		},
		{
			name:    "recovery window in months is 31 days",
			entries: []Entry{bk(40*day, 1, 1, 2), bk(32*day, 1, 3, 4), bk(30*day, 1, 9, 10)},
			policy:  "RECOVERY WINDOW OF 1 MONTHS",
			want:    ids([]Entry{bk(40*day, 1, 1, 2)}),
		},
		{
			name:    "recovery window: a kept backup does not end the window",
			entries: []Entry{bk(40*day, 1, 1, 2), bk(30*day, 1, 3, 4), bk(20*day, 1, 5, 6, keep(catalog.KeepFull)), bk(1*day, 1, 9, 10)},
			policy:  "RECOVERY WINDOW OF 7 DAYS",
			want:    ids([]Entry{bk(40*day, 1, 1, 2)}),
		},
		{
			name:    "recovery window with minimum redundancy",
			entries: []Entry{bk(40*day, 1, 1, 2), bk(30*day, 1, 3, 4), bk(20*day, 1, 5, 6), bk(10*day, 1, 9, 10)},
			policy:  "RECOVERY WINDOW OF 7 DAYS", minRed: 3,
			want: ids([]Entry{bk(40*day, 1, 1, 2)}),
		},
		{
			name:    "FAILED and dead STARTED backups and old orphans are cleaned, young ones stay",
			entries: []Entry{b1, bk(3*day, 1, 5, 6, status(catalog.StatusFailed)), bk(2*day, 1, 8, 8, status(catalog.StatusStarted)), b4, bk(2*time.Hour, 1, 13, 13, status(catalog.StatusFailed)), bk(1*time.Hour, 1, 13, 13, status(catalog.StatusStarted)), orphan("20261120T000000Z", 6*day), orphan("20261126T113000Z", 30*time.Minute)},
			policy:  "REDUNDANCY 2",
			want:    []string{"20261120T000000Z", bk(3*day, 1, 5, 6).ID, bk(2*day, 1, 8, 9).ID},
		},
		{
			name:    "a STARTED record with a recent heartbeat is alive",
			entries: []Entry{b1, bk(3*day, 1, 5, 6, status(catalog.StatusStarted), heartbeat(time.Minute)), b4},
			policy:  "REDUNDANCY 1", want: ids([]Entry{b1}),
		},
		{
			name:    "a STARTED record whose heartbeat stopped for three intervals is dead, long before --orphan-age",
			entries: []Entry{b1, bk(2*time.Hour, 1, 13, 13, status(catalog.StatusStarted), beat(16*time.Minute, 5*time.Minute)), b4},
			policy:  "REDUNDANCY 2", want: ids([]Entry{bk(2*time.Hour, 1, 13, 13)}),
		},
		{
			name:    "a heartbeat within three intervals is alive",
			entries: []Entry{b1, bk(2*time.Hour, 1, 13, 13, status(catalog.StatusStarted), beat(14*time.Minute, 5*time.Minute)), b4},
			policy:  "REDUNDANCY 2",
		},
		{
			name:    "a record without a heartbeat interval is alive until --orphan-age",
			entries: []Entry{b1, bk(2*time.Hour, 1, 13, 13, status(catalog.StatusStarted), heartbeat(16*time.Minute)), b4},
			policy:  "REDUNDANCY 2",
		},
		{
			name:    "an object newer than the heartbeat is a sign of life",
			entries: []Entry{b1, uploading, b4},
			policy:  "REDUNDANCY 2",
		},
		{
			name:    "a tiny declared interval is floored",
			entries: []Entry{b1, bk(2*time.Hour, 1, 13, 13, status(catalog.StatusStarted), beat(catalog.MinSilence-time.Second, time.Second)), b4},
			policy:  "REDUNDANCY 2",
		},
		{
			name:    "a huge declared interval falls back to --orphan-age",
			entries: []Entry{b1, bk(25*time.Hour, 1, 13, 13, status(catalog.StatusStarted), beat(day+time.Minute, 1<<62)), b4},
			policy:  "REDUNDANCY 2", want: ids([]Entry{bk(25*time.Hour, 1, 13, 13)}),
		},
		{
			name:    "FAILED backups do not count toward redundancy",
			entries: []Entry{b1, b2, bk(2*day, 1, 8, 9, status(catalog.StatusFailed)), bk(30*time.Hour, 1, 11, 12, status(catalog.StatusFailed))},
			policy:  "REDUNDANCY 2",
			want:    ids([]Entry{bk(2*day, 1, 8, 9), bk(30*time.Hour, 1, 11, 12)}),
		},
		{
			name:    "an unreadable record is never deleted",
			entries: []Entry{{ID: "20261101T000000Z", RecordErr: errors.New("parse record: bad json"), LastModified: now.Add(-30 * day)}, b3, b4},
			policy:  "REDUNDANCY 1", want: ids([]Entry{b3}),
		},
		{
			name:    "unknown status is never deleted",
			entries: []Entry{bk(3*day, 1, 5, 6, status("VERIFIED")), b3, b4},
			policy:  "REDUNDANCY 1", want: ids([]Entry{b3}),
		},
		{
			name:    "a parent of a remaining incremental backup stays",
			entries: []Entry{b1, b2, b3, bk(1*day, 1, 11, 12, parent(b3.ID))},
			policy:  "REDUNDANCY 1", want: ids([]Entry{b1, b2}),
		},
		{
			name:    "parents stay transitively",
			entries: []Entry{b1, bk(3*day, 1, 5, 6, parent(b1.ID)), bk(2*day, 1, 8, 9, parent(bk(3*day, 1, 5, 6).ID))},
			policy:  "REDUNDANCY 1", want: nil,
		},
		// Deleting one backup.
		{name: "by id", entries: []Entry{b1, b2, b3, b4}, target: b2.ID, want: ids([]Entry{b2})},
		{name: "by name", entries: []Entry{b1, bk(3*day, 1, 5, 6, named("before-upgrade")), b3, b4}, target: "before-upgrade", want: ids([]Entry{b2})},
		{name: "by ambiguous name", entries: []Entry{bk(3*day, 1, 5, 6, named("x")), bk(2*day, 1, 8, 9, named("x"))}, target: "x", wantErr: ErrRefused},
		{name: "latest", entries: []Entry{b1, b2, b3, b4}, target: "latest", want: ids([]Entry{b4})},
		{name: "oldest", entries: []Entry{b1, b2, b3, b4}, target: "oldest", want: ids([]Entry{b1})},
		{name: "oldest skips FAILED", entries: []Entry{bk(5*day, 1, 1, 1, status(catalog.StatusFailed), heartbeat(time.Minute)), b2, b3}, target: "oldest", want: ids([]Entry{b2})},
		{name: "unknown id", entries: []Entry{b1, b2}, target: "20200101T000000Z", wantErr: ErrUnknownBackup},
		{name: "by id within minimum redundancy", entries: []Entry{b1, b2, b3, b4}, target: b1.ID, minRed: 3, want: ids([]Entry{b1})},
		{name: "by id breaking minimum redundancy", entries: []Entry{b1, b2, b3, b4}, target: b1.ID, minRed: 4, wantErr: ErrRefused},
		{
			name:    "kept backups do not count toward minimum redundancy",
			entries: []Entry{b1, bk(3*day, 1, 5, 6, keep(catalog.KeepFull)), b3}, target: b1.ID, minRed: 2, wantErr: ErrRefused,
		},
		{name: "by id of a kept backup", entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepStandalone)), b2}, target: b1.ID, wantErr: ErrRefused},
		{name: "by id of a backup in progress", entries: []Entry{b1, bk(1*time.Hour, 1, 13, 13, status(catalog.StatusStarted))}, target: bk(time.Hour, 1, 13, 13).ID, wantErr: ErrRefused},
		{name: "by id of a dead STARTED backup", entries: []Entry{b1, bk(2*day, 1, 13, 13, status(catalog.StatusStarted))}, target: bk(2*day, 1, 13, 13).ID, want: []string{bk(2*day, 1, 13, 13).ID}},
		{name: "by id of a young FAILED backup", entries: []Entry{b1, bk(time.Hour, 1, 13, 13, status(catalog.StatusFailed))}, target: bk(time.Hour, 1, 13, 13).ID, minRed: 1, want: []string{bk(time.Hour, 1, 13, 13).ID}},
		{name: "by id of a parent", entries: []Entry{b1, bk(3*day, 1, 5, 6, parent(b1.ID))}, target: b1.ID, wantErr: ErrRefused},
		{name: "by id of an unreadable record", entries: []Entry{{ID: "20261101T000000Z", RecordErr: errors.New("bad"), LastModified: now.Add(-30 * day)}}, target: "20261101T000000Z", wantErr: ErrRefused},
		{name: "by id of young objects without a record", entries: []Entry{orphan("20261126T113000Z", time.Minute)}, target: "20261126T113000Z", wantErr: ErrRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Decide(Input{
				Entries: tt.entries, Policy: mustPolicy(t, tt.policy), Target: tt.target,
				MinRedundancy: tt.minRed, OrphanAge: day, Now: now,
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range plan.Delete {
				got = append(got, d.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("deleted %v, want %v", got, tt.want)
			}
			if len(plan.Delete)+len(plan.Retain) != len(tt.entries) {
				t.Errorf("%d deleted + %d retained != %d entries", len(plan.Delete), len(plan.Retain), len(tt.entries))
			}
			// The invariants that protect the user's data, whatever the case.
			for _, d := range plan.Delete {
				if r := d.Record; r != nil && r.Keep != "" {
					t.Errorf("kept backup %s deleted", d.ID)
				}
				if r := d.Record; r != nil && r.Status == catalog.StatusStarted {
					silent := now.Sub(d.LastActivity())
					interval := time.Duration(r.HeartbeatInterval) * time.Second
					if silent <= catalog.MinSilence || silent <= catalog.StaleHeartbeats*interval || (interval == 0 && silent <= day) {
						t.Errorf("live STARTED backup %s deleted (silent for %s)", d.ID, silent)
					}
				}
				if d.RecordErr != nil {
					t.Errorf("unreadable backup %s deleted", d.ID)
				}
			}
			doneLeft := 0
			for _, r := range plan.Retain {
				if r.Record != nil && r.Record.Status == catalog.StatusDone && r.Record.Keep == "" {
					doneLeft++
				}
			}
			doneBefore := 0
			for _, e := range tt.entries {
				if e.Record != nil && e.Record.Status == catalog.StatusDone && e.Record.Keep == "" {
					doneBefore++
				}
			}
			if doneLeft < tt.minRed && doneLeft < doneBefore {
				t.Errorf("%d DONE backups left, below minimum redundancy %d", doneLeft, tt.minRed)
			}
		})
	}
}

func TestDecideValidatesInput(t *testing.T) {
	if _, err := Decide(Input{Now: now}); err == nil {
		t.Error("zero orphan age accepted")
	}
	if _, err := Decide(Input{Now: now, OrphanAge: day, MinRedundancy: -1}); err == nil {
		t.Error("negative minimum redundancy accepted")
	}
}

// walNames lists every WAL file name of the archive under test: segments
// first..last of each timeline, a .backup file for every backup, and the
// history files.
func walNames(entries []Entry, timelines map[uint32][2]uint32) []string {
	var out []string
	for tli, r := range timelines {
		for n := r[0]; n <= r[1]; n++ {
			out = append(out, seg(tli, n))
		}
		if tli > 1 {
			out = append(out, fmt.Sprintf("%08X.history", tli))
		}
	}
	for _, e := range entries {
		if e.Record == nil {
			continue
		}
		if name, ok := backupFileName(e.Record); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// segs expands "1:2-4,7" (timeline 1, segments 2 to 4 and 7) into names.
func segs(spec ...string) []string {
	var out []string
	for _, s := range spec {
		tli, list, _ := strings.Cut(s, ":")
		var t uint32
		fmt.Sscan(tli, &t)
		for _, part := range strings.Split(list, ",") {
			var a, b uint32
			if n, _ := fmt.Sscanf(part, "%d-%d", &a, &b); n < 2 {
				b = a
			}
			for i := a; i <= b; i++ {
				out = append(out, seg(t, i))
			}
		}
	}
	return out
}

func TestWALObsolete(t *testing.T) {
	b1 := bk(4*day, 1, 2, 3)
	b2 := bk(3*day, 1, 5, 6)
	b3 := bk(2*day, 1, 8, 9)
	b4 := bk(1*day, 1, 11, 12)
	tl1 := map[uint32][2]uint32{1: {1, 14}}

	tests := []struct {
		name      string
		entries   []Entry
		timelines map[uint32][2]uint32
		policy    string
		target    string
		want      []string // obsolete names, sorted
		off       bool     // WAL deletion expected off
	}{
		{name: "empty catalog deletes no WAL", timelines: tl1, policy: "REDUNDANCY 1", off: true},
		{
			name:    "redundancy 2: WAL before the oldest remaining backup, and the .backup files of deleted ones",
			entries: []Entry{b1, b2, b3, b4}, timelines: tl1, policy: "REDUNDANCY 2",
			want: append(segs("1:1-7"), backupFile(b1), backupFile(b2)),
		},
		{
			name:    "nothing deleted: WAL before the oldest backup is still obsolete",
			entries: []Entry{b1, b2, b3, b4}, timelines: tl1, policy: "REDUNDANCY 4",
			want: segs("1:1"),
		},
		{
			name:    "standalone keep protects its begin..end range only",
			entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepStandalone)), b2, b3, b4}, timelines: tl1, policy: "REDUNDANCY 2",
			want: append(segs("1:1,4-7"), backupFile(b2)),
		},
		{
			name:    "standalone keep without an end WAL protects everything after it",
			entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepStandalone), noEndWAL()), b2, b3, b4}, timelines: tl1, policy: "REDUNDANCY 2",
			want: append(segs("1:1"), backupFile(b2)),
		},
		{
			name:    "full keep protects everything after it",
			entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepFull)), b2, b3, b4}, timelines: tl1, policy: "REDUNDANCY 1",
			want: append(segs("1:1"), backupFile(b2), backupFile(b3)),
		},
		{
			name:    "only standalone backups left: WAL up to the newest deleted backup, outside the kept ranges",
			entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepStandalone)), b3}, timelines: tl1, target: b3.ID,
			want: append(segs("1:1,4-7"), backupFile(b3)),
		},
		{
			name:    "only standalone backups, nothing deleted: WAL up to the newest standalone",
			entries: []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepStandalone)), bk(2*day, 1, 8, 9, keep(catalog.KeepStandalone))}, timelines: tl1, policy: "REDUNDANCY 1",
			want: segs("1:1,4-7"),
		},
		{
			name:    "deleting the last backup keeps WAL from its begin on",
			entries: []Entry{b4}, timelines: tl1, target: b4.ID,
			want: append(segs("1:1-10"), backupFile(b4)),
		},
		{
			name:    "deleting a middle backup deletes its .backup file only",
			entries: []Entry{b1, b2, b3}, timelines: tl1, target: b2.ID,
			want: append(segs("1:1"), backupFile(b2)),
		},
		{
			name:    "a live STARTED backup that began before the remaining ones protects its WAL",
			entries: []Entry{b1, bk(3*day, 1, 4, 4, status(catalog.StatusStarted), heartbeat(time.Minute)), b3, b4}, timelines: tl1, policy: "REDUNDANCY 1",
			want: append(segs("1:1-3"), backupFile(b1), backupFile(b3)),
		},
		{
			name:    "a dead STARTED backup protects nothing",
			entries: []Entry{b1, bk(3*day, 1, 4, 4, status(catalog.StatusStarted)), b3, b4}, timelines: tl1, policy: "REDUNDANCY 1",
			want: append(segs("1:1-10"), backupFile(b1), backupFile(b3), backupFile(bk(3*day, 1, 4, 4))),
		},
		{
			name:    "a STARTED backup whose heartbeat stopped protects nothing",
			entries: []Entry{b1, bk(3*day, 1, 4, 4, status(catalog.StatusStarted), beat(20*time.Minute, 5*time.Minute)), b3, b4}, timelines: tl1, policy: "REDUNDANCY 1",
			want: append(segs("1:1-10"), backupFile(b1), backupFile(b3), backupFile(bk(3*day, 1, 4, 4))),
		},
		{
			name:    "a STARTED backup with a recent heartbeat protects its WAL",
			entries: []Entry{b1, bk(3*day, 1, 4, 4, status(catalog.StatusStarted), beat(10*time.Minute, 5*time.Minute)), b3, b4}, timelines: tl1, policy: "REDUNDANCY 1",
			want: append(segs("1:1-3"), backupFile(b1), backupFile(b3)),
		},
		{
			name:    "a live STARTED backup without a begin WAL stops WAL deletion",
			entries: []Entry{b1, b2, bk(time.Hour, 1, 0, 0, status(catalog.StatusStarted), noBeginWAL())}, timelines: tl1, policy: "REDUNDANCY 1",
			off: true,
		},
		{
			name:    "FAILED backups protect nothing",
			entries: []Entry{b1, b2, bk(2*time.Hour, 1, 3, 3, status(catalog.StatusFailed)), b4}, timelines: tl1, policy: "REDUNDANCY 1",
			want: append(segs("1:1-10"), backupFile(b1), backupFile(b2)),
		},
		{
			name:    "an unreadable record stops WAL deletion",
			entries: []Entry{{ID: "20261101T000000Z", RecordErr: errors.New("bad"), LastModified: now.Add(-30 * day)}, b3, b4}, timelines: tl1, policy: "REDUNDANCY 1",
			off: true,
		},
		{
			// TL1: b1 at 2, b2 at 5. A point-in-time recovery from b1 forks
			// TL2 at segment 3; c3 (TL2, 4) and c4 (TL2, 7) follow.
			name:      "several timelines: WAL before the lowest begin on every timeline",
			entries:   []Entry{b1, b2, bk(2*day, 2, 4, 4), bk(1*day, 2, 7, 8)},
			timelines: map[uint32][2]uint32{1: {1, 9}, 2: {3, 9}},
			policy:    "REDUNDANCY 2",
			want:      append(segs("1:1-3", "2:3"), backupFile(b1), backupFile(b2)),
		},
		{
			// b3 (TL1, 8) is older than c (TL2, 5) but begins later: the
			// floor is c's begin, not the oldest backup's.
			name:      "several timelines: a newer backup at a lower position sets the floor",
			entries:   []Entry{b1, b3, bk(1*day, 2, 5, 6)},
			timelines: map[uint32][2]uint32{1: {1, 12}, 2: {4, 9}},
			policy:    "REDUNDANCY 2",
			want:      append(segs("1:1-4", "2:4"), backupFile(b1)),
		},
		{
			name:      "several timelines: a timeline forked after the oldest remaining backup is kept whole",
			entries:   []Entry{b1, b2, b3},
			timelines: map[uint32][2]uint32{1: {1, 12}, 2: {6, 9}, 3: {7, 8}},
			policy:    "REDUNDANCY 2",
			want:      append(segs("1:1-4"), backupFile(b1)),
		},
		{
			name:      "several timelines: a standalone range is kept on every timeline",
			entries:   []Entry{bk(4*day, 1, 2, 3, keep(catalog.KeepStandalone)), b3},
			timelines: map[uint32][2]uint32{1: {1, 9}, 2: {3, 9}},
			policy:    "REDUNDANCY 1",
			want:      segs("1:1,4-7", "2:4-7"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Decide(Input{Entries: tt.entries, Policy: mustPolicy(t, tt.policy), Target: tt.target, OrphanAge: day, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if (plan.WAL.Off() != "") != tt.off {
				t.Fatalf("WAL deletion off = %q, want off %v", plan.WAL.Off(), tt.off)
			}
			var got []string
			for _, n := range walNames(tt.entries, tt.timelines) {
				if plan.WAL.Obsolete(n) {
					got = append(got, n)
				}
			}
			sort.Strings(tt.want)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("obsolete:\n got %v\nwant %v", got, tt.want)
			}
			// Invariants: history files and the WAL of every remaining
			// DONE backup are never obsolete.
			for _, n := range walNames(tt.entries, tt.timelines) {
				if strings.HasSuffix(n, ".history") && plan.WAL.Obsolete(n) {
					t.Errorf("history file %s obsolete", n)
				}
			}
			for _, r := range plan.Retain {
				if r.Record == nil || r.Record.Status != catalog.StatusDone {
					continue
				}
				for _, n := range []string{r.Record.BeginWAL, r.Record.EndWAL} {
					if n != "" && plan.WAL.Obsolete(n) {
						t.Errorf("WAL %s of remaining backup %s obsolete", n, r.ID)
					}
				}
				if name, ok := backupFileName(r.Record); ok && plan.WAL.Obsolete(name) {
					t.Errorf(".backup file of remaining backup %s obsolete", r.ID)
				}
			}
		})
	}
}

func backupFile(e Entry) string {
	name, ok := backupFileName(e.Record)
	if !ok {
		panic("no .backup name for " + e.ID)
	}
	return name
}

func TestWALObsoleteNames(t *testing.T) {
	plan, err := Decide(Input{Entries: []Entry{bk(day, 1, 32, 33)}, OrphanAge: day, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		want bool
	}{
		{seg(1, 7), true},
		{seg(1, 7) + ".partial", true},
		{seg(5, 7), true},
		{seg(1, 32), false},
		{seg(1, 32) + ".partial", false},
		{seg(1, 7) + ".00000028.backup", true},
		{seg(1, 32) + ".00001000.backup", false}, // same segment as a remaining backup's start
		{"00000001.history", false},
		{"00000002.history", false},
		{strings.ToLower(seg(1, 10)), false}, // not a name PostgreSQL writes
		{seg(1, 7) + ".tmp", false},
		{"", false},
		{"garbage", false},
	} {
		if got := plan.WAL.Obsolete(tt.name); got != tt.want {
			t.Errorf("Obsolete(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBackupFileName(t *testing.T) {
	r := &catalog.Backup{BeginWAL: "000000010000000000000002", BeginLSN: "0/2000028", WALSegmentSize: 16 << 20}
	if got, _ := backupFileName(r); got != "000000010000000000000002.00000028.backup" {
		t.Errorf("got %q", got)
	}
	r = &catalog.Backup{BeginWAL: "000000030000000100000002", BeginLSN: "1/4000060", WALSegmentSize: 32 << 20}
	if got, _ := backupFileName(r); got != "000000030000000100000002.00000060.backup" {
		t.Errorf("32 MiB segments: got %q", got)
	}
	// A record whose begin LSN is not in its begin WAL matches nothing.
	r = &catalog.Backup{BeginWAL: "000000010000000000000002", BeginLSN: "0/5000028"}
	if got, ok := backupFileName(r); ok {
		t.Errorf("inconsistent record: got %q", got)
	}
}

func TestWALTally(t *testing.T) {
	tally := NewWALTally()
	for _, o := range []struct {
		name string
		del  bool
	}{
		{"00000002.history", false},
		{seg(1, 1), true}, {seg(1, 2), true}, {seg(1, 3), false}, {seg(1, 4), true},
		{seg(2, 3), true}, {seg(2, 4), false},
	} {
		tally.Add(o.name, 10, o.del)
	}
	want := []WALRange{
		{Timeline: 1, First: seg(1, 1), Last: seg(1, 2), Objects: 2, Bytes: 20},
		{Timeline: 1, First: seg(1, 4), Last: seg(1, 4), Objects: 1, Bytes: 10},
		{Timeline: 2, First: seg(2, 3), Last: seg(2, 3), Objects: 1, Bytes: 10},
	}
	if got := tally.Ranges(); !reflect.DeepEqual(got, want) {
		t.Errorf("ranges %+v, want %+v", got, want)
	}
	if tally.Deleted != 4 || tally.DeletedBytes != 40 || tally.Kept != 3 || tally.KeptBytes != 30 {
		t.Errorf("counts %+v", tally)
	}
}
