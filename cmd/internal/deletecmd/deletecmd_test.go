package deletecmd

import (
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/retention/prune"
)

// The text report lists each provider snapshot on a line of its own, so
// that an operator can find it in the provider's console.
func TestWriteTextSnapshots(t *testing.T) {
	rep := &prune.Report{Server: "main", DryRun: true, Target: "20261124T214842Z", OrphanAge: "24h0m0s",
		Deleted: []prune.Backup{{ID: "20261124T214842Z", Status: "DONE", Reason: "requested", Objects: 1, Bytes: 900,
			Snapshots: []prune.Snapshot{{Provider: "aws", ID: "snap-0a", Disk: "pgdata"}, {Provider: "aws", ID: "snap-0b", Disk: "pgtblspc"}}}},
	}
	var b strings.Builder
	if err := writeText(&b, rep, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"Would delete provider snapshots:\n  BACKUP            PROVIDER  DISK      SNAPSHOT\n",
		"  20261124T214842Z  aws       pgdata    snap-0a\n",
		"  20261124T214842Z  aws       pgtblspc  snap-0b\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
	// Without snapshots, no section at all.
	rep.Deleted[0].Snapshots = nil
	b.Reset()
	if err := writeText(&b, rep, false); err != nil || strings.Contains(b.String(), "snapshots") {
		t.Errorf("report without snapshots:\n%s", b.String())
	}
}

// The text report says how many leftovers of killed uploads go, and what
// they weigh; a provider without any says nothing.
func TestWriteTextStale(t *testing.T) {
	rep := &prune.Report{Server: "main", Policy: "REDUNDANCY 1", OrphanAge: "24h0m0s",
		Stale: prune.Stale{What: "multipart uploads", Count: 3, Bytes: 368 << 20}}
	var b strings.Builder
	if err := writeText(&b, rep, false); err != nil {
		t.Fatal(err)
	}
	if want := "Stale multipart uploads removed: 3, "; !strings.Contains(b.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, b.String())
	}
	rep.DryRun = true
	b.Reset()
	if err := writeText(&b, rep, false); err != nil || !strings.Contains(b.String(), "Stale multipart uploads to remove: 3, ") {
		t.Errorf("dry-run report:\n%s", b.String())
	}
	rep.Stale = prune.Stale{}
	b.Reset()
	if err := writeText(&b, rep, false); err != nil || strings.Contains(b.String(), "Stale") {
		t.Errorf("report of a store without leftovers to sweep:\n%s", b.String())
	}
}
