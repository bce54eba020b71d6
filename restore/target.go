package restore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/pg"
)

// Target is a point-in-time recovery target, with PostgreSQL's recovery_target_*
// meaning. At most one of Time, LSN, XID, Name and Immediate is set; the
// zero Target recovers to the end of the archived WAL.
type Target struct {
	Time      time.Time
	LSN       pg.LSN // 0: none
	XID       string
	Name      string
	Immediate bool

	// Timeline is "", "current", "latest" or a timeline number.
	Timeline string
	// Inclusive is nil for PostgreSQL's default (inclusive).
	Inclusive *bool
	// Action is "", "pause", "promote" or "shutdown".
	Action string
}

// ErrTarget classifies a target that cannot be reached from the chosen
// backup, so that commands map it to a refusal rather than a failure.
var ErrTarget = errors.New("recovery target not reachable from this backup")

// Kind names the target that is set, as PostgreSQL's option suffix
// ("time", "lsn", "xid", "name", "immediate"), or "" for none.
func (t Target) Kind() string {
	switch {
	case !t.Time.IsZero():
		return "time"
	case t.LSN != 0:
		return "lsn"
	case t.XID != "":
		return "xid"
	case t.Name != "":
		return "name"
	case t.Immediate:
		return "immediate"
	}
	return ""
}

// Check validates the target on its own, before any backup is chosen:
// PostgreSQL refuses more than one target at startup, long after the restore
// has been paid for, so the mistake is caught here instead.
func (t Target) Check() error {
	n := 0
	for _, set := range []bool{!t.Time.IsZero(), t.LSN != 0, t.XID != "", t.Name != "", t.Immediate} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("give at most one of --target-time, --target-lsn, --target-xid, --target-name and --target-immediate")
	}
	if t.XID != "" {
		if _, err := strconv.ParseUint(t.XID, 10, 64); err != nil {
			return fmt.Errorf("--target-xid %q: a transaction id is a decimal number", t.XID)
		}
	}
	if t.Inclusive != nil && n == 0 {
		return errors.New("--target-inclusive needs --target-time, --target-lsn or --target-xid")
	}
	if t.Inclusive != nil && (t.Name != "" || t.Immediate) {
		return errors.New("--target-inclusive applies only to --target-time, --target-lsn and --target-xid")
	}
	switch t.Action {
	case "", "pause", "promote", "shutdown":
	default:
		return fmt.Errorf("--target-action %q: use pause, promote or shutdown", t.Action)
	}
	if t.Action != "" && n == 0 {
		return errors.New("--target-action needs a recovery target (--target-time, --target-lsn, --target-xid, --target-name or --target-immediate)")
	}
	switch t.Timeline {
	case "", "current", "latest":
	default:
		if tli, err := strconv.ParseUint(t.Timeline, 10, 32); err != nil || tli == 0 {
			return fmt.Errorf("--target-timeline %q: use current, latest or a timeline number", t.Timeline)
		}
	}
	return nil
}

// CheckStandby refuses a target for a restore that starts a standby
// (--standby). PostgreSQL does honour the recovery target settings in
// standby mode ("will also be applied but are typically not useful in this
// mode", says its documentation of standby.signal): replay stops at the
// target, then recovery_target_action applies. pause leaves a standby that
// no longer follows its primary, promote ends standby mode, which a
// restore without --standby does already, and shutdown stops the server:
// none builds a replica, which is what --standby is for, so the mistake is
// caught here rather than after the restore (pgBackRest's --type=standby
// takes no target either). --target-timeline is allowed: it is what a
// standby follows (latest: across its primary's promotions).
func (t Target) CheckStandby() error {
	if k := t.Kind(); k != "" {
		return fmt.Errorf("--standby builds a replica that keeps following its primary, and --target-%s would stop its replay: restore without --standby for point-in-time recovery", k)
	}
	if t.Action != "" {
		return errors.New("--standby builds a replica that never ends recovery: --target-action does not apply")
	}
	return nil
}

// CheckFor is Check for a restore that starts a standby (standby true) or
// not: CheckStandby first, whose refusal says more to one who asked for a
// standby than Check's "--target-action needs a recovery target".
func (t Target) CheckFor(standby bool) error {
	if standby {
		if err := t.CheckStandby(); err != nil {
			return err
		}
	}
	return t.Check()
}

// Reachable tells whether recovery from b can reach the target. Only time,
// LSN and timeline can be compared with a backup; a target before the end of
// the backup would make PostgreSQL stop with "requested recovery stop point
// is before consistent recovery point" after the whole restore.
func (t Target) Reachable(b *catalog.Backup) error {
	if !t.Time.IsZero() && !b.EndTime.IsZero() && t.Time.Before(b.EndTime) {
		return fmt.Errorf("%w: --target-time %s is before the end of backup %s (%s); choose an older backup (see gbc-backup-list) or BACKUP_ID auto",
			ErrTarget, FormatTime(t.Time), b.ID, FormatTime(b.EndTime))
	}
	if t.LSN != 0 && b.EndLSN != "" {
		end, err := pg.ParseLSN(b.EndLSN)
		if err != nil {
			return fmt.Errorf("backup %s: end LSN: %w", b.ID, err)
		}
		if t.LSN < end {
			return fmt.Errorf("%w: --target-lsn %s is before the end of backup %s (%s); choose an older backup (see gbc-backup-list) or BACKUP_ID auto",
				ErrTarget, t.LSN, b.ID, b.EndLSN)
		}
	}
	if tli, err := strconv.ParseUint(t.Timeline, 10, 32); err == nil && b.Timeline > uint32(tli) {
		return fmt.Errorf("%w: --target-timeline %d is older than timeline %d of backup %s; choose a backup of that timeline (see gbc-backup-list)", ErrTarget, tli, b.Timeline, b.ID)
	}
	return nil
}

// Before tells whether backup b ended at or before the target, for picking a
// backup with BACKUP_ID auto. Targets that cannot be compared with a backup
// (xid, name, immediate, none) accept every backup, so auto is the latest.
func (t Target) Before(b *catalog.Backup) bool {
	switch {
	case !t.Time.IsZero():
		return !b.EndTime.IsZero() && !b.EndTime.After(t.Time)
	case t.LSN != 0:
		end, err := pg.ParseLSN(b.EndLSN)
		return err == nil && end <= t.LSN
	}
	return true
}

// timeLayouts are the forms --target-time accepts. Each carries a zone:
// PostgreSQL reads a zone-less time in the restored server's TimeZone, which
// the operator may not know, so gbc asks for an explicit one.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 Z07:00",
	"2006-01-02 15:04:05.999999999 Z07",
	"2006-01-02T15:04:05.999999999Z07",
}

// ParseTime reads a --target-time value such as "2026-11-24 21:48:42+01",
// "2026-11-24T20:48:42Z" or "2026-11-24 20:48:42 UTC".
func ParseTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if u, ok := strings.CutSuffix(v, " UTC"); ok {
		v = u + "Z"
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--target-time %q: use a time with a zone, such as \"2026-11-24 21:48:42+01\" or \"2026-11-24T20:48:42Z\"", s)
}

// FormatTime writes t the way recovery_target_time reads it unambiguously:
// UTC with an explicit offset and microseconds, PostgreSQL's precision.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.000000-07")
}
