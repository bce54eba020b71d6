package restorecmd

import (
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

func TestCheckMethod(t *testing.T) {
	snap := &catalog.Backup{ID: "20261124T200000Z", Method: "snapshot", Snapshots: []catalog.Snapshot{{Provider: "aws", ID: "snap-1"}}}
	file := &catalog.Backup{ID: "20261124T210000Z", Method: "concurrent"}
	for _, c := range []struct {
		b        *catalog.Backup
		instance string
		want     string // "" for accepted
	}{
		{snap, "db2", ""},
		{file, "", ""},
		{snap, "", "give --snapshot-recovery-instance"},
		{file, "db2", "restore it without --snapshot-recovery-instance"},
	} {
		err := checkMethod(c.b, c.instance)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("backup %s, instance %q: %v", c.b.ID, c.instance, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || cli.CodeOf(err) != cli.ExitUsage):
			t.Errorf("backup %s, instance %q: %v (exit %d), want a usage error saying %q", c.b.ID, c.instance, err, cli.CodeOf(err), c.want)
		}
	}
	if err := checkSnapshotArgs("db2", map[string]string{"fast": "/mnt/fast"}); cli.CodeOf(err) != cli.ExitUsage {
		t.Errorf("--tablespace with --snapshot-recovery-instance: %v", err)
	}
}
