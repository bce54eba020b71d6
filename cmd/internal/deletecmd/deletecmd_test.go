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
