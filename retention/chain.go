package retention

import (
	"fmt"
	"sort"

	"github.com/gbc-backup/gbc/catalog"
)

// Chains of incremental and differential backups, as retention sees them.
//
// A backup with a ParentID is built on that backup: restoring it needs its
// parent, the parent's parent, and so on down to a full backup (a record
// without ParentID whose Kind is full; records from before incremental
// backups are full). Retention follows three rules from that:
//
//   - A policy counts and judges full backups only; every backup built on a
//     full shares its fate (pgBackRest's repo-retention-full, barman's
//     rule for block-level incremental backups).
//   - A keep annotation holds the backups the kept one is built on (it
//     could not be restored without them) and the backups built on it (as
//     barman does for a kept full backup). Retention derives this from the
//     one annotation, so releasing it frees the whole chain again.
//   - Nothing is deleted while a remaining backup is built on it
//     (protectParents, the safety net under every other rule).

// chains relates the entries of one catalog through ParentID.
type chains struct {
	byID map[string]Entry
	// children lists, by parent id, the ids of the readable records that
	// name it as their parent, newest first.
	children map[string][]string
}

// newChains indexes entries, which must be sorted newest first.
func newChains(entries []Entry) *chains {
	c := &chains{byID: make(map[string]Entry, len(entries)), children: map[string][]string{}}
	for _, e := range entries {
		c.byID[e.ID] = e
		if r := e.Record; r != nil && e.RecordErr == nil && r.ParentID != "" && r.ParentID != e.ID {
			c.children[r.ParentID] = append(c.children[r.ParentID], e.ID)
		}
	}
	return c
}

// isFull tells whether r is a full backup: the root of its chain.
func isFull(r *catalog.Backup) bool { return r.ParentID == "" && r.Kind() == catalog.TypeFull }

// isDone tells whether e is a DONE backup with a readable record.
func isDone(e Entry) bool {
	return e.Record != nil && e.RecordErr == nil && e.Record.Status == catalog.StatusDone
}

// kept tells whether e is a DONE backup with a keep annotation of its own.
func kept(e Entry) bool { return isDone(e) && e.Record.Keep != "" }

// dependents returns every backup built on id, directly or not, newest
// first.
func (c *chains) dependents(id string) []string {
	seen := map[string]bool{id: true}
	var out []string
	queue := []string{id}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range c.children[p] {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
				queue = append(queue, k)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// ancestors returns the ids of the backups id is built on, its parent
// first, as far as the catalog has them (a missing parent or a cycle ends
// the walk).
func (c *chains) ancestors(id string) []string {
	var out []string
	seen := map[string]bool{id: true}
	for e, ok := c.byID[id]; ok && e.Record != nil && e.RecordErr == nil && e.Record.ParentID != ""; {
		p := e.Record.ParentID
		if seen[p] {
			break
		}
		seen[p] = true
		out = append(out, p)
		e, ok = c.byID[p]
	}
	return out
}

// keptAncestor returns the nearest backup with a keep annotation that id
// is built on, or "".
func (c *chains) keptAncestor(id string) string {
	for _, a := range c.ancestors(id) {
		if kept(c.byID[a]) {
			return a
		}
	}
	return ""
}

// root follows the chain of id, a DONE backup, down to its full backup.
// When the chain does not reach one, broken says why if the catalog proves
// that it never will (a parent missing, FAILED, without a record, or none
// recorded): such a backup cannot be restored. doubt says why when the
// catalog leaves it open (an unreadable parent record, a parent of another
// status, a cycle): such a backup is left alone.
func (c *chains) root(id string) (full, broken, doubt string) {
	e := c.byID[id]
	seen := map[string]bool{}
	for {
		seen[e.ID] = true
		r := e.Record
		if r.ParentID == "" {
			if r.Kind() == catalog.TypeFull {
				return e.ID, "", ""
			}
			return "", fmt.Sprintf("backup %s is %s but names no parent", e.ID, r.Kind()), ""
		}
		p, ok := c.byID[r.ParentID]
		switch {
		case !ok:
			return "", fmt.Sprintf("parent %s of backup %s is missing", r.ParentID, e.ID), ""
		case seen[p.ID]:
			return "", "", fmt.Sprintf("the chain of backup %s loops through %s", id, p.ID)
		case p.RecordErr != nil:
			return "", "", fmt.Sprintf("the record of parent %s cannot be read", p.ID)
		case p.Record == nil:
			return "", fmt.Sprintf("parent %s of backup %s has no record", p.ID, e.ID), ""
		case p.Record.Status == catalog.StatusFailed:
			return "", fmt.Sprintf("parent %s of backup %s is FAILED", p.ID, e.ID), ""
		case p.Record.Status != catalog.StatusDone:
			return "", "", fmt.Sprintf("parent %s is %s", p.ID, p.Record.Status)
		}
		e = p
	}
}

// Lineage is how one backup relates to the others of its catalog through
// ParentID, for the commands that explain a keep or a deletion.
type Lineage struct {
	// BuiltOn lists the backups it is built on, its parent first, down to
	// its full backup: restoring it needs every one of them.
	BuiltOn []string
	// Broken, when set, says why its chain never reaches a full backup,
	// so that it cannot be restored; Doubt says why the catalog cannot
	// tell (an unreadable record, for one).
	Broken, Doubt string
	// Dependents lists every backup built on it, directly or not, newest
	// first.
	Dependents []string
	// KeptBy lists the other backups with a keep annotation that hold
	// this one, whatever its own annotation: the nearest kept backup it
	// is built on, and every kept backup built on it.
	KeptBy []string
}

// LineageOf tells how backup id relates to the other entries. An id not
// among them has an empty Lineage.
func LineageOf(entries []Entry, id string) Lineage {
	entries = append([]Entry(nil), entries...)
	sort.Slice(entries, func(i, j int) bool { return newer(entries[i], entries[j]) })
	c := newChains(entries)
	e, ok := c.byID[id]
	if !ok || e.Record == nil || e.RecordErr != nil {
		return Lineage{}
	}
	l := Lineage{BuiltOn: c.ancestors(id), Dependents: c.dependents(id)}
	if isDone(e) && !isFull(e.Record) {
		_, l.Broken, l.Doubt = c.root(id)
	}
	if k := c.keptAncestor(id); k != "" {
		l.KeptBy = append(l.KeptBy, k)
	}
	for _, d := range l.Dependents {
		if kept(c.byID[d]) {
			l.KeptBy = append(l.KeptBy, d)
		}
	}
	return l
}
