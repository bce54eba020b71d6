package status

import (
	"fmt"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

// State is a server's health, ordered: a worse state is a larger number.
// The numbers are the monitoring-plugin exit codes (0 OK, 1 WARNING,
// 2 CRITICAL), which gbc-status returns as is.
type State int

const (
	OK State = iota
	Warning
	Critical
)

func (s State) String() string {
	switch s {
	case OK:
		return "ok"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText makes a State its name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Facts are what the store says about one server, gathered by Gather.
type Facts struct {
	Server string
	// Backups counts the DONE backups; StoredSize adds up their stored
	// bytes.
	Backups    int
	StoredSize int64
	// Last is the newest DONE backup, nil when there is none.
	Last *Backup
	// LastFailed is the newest FAILED backup when it is newer than Last:
	// the last attempt did not succeed.
	LastFailed *Backup
	// NewestWAL is the newest complete segment archived (the highest
	// timeline, then the highest position), nil when there is none.
	NewestWAL *Segment
	// CheckedFrom is the segment from which the WAL was checked for gaps,
	// the begin WAL of the oldest backup that needs all WAL after it; ""
	// when there is no such backup and gaps were not looked for.
	CheckedFrom string
	// Gaps are the holes found on the way from CheckedFrom to NewestWAL,
	// oldest first, at most MaxGaps of them; MoreGaps counts the rest.
	Gaps     []Gap
	MoreGaps int
	// Drill is the last restore drill recorded, nil when none was.
	Drill *catalog.Drill
}

// Backup is what status shows of one backup.
type Backup struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	BeginTime  time.Time `json:"begin_time"`
	EndTime    time.Time `json:"end_time"`
	BeginWAL   string    `json:"begin_wal"`
	DataSize   int64     `json:"data_size"`
	StoredSize int64     `json:"stored_size"`
	Error      string    `json:"error,omitempty"`
}

// Time is when the backup ended (or, for a record without an end, began).
func (b *Backup) Time() time.Time {
	if b.EndTime.IsZero() {
		return b.BeginTime
	}
	return b.EndTime
}

// Segment is one archived WAL segment and when it was stored.
type Segment struct {
	Name string    `json:"name"`
	Time time.Time `json:"time"`
}

// Gap is a run of missing WAL segments (From to To, both missing), or a
// missing timeline history file (History), on the way recovery follows to
// the newest segment.
type Gap struct {
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Segments uint64 `json:"segments,omitempty"`
	History  string `json:"history,omitempty"`
	// AfterLatest tells that the gap lies after the latest backup's begin
	// WAL: recovery from every backup stops before it, and the newest
	// data cannot be recovered. Otherwise only point-in-time recovery
	// into (or across) the gap from an older backup is lost.
	AfterLatest bool `json:"after_latest_backup"`
}

func (g Gap) String() string {
	if g.History != "" {
		return fmt.Sprintf("timeline history file %s is missing", g.History)
	}
	if g.From == g.To {
		return fmt.Sprintf("segment %s is missing", g.From)
	}
	return fmt.Sprintf("segments %s to %s (%d) are missing", g.From, g.To, g.Segments)
}

// MaxGaps bounds the gaps Facts lists, so that a badly broken archive does
// not make a report of unbounded size; the count goes on.
const MaxGaps = 20

// Limits are the ages beyond which a server is not ok. Zero disables a
// limit.
type Limits struct {
	// MaxBackupAge: a last DONE backup older than this is a warning, and
	// one older than twice this is critical.
	MaxBackupAge time.Duration
	// MaxWALAge: a newest archived segment older than this is critical.
	MaxWALAge time.Duration
}

// Verdict is the state of a server and every reason it is not ok, worst
// first.
type Verdict struct {
	State   State
	Reasons []string
}

// Decide judges f at now. It does no I/O and reads no clock.
//
// Why WAL age is critical and backup age only a warning (until twice the
// limit): the newest archived segment bounds the data lost if the host
// died now, while a late base backup loses nothing as long as the WAL
// since the previous one is archived; it makes recovery longer.
func Decide(f Facts, lim Limits, now time.Time) Verdict {
	var crit, warn []string
	switch {
	case f.Last == nil:
		crit = append(crit, "no DONE backup")
	case lim.MaxBackupAge > 0:
		age := Age(f.Last.Time(), now)
		switch {
		case age > 2*lim.MaxBackupAge:
			crit = append(crit, fmt.Sprintf("last backup %s is %s old, over twice --max-backup-age %s", f.Last.ID, Duration(age), Duration(lim.MaxBackupAge)))
		case age > lim.MaxBackupAge:
			warn = append(warn, fmt.Sprintf("last backup %s is %s old, over --max-backup-age %s", f.Last.ID, Duration(age), Duration(lim.MaxBackupAge)))
		}
	}
	switch {
	case f.NewestWAL == nil:
		crit = append(crit, "no WAL segment archived")
	case lim.MaxWALAge > 0:
		if age := Age(f.NewestWAL.Time, now); age > lim.MaxWALAge {
			crit = append(crit, fmt.Sprintf("newest WAL segment %s is %s old, over --max-wal-age %s", f.NewestWAL.Name, Duration(age), Duration(lim.MaxWALAge)))
		}
	}
	for _, g := range f.Gaps {
		if g.AfterLatest {
			crit = append(crit, "WAL gap after the latest backup: "+g.String()+": recovery cannot reach the newest WAL")
		} else {
			warn = append(warn, "WAL gap before the latest backup: "+g.String()+": point-in-time recovery into it is impossible")
		}
	}
	if f.MoreGaps > 0 {
		warn = append(warn, fmt.Sprintf("%d more WAL gaps", f.MoreGaps))
	}
	if b := f.LastFailed; b != nil {
		warn = append(warn, fmt.Sprintf("last backup attempt %s FAILED: %s", b.ID, b.Error))
	}
	if d := f.Drill; d != nil && !d.OK {
		why := d.Error
		if why == "" {
			why = "no reason recorded"
		}
		warn = append(warn, fmt.Sprintf("last restore drill (%s, backup %s) failed: %s", d.Time.UTC().Format(time.RFC3339), d.BackupID, why))
	}
	v := Verdict{State: OK, Reasons: append(crit, warn...)}
	switch {
	case len(crit) > 0:
		v.State = Critical
	case len(warn) > 0:
		v.State = Warning
	}
	return v
}

// Age is now - t, never negative: a store's clock a little ahead of ours
// makes a fresh object, not one from the future.
func Age(t, now time.Time) time.Duration {
	return max(now.Sub(t), 0)
}

// Duration prints d rounded for people: 45s, 14m, 3h5m, 2d4h.
func Duration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, h)
}
