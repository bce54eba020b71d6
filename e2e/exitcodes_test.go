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

// TestStoreErrorLine: a store that refuses the credentials or has no such
// bucket is one short line on stderr (what failed, the class, what to
// do), with exit 3; the SDK's own text (Azure's holds its message twice
// and an XML body) comes only with -v, on a line of its own.
func TestStoreErrorLine(t *testing.T) {
	for _, provider := range []string{"s3", "azure"} {
		t.Run(provider, func(t *testing.T) {
			st := harness.NewStore(t, provider)
			bad, _ := badCredentials(st)
			for _, tc := range []struct {
				what  string
				st    harness.Store
				want  []string
				noise string // in the SDK's text only
			}{
				{"bad credentials", bad, []string{"permission denied", "check the credentials in the environment"}, map[string]string{"s3": "HostID", "azure": "RequestId"}[provider]},
				{"missing bucket", st.WithURL(missingBucketURL(t, st)), []string{map[string]string{"s3": "bucket", "azure": "container"}[provider] + " not found", "create it, or fix the store URL"}, map[string]string{"s3": "HostID", "azure": "RequestId"}[provider]},
			} {
				_, errOut, code := harness.RunGBC(t, tc.st.Env, tc.st.Argv("gbc-backup-list", []string{"--retry-timeout", "10s"}, "main")...)
				line := strings.TrimSuffix(errOut, "\n")
				if code != 3 || strings.Contains(line, "\n") || len(line) > 400 || strings.Contains(line, tc.noise) {
					t.Errorf("%s: exit %d, %d characters: %q; want 3 and one short line without the SDK's text", tc.what, code, len(line), errOut)
				}
				for _, w := range append(tc.want, "list "+tc.st.URL, "-v") {
					if !strings.Contains(line, w) {
						t.Errorf("%s: %q lacks %q", tc.what, line, w)
					}
				}
				_, errOut, code = harness.RunGBC(t, tc.st.Env, tc.st.Argv("gbc-backup-list", []string{"--retry-timeout", "10s", "-v"}, "main")...)
				lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
				last := lines[len(lines)-1]
				if code != 3 || !strings.Contains(errOut, tc.noise) || !strings.HasPrefix(last, "gbc-backup-list: error: ") || strings.Contains(last, tc.noise) {
					t.Errorf("%s -v: exit %d, stderr %q; want 3, the SDK's text, and the same error line last", tc.what, code, errOut)
				}
			}
		})
	}
}

// TestBackupStopMessage: gbc-backup says what it waits for when the files
// are read, since the last parts may still be uploading, and when they are
// uploaded.
func TestBackupStopMessage(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	_, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), nil, bkServer)...)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	read := strings.Index(errOut, "files read; stopping the backup while the last parts upload")
	uploaded := strings.Index(errOut, "parts uploaded; storing the manifest")
	if strings.Contains(errOut, "files copied") || read < 0 || uploaded < read {
		t.Errorf("want \"files read; stopping the backup while the last parts upload\", then \"parts uploaded\":\n%s", errOut)
	}
}
