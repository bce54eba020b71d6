package retention

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

func incr(p Entry) opt {
	return func(e *Entry) { e.Record.ParentID, e.Record.Type = p.ID, catalog.TypeIncr }
}
func diff(p Entry) opt {
	return func(e *Entry) { e.Record.ParentID, e.Record.Type = p.ID, catalog.TypeDiff }
}
func typ(t string) opt { return func(e *Entry) { e.Record.Type = t } }
func parentID(id string) opt {
	return func(e *Entry) { e.Record.ParentID, e.Record.Type = id, catalog.TypeIncr }
}

// Three chains, oldest first, with WAL 1..30 on timeline 1:
//
//	A: fa (10 days ago) <- ia1 <- ia2, and da (a differential on fa)
//	B: fb (5 days ago) <- ib1 <- ib2
//	C: fc (2 days ago) <- ic1
var (
	fa  = bk(10*day, 1, 2, 3, typ(catalog.TypeFull))
	ia1 = bk(9*day, 1, 5, 6, incr(fa))
	ia2 = bk(8*day, 1, 8, 9, incr(ia1))
	da  = bk(7*day+12*time.Hour, 1, 11, 12, diff(fa))
	fb  = bk(5*day, 1, 14, 15)
	ib1 = bk(4*day, 1, 17, 18, incr(fb))
	ib2 = bk(3*day, 1, 20, 21, incr(ib1))
	fc  = bk(2*day, 1, 23, 24)
	ic1 = bk(1*day, 1, 26, 27, incr(fc))
)

func chainA() []Entry { return []Entry{fa, ia1, ia2, da} }
func chainB() []Entry { return []Entry{fb, ib1, ib2} }
func chainC() []Entry { return []Entry{fc, ic1} }
func cat(parts ...[]Entry) []Entry {
	var out []Entry
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// with returns e with opts applied to a copy of its record.
func with(e Entry, opts ...opt) Entry {
	r := *e.Record
	e.Record = &r
	for _, o := range opts {
		o(&e)
	}
	return e
}

// replace returns entries with the entry of the same id as e replaced by e.
func replace(entries []Entry, es ...Entry) []Entry {
	out := append([]Entry(nil), entries...)
	for _, e := range es {
		for i := range out {
			if out[i].ID == e.ID {
				out[i] = e
			}
		}
	}
	return out
}

// checkChainInvariants holds for every plan: each deleted backup comes
// after every deleted backup built on it, no remaining backup is built on
// a deleted one, and nothing kept or in progress goes.
func checkChainInvariants(t *testing.T, plan *Plan) {
	t.Helper()
	pos := map[string]int{}
	for i, d := range plan.Delete {
		pos[d.ID] = i
	}
	for i, d := range plan.Delete {
		if r := d.Record; r != nil && r.ParentID != "" {
			if j, ok := pos[r.ParentID]; ok && j < i {
				t.Errorf("parent %s is deleted before %s, which is built on it", r.ParentID, d.ID)
			}
		}
		if r := d.Record; r != nil && r.Keep != "" {
			t.Errorf("kept backup %s deleted", d.ID)
		}
	}
	for _, r := range plan.Retain {
		if r.Record != nil && r.Record.ParentID != "" && r.Record.Status != catalog.StatusFailed {
			if _, gone := pos[r.Record.ParentID]; gone {
				t.Errorf("backup %s remains, but its parent %s is deleted", r.ID, r.Record.ParentID)
			}
		}
	}
}

func TestDecideChains(t *testing.T) {
	keptIB1 := with(ib1, keep(catalog.KeepStandalone))
	keptIB2 := with(ib2, keep(catalog.KeepFull))
	keptIA1 := with(ia1, keep(catalog.KeepStandalone))
	keptFA := with(fa, keep(catalog.KeepFull))
	all := cat(chainA(), chainB(), chainC())

	// Recovery window boundaries (7 days): fx ends exactly at the window
	// start, so it is not before it; f0 is the newest full ending before.
	f00 := bk(30*day, 1, 1, 1)
	i00 := bk(25*day, 1, 2, 2, incr(f00))
	f0 := bk(20*day, 1, 3, 3)
	i0 := bk(15*day, 1, 4, 4, incr(f0))
	fx := bk(7*day+time.Hour, 1, 5, 5)
	ix := bk(6*day, 1, 6, 6, incr(fx))
	fy := bk(1*day, 1, 7, 7)
	window := []Entry{f00, i00, f0, i0, fx, ix, fy}

	tests := []struct {
		name     string
		entries  []Entry
		policy   string
		target   string
		withDeps bool
		minRed   int
		want     []string          // deleted ids, in deletion order
		reasons  map[string]string // id -> reason prefix, deleted or retained
		dataOnly []string
		wantErr  string // a refusal: every "|"-separated part must be in the message
	}{
		{
			name: "redundancy 1 counts fulls: two chains go whole, children first", entries: all, policy: "REDUNDANCY 1",
			want: ids([]Entry{da, ia2, ia1, fa, ib2, ib1, fb}),
			reasons: map[string]string{
				fa.ID: ReasonPolicy + " REDUNDANCY 1", ia2.ID: ReasonBuiltOnDeleted + " " + fa.ID, da.ID: ReasonBuiltOnDeleted + " " + fa.ID,
				fc.ID: ReasonRedundancy, ic1.ID: ReasonBuiltOn + " " + fc.ID,
			},
		},
		{name: "redundancy 2 keeps two fulls and their chains", entries: all, policy: "REDUNDANCY 2", want: ids([]Entry{da, ia2, ia1, fa})},
		{name: "redundancy 3 keeps everything", entries: all, policy: "REDUNDANCY 3"},
		{
			name: "a kept incremental keeps its chain down to the full and what is built on it", entries: replace(all, keptIB1), policy: "REDUNDANCY 1",
			want: ids([]Entry{da, ia2, ia1, fa}),
			reasons: map[string]string{
				fb.ID: ReasonKeptChain + " " + ib1.ID, ib1.ID: ReasonKeep + " standalone", ib2.ID: ReasonBuiltOnKept + " " + ib1.ID,
			},
			dataOnly: []string{fb.ID},
		},
		{
			name: "a kept incremental at the end of its chain", entries: replace(all, keptIB2), policy: "REDUNDANCY 1",
			want:     ids([]Entry{da, ia2, ia1, fa}),
			reasons:  map[string]string{fb.ID: ReasonKeptChain + " " + ib2.ID, ib1.ID: ReasonKeptChain + " " + ib2.ID},
			dataOnly: []string{fb.ID, ib1.ID},
		},
		{
			name: "a kept incremental holds its line only: a sibling differential goes", entries: replace(all, keptIA1), policy: "REDUNDANCY 1",
			want: ids([]Entry{da, ib2, ib1, fb}),
			reasons: map[string]string{
				fa.ID: ReasonKeptChain + " " + ia1.ID, ia2.ID: ReasonBuiltOnKept + " " + ia1.ID, da.ID: ReasonBuiltOnDeleted + " " + fa.ID,
			},
			dataOnly: []string{fa.ID},
		},
		{
			name: "a kept full keeps what is built on it, and does not count", entries: replace(all, keptFA), policy: "REDUNDANCY 1",
			want:    ids([]Entry{ib2, ib1, fb}),
			reasons: map[string]string{ia2.ID: ReasonBuiltOnKept + " " + fa.ID, da.ID: ReasonBuiltOnKept + " " + fa.ID},
		},
		{name: "minimum redundancy counts fulls", entries: all, policy: "REDUNDANCY 1", minRed: 2, want: ids([]Entry{da, ia2, ia1, fa}), reasons: map[string]string{fb.ID: ReasonMinimum, ib2.ID: ReasonBuiltOn + " " + fb.ID}},
		{name: "incrementals do not count toward minimum redundancy", entries: []Entry{fa, ia1, ia2, fb}, target: fa.ID, withDeps: true, minRed: 2, wantErr: "1 DONE full backups without keep annotation would remain, below --minimum-redundancy 2"},
		{name: "deleting an incremental leaves the fulls as they are", entries: []Entry{fa, ia1, ia2, fb}, target: ia2.ID, minRed: 5, want: ids([]Entry{ia2})},
		{
			name: "recovery window: the newest full ending before it, and everything after", entries: window, policy: "RECOVERY WINDOW OF 7 DAYS",
			want:    ids([]Entry{i00, f00}),
			reasons: map[string]string{f0.ID: ReasonWindow, i0.ID: ReasonBuiltOn + " " + f0.ID, fx.ID: ReasonWindow, ix.ID: ReasonBuiltOn + " " + fx.ID},
		},
		{
			// da ended before the window start, but only a full backup
			// ends the window: fa, the newest full before it, and all
			// after it (ia1 and ia2 included) stay.
			name: "recovery window: an incremental ending before the window does not end it", entries: all, policy: "RECOVERY WINDOW OF 7 DAYS",
			reasons: map[string]string{fa.ID: ReasonWindow, ia2.ID: ReasonBuiltOn + " " + fa.ID, da.ID: ReasonBuiltOn + " " + fa.ID},
		},
		{name: "recovery window: the chains of fulls ending before the newest one go", entries: all, policy: "RECOVERY WINDOW OF 4 DAYS", want: ids([]Entry{da, ia2, ia1, fa})},
		{name: "recovery window: every full inside it keeps every chain", entries: all, policy: "RECOVERY WINDOW OF 11 DAYS"},
		{
			name: "recovery window with a kept incremental in an obsolete chain", entries: replace(window, with(i00, keep(catalog.KeepStandalone))), policy: "RECOVERY WINDOW OF 7 DAYS",
			reasons:  map[string]string{f00.ID: ReasonKeptChain + " " + i00.ID},
			dataOnly: []string{f00.ID},
		},
		{
			name:    "an incremental whose parent is missing cannot be restored and goes under a policy",
			entries: []Entry{bk(3*day, 1, 5, 6, parentID("20200101T000000Z")), fc}, policy: "REDUNDANCY 1",
			want:    []string{bk(3*day, 1, 5, 6).ID},
			reasons: map[string]string{bk(3*day, 1, 5, 6).ID: ReasonBroken + ": parent 20200101T000000Z of backup " + bk(3*day, 1, 5, 6).ID + " is missing"},
		},
		{
			name:    "an incremental on a FAILED backup goes with it under a policy",
			entries: []Entry{bk(4*day, 1, 2, 3, status(catalog.StatusFailed)), bk(3*day, 1, 5, 6, parentID(bk(4*day, 1, 2, 3).ID)), fc}, policy: "REDUNDANCY 1",
			want: []string{bk(3*day, 1, 5, 6).ID, bk(4*day, 1, 2, 3).ID},
		},
		{
			name:    "an incremental that names no parent goes under a policy",
			entries: []Entry{bk(3*day, 1, 5, 6, typ(catalog.TypeIncr)), fc}, policy: "REDUNDANCY 1",
			want: []string{bk(3*day, 1, 5, 6).ID},
		},
		{
			name:    "a broken chain is left alone without a policy",
			entries: []Entry{bk(3*day, 1, 5, 6, parentID("20200101T000000Z")), fb, fc}, target: fb.ID,
			want: ids([]Entry{fb}),
		},
		{
			name:    "an incremental on an unreadable record stays",
			entries: []Entry{{ID: fa.ID, RecordErr: errors.New("bad json"), LastModified: now.Add(-30 * day)}, ia1, fc}, policy: "REDUNDANCY 1",
			reasons: map[string]string{ia1.ID: ReasonDoubtfulChain},
		},
		// Deleting one backup.
		{name: "by id of a full with dependents: refused, naming all of them", entries: all, target: fa.ID, wantErr: "refused to delete backup " + fa.ID + ": 3 backup(s) are built on it|" + ia1.ID + ", " + ia2.ID + ", " + da.ID + ";|--with-dependents"},
		{name: "by id of an incremental with dependents: refused", entries: all, target: ib1.ID, wantErr: "1 backup(s) are built on it and cannot be restored without it: " + ib2.ID + ";"},
		{
			name: "by id with --with-dependents: the dependents first", entries: all, target: fa.ID, withDeps: true,
			want:    ids([]Entry{da, ia2, ia1, fa}),
			reasons: map[string]string{fa.ID: ReasonRequested, ia2.ID: ReasonRequested + ", " + ReasonBuiltOnDeleted + " " + fa.ID, fb.ID: ReasonNotAsked},
		},
		{name: "by id of an incremental with --with-dependents", entries: all, target: ib1.ID, withDeps: true, want: ids([]Entry{ib2, ib1})},
		{name: "by id of the last of a chain", entries: all, target: "latest", want: ids([]Entry{ic1})},
		{name: "by id of a backup a kept incremental is built on", entries: replace(all, keptIB2), target: fb.ID, withDeps: true, wantErr: "backup " + ib2.ID + ", built on it, has keep annotation \"full\"|gbc-backup-keep --release"},
		{name: "by id of a kept incremental", entries: replace(all, keptIB2), target: ib2.ID, wantErr: "keep annotation"},
		{name: "by id of a backup an incremental in progress is built on", entries: []Entry{fb, bk(time.Hour, 1, 30, 30, incr(fb), status(catalog.StatusStarted), heartbeat(time.Minute))}, target: fb.ID, withDeps: true, wantErr: "in progress, is built on it"},
		{
			name:    "by id: a FAILED incremental on top stands in no way, and goes with --with-dependents",
			entries: []Entry{fb, bk(4*day, 1, 30, 30, incr(fb), status(catalog.StatusFailed)), fc}, target: fb.ID, withDeps: true,
			want: []string{bk(4*day, 1, 30, 30).ID, fb.ID},
		},
		{
			name:    "by id: a young FAILED incremental on top is left to --orphan-age without --with-dependents",
			entries: []Entry{fb, bk(time.Hour, 1, 30, 30, incr(fb), status(catalog.StatusFailed)), fc}, target: fb.ID,
			want: []string{fb.ID},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Decide(Input{
				Entries: tt.entries, Policy: mustPolicy(t, tt.policy), Target: tt.target, WithDependents: tt.withDeps,
				MinRedundancy: tt.minRed, OrphanAge: day, Now: now,
			})
			if tt.wantErr != "" {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("err = %v, want a refusal", err)
				}
				for _, part := range strings.Split(tt.wantErr, "|") {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("refusal %q lacks %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			reason := map[string]string{}
			for _, d := range plan.Delete {
				got = append(got, d.ID)
				reason[d.ID] = d.Reason
			}
			for _, r := range plan.Retain {
				reason[r.ID] = r.Reason
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("deleted %v, want %v", got, tt.want)
			}
			for id, want := range tt.reasons {
				if !strings.HasPrefix(reason[id], want) {
					t.Errorf("reason of %s = %q, want %q", id, reason[id], want)
				}
			}
			var data []string
			for id := range plan.DataOnly {
				data = append(data, id)
			}
			sort.Strings(data)
			sort.Strings(tt.dataOnly)
			if len(data)+len(tt.dataOnly) > 0 && !reflect.DeepEqual(data, tt.dataOnly) {
				t.Errorf("data only %v, want %v", data, tt.dataOnly)
			}
			checkChainInvariants(t, plan)
		})
	}
}

// The deletion order follows the chains, not the ids, so that clocks that
// disagreed cannot put a parent before its child: here the child has the
// older id, so deleting newest first would take the parent first (and the
// cases above, where children are newer, rule out oldest first).
func TestDeletionOrderFollowsChains(t *testing.T) {
	f := bk(3*day, 1, 2, 3)
	// i names f as parent but has an older id.
	i := bk(4*day, 1, 5, 6, incr(f))
	plan, err := Decide(Input{Entries: []Entry{f, i, fc}, Target: f.ID, WithDependents: true, OrphanAge: day, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range plan.Delete {
		got = append(got, d.ID)
	}
	if want := []string{i.ID, f.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("deleted %v, want %v", got, want)
	}
}

func TestWALObsoleteChains(t *testing.T) {
	tl1 := map[uint32][2]uint32{1: {1, 30}}
	all := cat(chainA(), chainB(), chainC())
	deletedA := []string{backupFile(fa), backupFile(ia1), backupFile(ia2), backupFile(da)}
	tests := []struct {
		name    string
		entries []Entry
		policy  string
		target  string
		want    []string
	}{
		{
			// The floor is the oldest retained full's begin: PITR from it
			// works as without chains.
			name: "redundancy 2: WAL before the oldest retained full", entries: all, policy: "REDUNDANCY 2",
			want: append(segs("1:1-13"), deletedA...),
		},
		{
			// fb stays for its data only; ib1 (kept standalone) and ib2
			// (built on it) keep their own ranges, not the WAL between.
			name: "a kept incremental needs its own WAL, not its chain's", entries: replace(all, with(ib1, keep(catalog.KeepStandalone))), policy: "REDUNDANCY 1",
			want: append(segs("1:1-16,19,22"), deletedA...),
		},
		{
			name: "an incremental kept full keeps all WAL from its begin", entries: replace(all, with(ib2, keep(catalog.KeepFull))), policy: "REDUNDANCY 1",
			want: append(segs("1:1-19"), deletedA...),
		},
		{
			name: "a full kept standalone: its chain keeps its own ranges", entries: replace(all, with(fb, keep(catalog.KeepStandalone))), policy: "REDUNDANCY 1",
			want: append(segs("1:1-13,16,19,22"), deletedA...),
		},
		{
			name: "deleting a chain by id keeps the WAL of the next one", entries: all, target: fa.ID,
			want: segs("1:1-13"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := Decide(Input{Entries: tt.entries, Policy: mustPolicy(t, tt.policy), Target: tt.target, WithDependents: true, OrphanAge: day, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if plan.WAL.Off() != "" {
				t.Fatalf("WAL deletion off: %s", plan.WAL.Off())
			}
			var got []string
			for _, n := range walNames(tt.entries, tl1) {
				if plan.WAL.Obsolete(n) {
					got = append(got, n)
				}
			}
			want := append([]string(nil), tt.want...)
			if tt.target != "" {
				want = append(want, deletedA...)
			}
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("obsolete:\n got %v\nwant %v", got, want)
			}
			// Every remaining backup that is not kept for its data alone
			// keeps its begin..end WAL.
			for _, r := range plan.Retain {
				if r.Record == nil || r.Record.Status != catalog.StatusDone || plan.DataOnly[r.ID] {
					continue
				}
				for _, n := range []string{r.Record.BeginWAL, r.Record.EndWAL} {
					if plan.WAL.Obsolete(n) {
						t.Errorf("WAL %s of remaining backup %s obsolete", n, r.ID)
					}
				}
			}
		})
	}
}

// The WAL check that runs again on a fresh listing keeps honouring the
// plan's data-only backups, and a keep added meanwhile wins over them.
func TestWALFilterDataOnly(t *testing.T) {
	remaining := []Entry{fb, with(ib1, keep(catalog.KeepStandalone)), fc}
	data := map[string]bool{fb.ID: true}
	f := NewWALFilter(remaining, nil, data, now, day)
	if !f.Obsolete(fb.Record.BeginWAL) || f.Obsolete(ib1.Record.BeginWAL) || f.Obsolete(fc.Record.BeginWAL) {
		t.Errorf("floor %s: fb's WAL should go, ib1's and fc's stay", f.Floor())
	}
	remaining[0] = with(fb, keep(catalog.KeepFull))
	if f := NewWALFilter(remaining, nil, data, now, day); f.Obsolete(fb.Record.BeginWAL) {
		t.Error("a keep added to a data-only backup does not protect its WAL")
	}
}

func TestLineageOf(t *testing.T) {
	entries := replace(cat(chainA(), chainB()), with(ib2, keep(catalog.KeepStandalone)))
	entries = append(entries, bk(day, 1, 30, 30, parentID("20200101T000000Z")))
	for _, tt := range []struct {
		id   string
		want Lineage
	}{
		{fa.ID, Lineage{Dependents: []string{da.ID, ia2.ID, ia1.ID}}},
		{ia2.ID, Lineage{BuiltOn: []string{ia1.ID, fa.ID}}},
		{fb.ID, Lineage{Dependents: []string{ib2.ID, ib1.ID}, KeptBy: []string{ib2.ID}}},
		{ib1.ID, Lineage{BuiltOn: []string{fb.ID}, Dependents: []string{ib2.ID}, KeptBy: []string{ib2.ID}}},
		{ib2.ID, Lineage{BuiltOn: []string{ib1.ID, fb.ID}}},
		{bk(day, 1, 30, 30).ID, Lineage{BuiltOn: []string{"20200101T000000Z"}, Broken: "parent 20200101T000000Z of backup " + bk(day, 1, 30, 30).ID + " is missing"}},
		{"20200101T000000Z", Lineage{}},
	} {
		if got := LineageOf(entries, tt.id); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("LineageOf(%s) = %+v, want %+v", tt.id, got, tt.want)
		}
	}
	// A backup built on a kept full is held by it.
	entries = replace(cat(chainA(), chainB()), with(fa, keep(catalog.KeepFull)))
	if got := LineageOf(entries, ia2.ID).KeptBy; !reflect.DeepEqual(got, []string{fa.ID}) {
		t.Errorf("KeptBy of a backup built on a kept full = %v", got)
	}
}
