package retention

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

// Entry is one backup prefix, base/<id>/, as retention sees it: its record
// and a summary of the objects stored under it. The caller builds entries
// from one listing of the server's base/ prefix (so memory grows with the
// number of backups, not with the number of parts) and one Load per record.
type Entry struct {
	ID string
	// Record is nil when base/<id>/ holds objects but no backup.json: the
	// leftovers of a crash, or of a deletion interrupted after its first
	// step (the record is always deleted first).
	Record *catalog.Backup
	// RecordErr is set when backup.json exists but cannot be read (damaged,
	// or written by a newer gbc). Nothing is known about such a backup, so
	// it is never deleted and no WAL is deleted while it exists.
	RecordErr error

	Objects      int       // objects under base/<id>/, the record included
	Bytes        int64     // their total size
	LastModified time.Time // the newest of them
}

// LastActivity is the last sign of life of the backup: its newest object,
// or a time written in its record. A running gbc-backup refreshes the
// record's Heartbeat and keeps uploading parts, so both move while it lives.
func (e Entry) LastActivity() time.Time {
	t := e.LastModified
	if r := e.Record; r != nil {
		for _, u := range []time.Time{r.BeginTime, r.EndTime, r.Heartbeat} {
			if u.After(t) {
				t = u
			}
		}
	}
	return t
}

// Live tells whether e, a STARTED backup, still counts as in progress at
// now: its last sign of life is within the record's silence limit (a few
// heartbeat intervals, or orphanAge for a record that declares none; see
// catalog.Backup.SilenceLimit). A dead one protects no WAL and is cleaned up.
func (e Entry) Live(now time.Time, orphanAge time.Duration) bool {
	return e.Record != nil && now.Sub(e.LastActivity()) <= e.Record.SilenceLimit(orphanAge)
}

// Input is everything a retention decision depends on. Decide does no I/O
// and reads no clock: the same Input always gives the same Plan.
type Input struct {
	Entries []Entry
	// Policy, when not nil, makes the backups it does not retain obsolete.
	Policy *Policy
	// Target, when not empty, is the id, name, "latest" or "oldest" of one
	// backup to delete.
	Target string
	// WithDependents lets Target go although other backups are built on
	// it (incremental or differential, directly or not): they are deleted
	// with it. Without it such a Target is refused.
	WithDependents bool
	// MinRedundancy is the number of DONE full backups without a keep
	// annotation that must remain whatever the policy or the target says.
	// Incremental and differential backups do not count: each needs its
	// full backup, so it is no second copy of the data.
	MinRedundancy int
	// OrphanAge is how long a FAILED backup, a STARTED backup without sign
	// of life, or objects without a record are left alone before they are
	// cleaned up. It must be positive: a running backup is only told apart
	// from a dead one by its age. A STARTED record that declares its
	// heartbeat interval is dead sooner, once its heartbeat stopped for a
	// few intervals (see Entry.Live).
	OrphanAge time.Duration
	Now       time.Time
}

// Deletion is one backup prefix to delete, and why.
type Deletion struct {
	Entry
	Reason string
}

// Retained is one backup prefix that stays, and why.
type Retained struct {
	Entry
	Reason string
}

// Plan is the outcome of Decide.
type Plan struct {
	// Delete lists the backup prefixes to delete, in the order to delete
	// them: oldest first, except that every backup built on another one
	// comes before it, so that a run stopped part-way never leaves an
	// incremental backup without its parent.
	Delete []Deletion
	// Retain lists every other prefix, newest first, with the reason it
	// stays, for --dry-run and -v.
	Retain []Retained
	// WAL tells which archived WAL objects are obsolete once the backups
	// in Delete are gone.
	WAL *WALFilter
	// DataOnly names the backups in Retain that stay only because a
	// remaining backup is built on them: their data is needed, not their
	// WAL (see NewWALFilter).
	DataOnly map[string]bool
	// Notes are things the operator should know: a policy held back by
	// minimum redundancy, WAL deletion switched off, and so on.
	Notes []string
}

// Errors of Decide. Commands map ErrRefused to a "refused to protect data"
// exit code and ErrUnknownBackup to "not found".
var (
	ErrRefused       = errors.New("refused")
	ErrUnknownBackup = errors.New("unknown backup")
)

// Reasons, as printed by --dry-run and kept stable for --format json.
const (
	ReasonPolicy     = "obsolete under the retention policy"
	ReasonRequested  = "requested"
	ReasonFailed     = "FAILED backup"
	ReasonStale      = "STARTED backup without sign of life"
	ReasonOrphan     = "objects without a record"
	ReasonWindow     = "needed by the recovery window"
	ReasonRedundancy = "within redundancy"
	ReasonMinimum    = "minimum redundancy"
	ReasonKeep       = "keep annotation"
	ReasonInProgress = "backup in progress"
	ReasonParent     = "parent of a remaining backup"
	// Chains (see chain.go). Each is followed by a backup id.
	ReasonBuiltOn        = "built on a retained backup" // its full backup is retained by the policy
	ReasonBuiltOnDeleted = "built on a deleted backup"  // its full backup (or the target) goes
	ReasonBuiltOnKept    = "built on a kept backup"     // the nearest kept backup it is built on
	ReasonKeptChain      = "needed by a kept backup"    // a kept backup is built on it
	ReasonBroken         = "incomplete chain"           // followed by ": " and why
	ReasonDoubtfulChain  = "chain cannot be followed"   // followed by ": " and why
	ReasonYoung          = "younger than --orphan-age"
	ReasonUnreadable     = "record unreadable"
	ReasonUnknown        = "unknown status"
	ReasonNotAsked       = "not selected"
)

type verdict struct {
	doom   bool
	reason string
	// data: kept only because a remaining backup is built on it.
	data bool
}

// Decide works out which backups go and which WAL becomes obsolete. It is
// conservative wherever the catalog leaves room for doubt: an unreadable
// record, an unknown status or keep value, or a backup in progress without a
// known begin WAL keeps data rather than guessing.
func Decide(in Input) (*Plan, error) {
	if in.OrphanAge <= 0 {
		return nil, fmt.Errorf("orphan age must be positive, got %s", in.OrphanAge)
	}
	if in.MinRedundancy < 0 {
		return nil, fmt.Errorf("minimum redundancy must not be negative, got %d", in.MinRedundancy)
	}
	entries := append([]Entry(nil), in.Entries...)
	sort.Slice(entries, func(i, j int) bool { return newer(entries[i], entries[j]) })
	c := newChains(entries)

	v := make(map[string]*verdict, len(entries))
	var notes []string
	var fulls []Entry // DONE full backups without keep annotation, newest first: what a policy counts
	for _, e := range entries {
		v[e.ID] = classify(e, in)
		if isDone(e) && e.Record.Keep == "" && isFull(e.Record) {
			fulls = append(fulls, e)
		}
	}
	// A backup built on a kept one is kept with it, so no policy judges it.
	keptOn := map[string]string{}
	for _, e := range entries {
		if isDone(e) && e.Record.Keep == "" && !isFull(e.Record) {
			if k := c.keptAncestor(e.ID); k != "" {
				keptOn[e.ID] = k
				v[e.ID].reason = ReasonBuiltOnKept + " " + k
			}
		}
	}

	if in.Target != "" {
		id, err := resolve(entries, in.Target)
		if err != nil {
			return nil, err
		}
		if err := requestDeletion(c, fulls, id, v, in); err != nil {
			return nil, err
		}
	}
	if in.Policy != nil {
		notes = append(notes, applyPolicy(*in.Policy, fulls, v, in)...)
		notes = append(notes, followFulls(entries, c, v, keptOn)...)
	}
	notes = append(notes, protectKeptChains(entries, c, v)...)
	notes = append(notes, protectParents(entries, v)...)

	plan := &Plan{DataOnly: map[string]bool{}}
	var remaining, deleted []Entry
	for _, e := range deletionOrder(entries, c, v) {
		plan.Delete = append(plan.Delete, Deletion{Entry: e, Reason: v[e.ID].reason})
		deleted = append(deleted, e)
	}
	for _, e := range entries {
		if !v[e.ID].doom {
			plan.Retain = append(plan.Retain, Retained{Entry: e, Reason: v[e.ID].reason})
			remaining = append(remaining, e)
			if v[e.ID].data {
				plan.DataOnly[e.ID] = true
			}
		}
	}
	plan.WAL = NewWALFilter(remaining, deleted, plan.DataOnly, in.Now, in.OrphanAge)
	if plan.WAL.Off() != "" {
		notes = append(notes, "no WAL is deleted: "+plan.WAL.Off())
	}
	plan.Notes = notes
	return plan, nil
}

// classify gives the verdict that does not depend on the policy: garbage
// old enough is cleaned, everything else stays until a policy or the target
// says otherwise.
func classify(e Entry, in Input) *verdict {
	old := in.Now.Sub(e.LastActivity()) > in.OrphanAge
	switch {
	case e.RecordErr != nil:
		return &verdict{reason: ReasonUnreadable}
	case e.Record == nil && old:
		return &verdict{doom: true, reason: ReasonOrphan}
	case e.Record == nil:
		return &verdict{reason: ReasonYoung}
	}
	switch e.Record.Status {
	case catalog.StatusDone:
		if e.Record.Keep != "" {
			return &verdict{reason: ReasonKeep + " " + e.Record.Keep}
		}
		return &verdict{reason: ReasonNotAsked}
	case catalog.StatusFailed:
		if old {
			return &verdict{doom: true, reason: ReasonFailed}
		}
		return &verdict{reason: ReasonYoung}
	case catalog.StatusStarted:
		if !e.Live(in.Now, in.OrphanAge) {
			return &verdict{doom: true, reason: ReasonStale}
		}
		return &verdict{reason: ReasonInProgress}
	}
	return &verdict{reason: ReasonUnknown}
}

// requestDeletion marks the target for deletion, with the backups built on
// it when in.WithDependents says so, or refuses.
func requestDeletion(c *chains, fulls []Entry, id string, v map[string]*verdict, in Input) error {
	e := c.byID[id]
	r := e.Record
	switch {
	case v[id].doom:
		// Garbage (FAILED, dead STARTED, orphan objects): deleting it
		// cannot harm anything, so the request is simply honoured.
		v[id].reason = ReasonRequested + ", " + v[id].reason
		return nil
	case e.RecordErr != nil:
		return fmt.Errorf("%w to delete backup %s: its record cannot be read (%v); inspect base/%s/ in the store by hand", ErrRefused, id, e.RecordErr, id)
	case r == nil:
		return fmt.Errorf("%w to delete %s: its objects are younger than --orphan-age and may belong to a backup being written or deleted", ErrRefused, id)
	case r.Status == catalog.StatusStarted:
		return fmt.Errorf("%w to delete backup %s: it is in progress (STARTED, last sign of life %s); a dead one is cleaned up once its heartbeat stopped for %s",
			ErrRefused, id, e.LastActivity().UTC().Format(time.RFC3339), r.SilenceLimit(in.OrphanAge))
	case r.Status == catalog.StatusFailed:
		v[id].doom, v[id].reason = true, ReasonRequested+", "+ReasonFailed
		return nil
	case r.Status != catalog.StatusDone:
		return fmt.Errorf("%w to delete backup %s: unknown status %q", ErrRefused, id, r.Status)
	case r.Keep != "":
		return fmt.Errorf("%w to delete backup %s: it has keep annotation %q; release it first with gbc-backup-keep --release", ErrRefused, id, r.Keep)
	}

	// What is built on it. FAILED and dead STARTED ones are garbage that
	// needs no parent: they go with it under --with-dependents, and do
	// not stand in the way otherwise.
	var needy, garbage []string
	for _, d := range c.dependents(id) {
		de := c.byID[d]
		dr := de.Record
		switch {
		case dr.Status == catalog.StatusStarted && de.Live(in.Now, in.OrphanAge):
			return fmt.Errorf("%w to delete backup %s: backup %s, in progress, is built on it; wait for it to end", ErrRefused, id, d)
		case dr.Status == catalog.StatusFailed, dr.Status == catalog.StatusStarted:
			garbage = append(garbage, d)
		case dr.Status != catalog.StatusDone:
			return fmt.Errorf("%w to delete backup %s: backup %s, built on it, has unknown status %q", ErrRefused, id, d, dr.Status)
		case dr.Keep != "":
			return fmt.Errorf("%w to delete backup %s: backup %s, built on it, has keep annotation %q and cannot be restored without it; release that keep first with gbc-backup-keep --release", ErrRefused, id, d, dr.Keep)
		default:
			needy = append(needy, d)
		}
	}
	if len(needy) > 0 && !in.WithDependents {
		// Named oldest first, as gbc-backup-list shows them.
		sort.Strings(needy)
		return fmt.Errorf("%w to delete backup %s: %d backup(s) are built on it and cannot be restored without it: %s; give --with-dependents to delete them too (--dry-run shows what goes), or delete them first",
			ErrRefused, id, len(needy), strings.Join(needy, ", "))
	}
	if isFull(r) && len(fulls)-1 < in.MinRedundancy {
		return fmt.Errorf("%w to delete backup %s: %d DONE full backups without keep annotation would remain, below --minimum-redundancy %d",
			ErrRefused, id, len(fulls)-1, in.MinRedundancy)
	}
	v[id].doom, v[id].reason = true, ReasonRequested
	if in.WithDependents {
		for _, d := range append(needy, garbage...) {
			v[d].doom, v[d].reason = true, ReasonRequested+", "+ReasonBuiltOnDeleted+" "+id
		}
	}
	return nil
}

// applyPolicy dooms the full backups (DONE, not kept, newest first) that
// the policy does not retain; followFulls then gives every backup built on
// one the same fate. Kept backups are not counted, so they neither count
// toward REDUNDANCY nor end a recovery window: barman's semantics, and the
// safe side, since it can only retain more. Incremental and differential
// backups are not counted either: a chain is one copy of the data, however
// many backups it has (pgBackRest's repo-retention-full, barman's rule for
// incremental backups).
func applyPolicy(p Policy, fulls []Entry, v map[string]*verdict, in Input) []string {
	var notes []string
	retained := 0
	windowCovered := false // RecoveryWindow: a retained backup ends before the window
	start := p.WindowStart(in.Now)
	for _, e := range fulls {
		vv := v[e.ID]
		if vv.doom { // the target, already decided
			continue
		}
		var keep bool
		switch p.Kind {
		case Redundancy:
			keep, vv.reason = retained < p.Value, ReasonRedundancy
		case RecoveryWindow:
			// Newest first: every full backup is needed until one that
			// ended before the window start, which is needed too, since
			// recovering to the window's first instant starts from it
			// (or from a backup built on it).
			keep, vv.reason = !windowCovered, ReasonWindow
			if keep && endedBefore(e.Record, start) {
				windowCovered = true
			}
		}
		if !keep && retained < in.MinRedundancy {
			keep, vv.reason = true, ReasonMinimum
			notes = append(notes, fmt.Sprintf("backup %s is obsolete under %s but kept for --minimum-redundancy %d", e.ID, p, in.MinRedundancy))
		}
		if keep {
			retained++
			continue
		}
		vv.doom, vv.reason = true, ReasonPolicy+" "+p.String()
	}
	return notes
}

// endedBefore tells whether r is known to have ended before t. A record
// without an end time has not, so the window search goes on to older
// backups and retains more.
func endedBefore(r *catalog.Backup, t time.Time) bool {
	return !r.EndTime.IsZero() && r.EndTime.Before(t)
}

// followFulls gives each DONE incremental or differential backup without
// a keep of its own the fate of the full backup of its chain: retained
// with it, or deleted with it. One whose chain is broken (a parent missing
// or FAILED) cannot be restored and goes; one whose chain cannot be
// followed stays. Those built on a kept backup (keptOn) stay with it.
func followFulls(entries []Entry, c *chains, v map[string]*verdict, keptOn map[string]string) []string {
	var notes []string
	for _, e := range entries {
		vv := v[e.ID]
		if !isDone(e) || e.Record.Keep != "" || isFull(e.Record) || keptOn[e.ID] != "" || vv.doom {
			continue
		}
		full, broken, doubt := c.root(e.ID)
		switch {
		case broken != "":
			vv.doom, vv.reason = true, ReasonBroken+": "+broken
			notes = append(notes, fmt.Sprintf("backup %s cannot be restored and is deleted: %s", e.ID, broken))
		case doubt != "":
			vv.reason = ReasonDoubtfulChain + ": " + doubt
		case v[full].doom:
			vv.doom, vv.reason = true, ReasonBuiltOnDeleted+" "+full
		default:
			vv.reason = ReasonBuiltOn + " " + full
		}
	}
	return notes
}

// protectKeptChains spares every backup that a kept backup is built on: it
// could not be restored without them. The annotation is on the kept
// backup alone, so releasing it frees them again.
func protectKeptChains(entries []Entry, c *chains, v map[string]*verdict) []string {
	var notes []string
	for _, e := range entries {
		if !kept(e) {
			continue
		}
		for _, a := range c.ancestors(e.ID) {
			if va := v[a]; va != nil && va.doom {
				va.doom, va.reason, va.data = false, ReasonKeptChain+" "+e.ID, true
				notes = append(notes, fmt.Sprintf("backup %s is kept: kept backup %s is built on it", a, e.ID))
			}
		}
	}
	return notes
}

// protectParents spares every backup that a remaining backup is built on
// (incremental backups): deleting a parent would make its children
// unrestorable. The rules above already do so; this is the safety net
// under them, whatever a record says.
func protectParents(entries []Entry, v map[string]*verdict) []string {
	byID := make(map[string]Entry, len(entries))
	for _, e := range entries {
		byID[e.ID] = e
	}
	var notes []string
	for changed := true; changed; {
		changed = false
		for _, e := range entries {
			// A FAILED backup is never restored, so it needs no parent.
			if v[e.ID].doom || e.Record == nil || e.Record.ParentID == "" || e.Record.Status == catalog.StatusFailed {
				continue
			}
			p, ok := byID[e.Record.ParentID]
			if !ok || !v[p.ID].doom {
				continue
			}
			v[p.ID].doom, v[p.ID].reason, v[p.ID].data = false, ReasonParent+" "+e.ID, true
			notes = append(notes, fmt.Sprintf("backup %s is kept: backup %s is incremental on top of it", p.ID, e.ID))
			changed = true
		}
	}
	return notes
}

// deletionOrder returns the doomed entries oldest first, except that each
// backup comes after every doomed backup built on it: deleted in this
// order, a run stopped at any point leaves no incremental backup without
// its parent. entries is sorted newest first. Following the chains rather
// than sorting by id keeps the order right even if clocks disagreed.
func deletionOrder(entries []Entry, c *chains, v map[string]*verdict) []Entry {
	done := map[string]bool{}
	var out []Entry
	var visit func(e Entry)
	visit = func(e Entry) {
		if done[e.ID] {
			return
		}
		done[e.ID] = true // before the children: a cycle ends here
		for _, k := range c.children[e.ID] {
			if v[k].doom {
				visit(c.byID[k])
			}
		}
		out = append(out, e)
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if v[entries[i].ID].doom {
			visit(entries[i])
		}
	}
	return out
}

// resolve finds the id of the backup ref names: an id, a name, or "latest"
// and "oldest" among DONE backups. entries is sorted newest first.
func resolve(entries []Entry, ref string) (string, error) {
	for _, e := range entries {
		if e.ID == ref {
			return e.ID, nil
		}
	}
	var found []string
	for _, e := range entries {
		if e.Record != nil && e.Record.Name != "" && e.Record.Name == ref {
			found = append(found, e.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
	default:
		return "", fmt.Errorf("%w: name %q is used by several backups (%v); give the id", ErrRefused, ref, found)
	}
	if ref == "latest" || ref == "oldest" {
		var done []string
		for _, e := range entries {
			if e.Record != nil && e.RecordErr == nil && e.Record.Status == catalog.StatusDone {
				done = append(done, e.ID)
			}
		}
		if len(done) > 0 {
			if ref == "latest" {
				return done[0], nil
			}
			return done[len(done)-1], nil
		}
	}
	return "", fmt.Errorf("%w %q: no backup has this id or name (gbc-backup-list shows them)", ErrUnknownBackup, ref)
}

// newer orders entries newest first by id. An id is the backup's start
// time in UTC (20261124T214842Z), so it sorts chronologically, exists for
// entries without a record too, and gives a total order, as barman does.
func newer(a, b Entry) bool { return a.ID > b.ID }
