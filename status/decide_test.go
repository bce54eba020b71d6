package status

import (
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	lim := Limits{MaxBackupAge: 26 * time.Hour, MaxWALAge: 15 * time.Minute}
	healthy := func() Facts {
		return Facts{
			Server: "main", Backups: 2,
			Last:      &Backup{ID: "20261130T020000Z", EndTime: now.Add(-10 * time.Hour)},
			NewestWAL: &Segment{Name: "000000010000000000000042", Time: now.Add(-2 * time.Minute)},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*Facts)
		lim    Limits
		want   State
		reason string // a substring of the first reason
	}{
		{"healthy", func(*Facts) {}, lim, OK, ""},
		{"no backup", func(f *Facts) { f.Last = nil }, lim, Critical, "no DONE backup"},
		{"no WAL", func(f *Facts) { f.NewestWAL = nil }, lim, Critical, "no WAL segment archived"},
		{"WAL too old", func(f *Facts) { f.NewestWAL.Time = now.Add(-16 * time.Minute) }, lim, Critical,
			"newest WAL segment 000000010000000000000042 is 16m old, over --max-wal-age 15m"},
		{"WAL age within the limit", func(f *Facts) { f.NewestWAL.Time = now.Add(-15 * time.Minute) }, lim, OK, ""},
		{"WAL age unchecked", func(f *Facts) { f.NewestWAL.Time = now.Add(-48 * time.Hour) }, Limits{MaxBackupAge: lim.MaxBackupAge}, OK, ""},
		{"backup late", func(f *Facts) { f.Last.EndTime = now.Add(-27 * time.Hour) }, lim, Warning,
			"last backup 20261130T020000Z is 27h old, over --max-backup-age 26h"},
		{"backup very late", func(f *Facts) { f.Last.EndTime = now.Add(-53 * time.Hour) }, lim, Critical, "over twice --max-backup-age"},
		{"backup without end time", func(f *Facts) {
			f.Last.EndTime, f.Last.BeginTime = time.Time{}, now.Add(-30*time.Hour)
		}, lim, Warning, "is 30h old"},
		{"store clock ahead", func(f *Facts) { f.NewestWAL.Time = now.Add(time.Minute) }, lim, OK, ""},
		{"gap before the latest backup", func(f *Facts) {
			f.Gaps = []Gap{{From: "A", To: "B", Segments: 2}}
		}, lim, Warning, "WAL gap before the latest backup: segments A to B (2) are missing"},
		{"gap after the latest backup", func(f *Facts) {
			f.Gaps = []Gap{{From: "A", To: "B", Segments: 2}, {From: "C", To: "C", Segments: 1, AfterLatest: true}}
		}, lim, Critical, "WAL gap after the latest backup: segment C is missing"},
		{"missing history", func(f *Facts) {
			f.Gaps = []Gap{{History: "00000002.history", AfterLatest: true}}
		}, lim, Critical, "timeline history file 00000002.history is missing"},
		{"more gaps", func(f *Facts) { f.MoreGaps = 3 }, lim, Warning, "3 more WAL gaps"},
		{"failed attempt", func(f *Facts) {
			f.LastFailed = &Backup{ID: "20261130T030000Z", Error: "disk full"}
		}, lim, Warning, "last backup attempt 20261130T030000Z FAILED: disk full"},
		{"drill failed", func(f *Facts) {
			f.Drill = &catalog.Drill{OK: false, BackupID: "X", Time: now.Add(-time.Hour), Error: "query failed"}
		}, lim, Warning, "last restore drill (2026-11-30T11:00:00Z, backup X) failed: query failed"},
		{"drill passed", func(f *Facts) { f.Drill = &catalog.Drill{OK: true, RTOSeconds: 40} }, lim, OK, ""},
		{"critical first", func(f *Facts) {
			f.Last.EndTime = now.Add(-27 * time.Hour)
			f.NewestWAL = nil
		}, lim, Critical, "no WAL segment archived"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.change(&f)
			v := Decide(f, tc.lim, now)
			if v.State != tc.want {
				t.Errorf("state %v (%q), want %v", v.State, v.Reasons, tc.want)
			}
			if tc.reason == "" {
				if len(v.Reasons) != 0 {
					t.Errorf("reasons %q, want none", v.Reasons)
				}
				return
			}
			if len(v.Reasons) == 0 || !strings.Contains(v.Reasons[0], tc.reason) {
				t.Errorf("reasons %q, want the first to contain %q", v.Reasons, tc.reason)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		42 * time.Second:                "42s",
		14*time.Minute + 59*time.Second: "14m",
		3*time.Hour + 5*time.Minute:     "3h5m",
		26 * time.Hour:                  "26h",
		52*time.Hour + 10*time.Minute:   "2d4h",
		72 * time.Hour:                  "3d",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}
