package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// TestListUnknownServer: a typo in the server name or the store URL must
// not look like an empty, healthy store to monitoring.
func TestListUnknownServer(t *testing.T) {
	st := harness.NewStore(t, "file")
	const server = "known"
	walDir := filepath.Join(harness.TempDir(t), "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	seg := writeWALSegment(t, walDir, "000000010000000000000001")
	if _, errOut, code := harness.RunGBC(t, nil, st.Argv("gbc-wal-archive", []string{"--max-parallel", "1"}, server, seg)...); code != 0 {
		t.Fatalf("archive: exit %d: %s", code, errOut)
	}

	// WAL but no backup yet: an empty listing, and success.
	out, errOut, code := harness.RunGBC(t, nil, st.Argv("gbc-backup-list", []string{"--format", "json"}, server)...)
	if code != 0 || !strings.Contains(out, `"backups": []`) && !strings.Contains(out, `"backups":[]`) {
		t.Errorf("a server with WAL and no backup: exit %d, stdout %q, stderr %q; want 0 and an empty list", code, out, errOut)
	}
	// Nothing under the name: exit 5, one line naming the server.
	_, errOut, code = harness.RunGBC(t, nil, st.Argv("gbc-backup-list", nil, "knwon")...)
	if code != 5 || !strings.Contains(errOut, `"knwon"`) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("an unknown server: exit %d, stderr %q; want 5 and one line naming it", code, errOut)
	}
	// A store directory that does not exist: the store is unusable (3).
	missing := st.WithURL("file://" + filepath.Join(st.Bucket, "no-such-dir"))
	_, errOut, code = harness.RunGBC(t, nil, missing.Argv("gbc-backup-list", nil, server)...)
	if code != 3 {
		t.Errorf("a file:// store that does not exist: exit %d, stderr %q; want 3", code, errOut)
	}
}
