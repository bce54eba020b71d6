package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// TestHarnessPGVersions starts a cluster of each major version the tests of
// newer features need (scripts/test-deps.sh installs them), as the
// unprivileged user, and checks that the server is that version. A missing
// version fails here, as it does in every test that asks for it.
func TestHarnessPGVersions(t *testing.T) {
	for _, major := range []int{17, 18} {
		t.Run(fmt.Sprint(major), func(t *testing.T) {
			c := harness.StartPostgres(t, harness.PGOptions{Version: major})
			if c.Version != major {
				t.Errorf("Cluster.Version = %d, want %d", c.Version, major)
			}
			v := c.QueryString(t, "SELECT version()")
			if want := fmt.Sprintf("PostgreSQL %d.", major); !strings.HasPrefix(v, want) {
				t.Errorf("version() = %q, want it to start with %q", v, want)
			}
			if n := c.QueryInt(t, "SELECT current_setting('server_version_num')::int / 10000"); n != int64(major) {
				t.Errorf("server_version_num is of major %d, want %d", n, major)
			}
			// It runs as PGUser, never as root, even when its programs
			// are in a directory that user cannot read (then the harness
			// runs a copy).
			if uid := procUID(t, postmasterPID(t, c.DataDir)); uid == 0 {
				t.Errorf("postmaster runs as root")
			}
			if u := c.QueryString(t, "SELECT current_setting('data_directory')"); u != c.DataDir {
				t.Errorf("data_directory = %q, want %q", u, c.DataDir)
			}
		})
	}
}
