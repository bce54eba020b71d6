package e2e

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/wal"
)

// TestStalledStore: a store that accepts connections but never answers
// (its process stopped with SIGSTOP) must not hang any command. Each ends
// within its --retry-timeout with a clear error: PostgreSQL's
// archive_command with 1, so that the archiver retries instead of pg_wal
// filling the disk; its restore_command with 126, so that recovery stops
// instead of hanging or promoting; a listing and a backup with an error.
// Once the server goes on, the same commands succeed.
func TestStalledStore(t *testing.T) {
	// The backup fails on its first write to the store, long before it
	// would wait for WAL: archiving only has to be on.
	pg := harness.StartPostgres(t, harness.PGOptions{ArchiveMode: "on", Settings: map[string]string{"archive_command": "true"}})
	for _, provider := range []string{"s3", "gcs", "azure"} {
		t.Run(provider, func(t *testing.T) { testStalledStore(t, pg, provider) })
	}
}

// stallBound is the --retry-timeout the stalled commands get, and
// stallSlack what start-up and clean-up may add to it.
const (
	stallBound = 5 * time.Second
	stallSlack = 4 * time.Second
)

func testStalledStore(t *testing.T, pg *harness.Cluster, provider string) {
	st := harness.StartPrivateStore(t, provider)
	dir := harness.TempDir(t)
	walDir := filepath.Join(dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	const server = "stall"
	first := writeWALSegment(t, walDir, "000000010000000000000001")
	second := writeWALSegment(t, walDir, "000000010000000000000002")
	bounded := []string{"--retry-timeout", stallBound.String(), "--io-timeout", "2s"}

	if _, errOut, code := harness.RunGBC(t, st.Env, st.Argv("gbc-wal-archive", []string{"--max-parallel", "1"}, server, first)...); code != 0 {
		t.Fatalf("archive to the running store: exit %d: %s", code, errOut)
	}

	st.Pause(t)
	within := func(what string, r harness.Result, wantCode int) {
		t.Helper()
		if r.ExitCode != wantCode {
			t.Errorf("%s on a stalled store: exit %d, want %d; stderr: %s", what, r.ExitCode, wantCode, r.Stderr)
		}
		if r.Elapsed > stallBound+stallSlack {
			t.Errorf("%s on a stalled store took %v, want at most --retry-timeout %v (+%v)", what, r.Elapsed, stallBound, stallSlack)
		}
		if r.Stderr == "" {
			t.Errorf("%s on a stalled store said nothing", what)
		}
	}
	within("gbc-wal-archive", harness.RunGBCWith(t, harness.RunOptions{Env: st.Env},
		st.Argv("gbc-wal-archive", append([]string{"--max-parallel", "1"}, bounded...), server, second)...), 1)
	within("gbc-wal-restore", harness.RunGBCWith(t, harness.RunOptions{Env: st.Env, Dir: dir},
		st.Argv("gbc-wal-restore", append([]string{"--prefetch", "0"}, bounded...), server, "000000010000000000000001", filepath.Join(dir, "RECOVERYXLOG"))...), 126)
	if _, err := os.Stat(filepath.Join(dir, "RECOVERYXLOG")); !os.IsNotExist(err) {
		t.Errorf("gbc-wal-restore on a stalled store left its destination behind")
	}
	list := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv("gbc-backup-list", bounded, server)...)
	if list.ExitCode == 0 {
		t.Errorf("gbc-backup-list on a stalled store exited 0:\n%s", list.Stdout)
	}
	within("gbc-backup-list", list, list.ExitCode)

	// A backup's own operations are bounded by the same deadline, and the
	// failed backup stops the server's backup mode on the way out.
	bk := pg.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv(harness.Bin(t, "gbc-backup"), bounded, server)...)
	if bk.ExitCode != 1 || !strings.Contains(bk.Stderr, "gave up") {
		t.Errorf("gbc-backup to a stalled store: exit %d, want 1 and a message that it gave up; stderr: %s", bk.ExitCode, bk.Stderr)
	}
	if n := pg.QueryInt(t, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND query ILIKE '%pg_backup_start%'"); n != 0 {
		t.Errorf("the failed backup left %d sessions in backup mode", n)
	}
	// Each of its store operations gives up after the deadline, plus the
	// SDK's own few attempts of --io-timeout each (Azure's take longest);
	// writing the FAILED record on the way out may take one more.
	if bk.Elapsed > 6*stallBound {
		t.Errorf("gbc-backup to a stalled store took %v", bk.Elapsed)
	}

	st.Resume(t)
	if _, errOut, code := harness.RunGBC(t, st.Env, st.Argv("gbc-wal-archive", append([]string{"--max-parallel", "1"}, bounded...), server, second)...); code != 0 {
		t.Fatalf("archive once the store answers again: exit %d: %s", code, errOut)
	}
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env, Dir: dir}, st.Argv("gbc-wal-restore", []string{"--prefetch", "0"}, server, "000000010000000000000002", dest)...); r.ExitCode != 0 {
		t.Fatalf("restore once the store answers again: exit %d: %s", r.ExitCode, r.Stderr)
	}
	sameFile(t, dest, second)
}

// writeWALSegment writes a 1 MiB segment (or .partial) whose first page carries the
// long header PostgreSQL writes (gbc-wal-restore checks it against the
// name), with random content after it, and returns its path.
func writeWALSegment(t *testing.T, walDir, name string) string {
	t.Helper()
	const size = 1 << 20
	p := filepath.Join(walDir, name)
	writeRandom(t, p, size)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n, err := wal.ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	start, err := n.StartLSN(size)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], 0x0002) // XLP_LONG_HEADER
	binary.LittleEndian.PutUint32(b[4:], n.TLI)
	binary.LittleEndian.PutUint64(b[8:], start)
	binary.LittleEndian.PutUint32(b[32:], size)
	binary.LittleEndian.PutUint32(b[36:], 8192)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
