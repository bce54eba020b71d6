package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/wal"
)

// WAL archiving and restore end to end, on every provider: a live
// PostgreSQL 15 cluster archiving a backlog and a pgbench load through
// gbc-wal-archive with look-ahead; every archived segment restored
// byte-identical; a recovery that replays them through gbc-wal-restore with
// prefetch and promotes (a history file); duplicate, conflicting and
// missing files; gbc-check-wal-archive; and the exit codes of bad URLs,
// missing buckets, bad credentials and an unreachable store.

const walServer = "main"

func TestWAL(t *testing.T) {
	for _, st := range harness.Stores(t) {
		t.Run(st.Name, func(t *testing.T) { testWAL(t, st) })
	}
}

// walExit runs a gbc command as PostgreSQL's user (as archive_command and
// restore_command run) and checks its exit code, and that a failure says
// why in one error line.
func walExit(t *testing.T, pg *harness.Cluster, st harness.Store, want int, cmd string, flags []string, pos ...string) string {
	t.Helper()
	_, stderr, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, cmd), flags, pos...)...)
	if code != want {
		t.Fatalf("%s %v %v: exit %d, want %d; stderr:\n%s", cmd, flags, pos, code, want, stderr)
	}
	if code != 0 && strings.Count(stderr, ": error: ") != 1 {
		t.Errorf("%s: want one error line:\n%s", cmd, stderr)
	}
	return stderr
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s differs from %s (%d and %d bytes)", got, want, len(a), len(b))
	}
}

// archivedSegments lists the names of the complete segments archived for
// server, in order.
func archivedSegments(t *testing.T, s cloud.Store, server string) []string {
	var names []string
	for _, key := range listKeys(t, s, catalog.Layout{Server: server}.WALRoot()) {
		base, _ := compress.SplitKey(key)
		if n, err := wal.ParseName(path.Base(base)); err == nil && n.Kind == wal.Segment {
			names = append(names, n.String())
		}
	}
	return names
}

func testWAL(t *testing.T, st harness.Store) {
	mustGBC(t, st, "gbc-check-wal-archive", nil, walServer)

	// archive_mode on without a command: PostgreSQL keeps the segments of
	// pgbench -i as .ready, a backlog for the look-ahead to work through
	// once archive_command is set.
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveMode:      "on",
		Env:              st.Env,
		WALSegmentSizeMB: 1,
		Settings:         map[string]string{"wal_keep_size": "2GB", "max_wal_size": "2GB"},
	})
	pg.PgBench(t, "-i", "-s", "2", "-q")
	pg.SwitchWAL(t)
	ready, _ := filepath.Glob(filepath.Join(pg.DataDir, "pg_wal", "archive_status", "*.ready"))
	t.Logf("backlog before archive_command is set: %d segments", len(ready))

	archiveCmd := st.CommandLine(harness.Bin(t, "gbc-wal-archive"), []string{"-v", "--max-parallel", "4"}, walServer, "%p")
	pg.Exec(t, "ALTER SYSTEM SET archive_command = "+sqlQuote(archiveCmd))
	pg.Exec(t, "SELECT pg_reload_conf()")
	start := time.Now()
	first := pg.SwitchWAL(t)
	pg.WaitArchived(t, first, 3*time.Minute)
	t.Logf("backlog of %d segments archived in %v", len(ready), time.Since(start).Round(time.Millisecond))

	// A base copy for the recovery below: its WAL comes from the archive.
	base := harness.NewEmptyDataDir(t)
	pg.Run(t, "pg_basebackup", "-D", base, "-X", "none", "--checkpoint=fast", "--no-sync")

	pg.PgBench(t, "-c", "2", "-j", "2", "-T", "5")
	want := pg.QueryString(t, "SELECT count(*) || '/' || sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) FROM pgbench_accounts")
	last := pg.SwitchWAL(t)
	pg.WaitArchived(t, last, 3*time.Minute)
	if n := pg.QueryInt(t, "SELECT failed_count FROM pg_stat_archiver"); n != 0 {
		t.Errorf("the archiver failed %d times", n)
	}

	store := st.Open(t)
	segs := archivedSegments(t, store, walServer)
	if len(segs) < 20 {
		t.Fatalf("only %d segments archived", len(segs))
	}
	checkLookAheadLog(t, pg.LogPath, segs)

	t.Run("every segment restores byte-identical", func(t *testing.T) {
		dir := harness.TempDir(t)
		dest := filepath.Join(dir, "RECOVERYXLOG")
		for _, name := range segs {
			walExit(t, pg, st, 0, "gbc-wal-restore", nil, walServer, name, dest)
			sameFile(t, dest, filepath.Join(pg.DataDir, "pg_wal", name))
		}
	})

	t.Run("duplicate and conflicting pushes", func(t *testing.T) {
		name := segs[len(segs)/2]
		orig := filepath.Join(pg.DataDir, "pg_wal", name)
		walExit(t, pg, st, 0, "gbc-wal-archive", nil, walServer, orig)
		key := catalog.Layout{Server: walServer}.WALKey(name, "zst")
		before, err := store.Stat(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(harness.TempDir(t), name)
		writeRandom(t, other, 1<<20)
		stderr := walExit(t, pg, st, 4, "gbc-wal-archive", nil, walServer, other)
		if !strings.Contains(stderr, name) || !strings.Contains(stderr, "untouched") {
			t.Errorf("conflict message does not say what happened: %s", stderr)
		}
		after, err := store.Stat(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if after.Metadata[wal.MetaSHA256] != before.Metadata[wal.MetaSHA256] || after.Size != before.Size {
			t.Fatalf("the archived object changed: %v, then %v", before, after)
		}
		dest := filepath.Join(harness.TempDir(t), "x")
		walExit(t, pg, st, 0, "gbc-wal-restore", nil, walServer, name, dest)
		sameFile(t, dest, orig)
	})

	t.Run("missing files", func(t *testing.T) {
		dir := harness.TempDir(t)
		dest := filepath.Join(dir, "RECOVERYXLOG")
		walExit(t, pg, st, 1, "gbc-wal-restore", nil, walServer, "000000010000000F00000001", dest)
		walExit(t, pg, st, 1, "gbc-wal-restore", nil, walServer, "00000009.history", dest)
		walExit(t, pg, st, 1, "gbc-wal-restore", nil, "no-such-server", segs[0], dest)
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("a missing file left %d entries in %s", len(entries), dir)
		}
		walExit(t, pg, st, 2, "gbc-wal-archive", nil, walServer, filepath.Join(dir, "RECOVERYXLOG"))
	})

	t.Run("history and partial files", func(t *testing.T) {
		dir := harness.TempDir(t)
		hist := filepath.Join(dir, "00000005.history")
		os.WriteFile(hist, []byte("1\t0/5000000\tno recovery target specified\n\n4\t0/9000000\tsynthetic\n"), 0o644)
		partial := writeWALSegment(t, dir, "000000050000000000000009.partial")
		for _, f := range []string{hist, partial} {
			walExit(t, pg, st, 0, "gbc-wal-archive", nil, "hist", f)
		}
		out := harness.TempDir(t)
		walExit(t, pg, st, 0, "gbc-wal-restore", nil, "hist", "00000005.history", filepath.Join(out, "h"))
		sameFile(t, filepath.Join(out, "h"), hist)
		walExit(t, pg, st, 0, "gbc-wal-restore", nil, "hist", "000000050000000000000009", filepath.Join(out, "p"))
		sameFile(t, filepath.Join(out, "p"), partial)
		walExit(t, pg, st, 1, "gbc-wal-restore", []string{"--no-partial"}, "hist", "000000050000000000000009", filepath.Join(out, "q"))
		walExit(t, pg, st, 4, "gbc-check-wal-archive", nil, "hist")
		walExit(t, pg, st, 0, "gbc-check-wal-archive", []string{"--timeline", "6"}, "hist")
	})

	t.Run("look-ahead answers later calls locally", func(t *testing.T) { testLookAhead(t, pg, st) })
	t.Run("prefetch answers later calls locally", func(t *testing.T) { testPrefetch(t, pg, st, segs) })

	t.Run("recovery with prefetch, promotion, history", func(t *testing.T) {
		restoreCmd := st.CommandLine(harness.Bin(t, "gbc-wal-restore"), []string{"-v"}, walServer, "%f", "%p")
		if err := os.WriteFile(filepath.Join(base, "recovery.signal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c := harness.StartPostgresFrom(t, base, harness.PGOptions{
			Env:      st.Env,
			Settings: map[string]string{"restore_command": restoreCmd},
		})
		c.WaitRecovered(t, 5*time.Minute)
		t.Logf("recovery through %d archived segments took %v", len(segs), time.Since(start).Round(time.Millisecond))
		if got := c.QueryString(t, "SELECT count(*) || '/' || sum(abalance) || '/' || (SELECT count(*) FROM pgbench_history) FROM pgbench_accounts"); got != want {
			t.Fatalf("recovered data %s, want %s", got, want)
		}
		logText := readFile(t, c.LogPath)
		if n := strings.Count(logText, "restored from the prefetch spool"); n == 0 {
			t.Errorf("no segment of the recovery came from the prefetch spool; log:\n%s", logText)
		} else {
			t.Logf("%d of the recovery's segments came from the prefetch spool", n)
		}

		// The promoted copy archives its new timeline into the same
		// server (its archive_command came with the base copy).
		c.WaitArchived(t, "00000002.history", 2*time.Minute)
		dest := filepath.Join(harness.TempDir(t), "RECOVERYHISTORY")
		walExit(t, pg, st, 0, "gbc-wal-restore", nil, walServer, "00000002.history", dest)
		sameFile(t, dest, filepath.Join(c.DataDir, "pg_wal", "00000002.history"))

		walExit(t, pg, st, 4, "gbc-check-wal-archive", nil, walServer)
		walExit(t, pg, st, 4, "gbc-check-wal-archive", []string{"--timeline", "2"}, walServer)
		walExit(t, pg, st, 0, "gbc-check-wal-archive", []string{"--timeline", "3"}, walServer)
	})

	t.Run("errors", func(t *testing.T) { testWALErrors(t, pg, st, segs[0]) })
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeRandom(t *testing.T, p string, size int) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkLookAheadLog checks, in the server log (archive_command runs with
// -v), that PostgreSQL's calls were answered from look-ahead markers left
// by the background pusher, and that each segment so answered is in the
// store (stored holds the archived segment names).
func checkLookAheadLog(t *testing.T, logPath string, stored []string) {
	t.Helper()
	logText := readFile(t, logPath)
	hits := 0
	for _, line := range strings.Split(logText, "\n") {
		name, ok := strings.CutSuffix(line, " was pushed ahead and still matches its checksum: nothing to send")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "gbc-wal-archive: ")
		hits++
		if !slices.Contains(stored, name) {
			t.Errorf("%s was answered from a marker but is not in the store", name)
		}
	}
	if hits == 0 {
		t.Fatalf("no archive_command call was answered from a look-ahead marker; log:\n%s", logText)
	}
	t.Logf("%d archive_command calls answered from look-ahead markers", hits)
}

// testLookAhead drives gbc-wal-archive as PostgreSQL's archiver does, on a
// pg_wal of its own: the first call starts the background pusher, which
// stores the ready segments after it; a later call for one of them succeeds
// without the store (even with wrong credentials), unless the file changed
// on disk.
func testLookAhead(t *testing.T, pg *harness.Cluster, st harness.Store) {
	dir := filepath.Join(harness.TempDir(t), "pg_wal")
	status := filepath.Join(dir, "archive_status")
	if err := os.MkdirAll(status, 0o700); err != nil {
		t.Fatal(err)
	}
	names := []string{"000000070000000000000001", "000000070000000000000002", "000000070000000000000003", "000000070000000000000004"}
	for _, n := range names {
		writeRandom(t, filepath.Join(dir, n), 1<<20)
		os.WriteFile(filepath.Join(status, n+".ready"), nil, 0o600)
	}
	harness.ChownToPG(t, filepath.Dir(dir))
	const server = "lookahead"
	walExit(t, pg, st, 0, "gbc-wal-archive", []string{"-v", "--max-parallel", "4"}, server, filepath.Join(dir, names[0]))
	markers := wal.MarkerDir(dir)
	deadline := time.Now().Add(time.Minute)
	for _, n := range names[1:] {
		waitForWorker(t, deadline, filepath.Join(markers, n), filepath.Join(markers, wal.PusherLog), "the background pusher")
	}
	if got := archivedSegments(t, st.Open(t), server); strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("after the pusher's markers appeared the store holds %v, want %v", got, names)
	}
	os.Rename(filepath.Join(status, names[0]+".ready"), filepath.Join(status, names[0]+".done"))

	answering := st
	if bad, ok := badCredentials(st); ok {
		answering = bad // proves that the store is not contacted
	}
	stderr := walExit(t, pg, answering, 0, "gbc-wal-archive", []string{"-v"}, server, filepath.Join(dir, names[1]))
	if !strings.Contains(stderr, "pushed ahead and still matches") {
		t.Errorf("the call for %s was not answered from its marker:\n%s", names[1], stderr)
	}
	// A segment changed since it was pushed ahead is not vouched for.
	writeRandom(t, filepath.Join(dir, names[2]), 1<<20)
	walExit(t, pg, st, 4, "gbc-wal-archive", nil, server, filepath.Join(dir, names[2]))
	// A marker does not answer for another store.
	other := st.WithURL(st.URL + "/other")
	walExit(t, pg, other, 0, "gbc-wal-archive", nil, server, filepath.Join(dir, names[3]))
	if got := archivedSegments(t, other.Open(t), server); !slices.Contains(got, names[3]) {
		t.Fatalf("the other store holds %v, not %s", got, names[3])
	}
}

// waitForWorker waits until a file matches pattern, which a detached
// background worker (who) is to write, failing the test with the worker's
// log at deadline.
func waitForWorker(t *testing.T, deadline time.Time, pattern, logPath, who string) {
	t.Helper()
	for {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s did not write %s in time; its log:\n%s", who, filepath.Base(pattern), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testPrefetch restores a segment, waits for the detached prefetcher to
// fill the spool, and checks that the next call is answered from it
// (without the store: wrong credentials) byte-identical.
func testPrefetch(t *testing.T, pg *harness.Cluster, st harness.Store, segs []string) {
	dir := harness.TempDir(t)
	dest := filepath.Join(dir, "RECOVERYXLOG")
	walExit(t, pg, st, 0, "gbc-wal-restore", []string{"--prefetch", "4"}, walServer, segs[0], dest)
	next := segs[1]
	waitForWorker(t, time.Now().Add(time.Minute), filepath.Join(wal.SpoolDir(dest), next+".*"),
		filepath.Join(wal.SpoolDir(dest), wal.SpoolLog), "the prefetcher")
	answering := st
	if bad, ok := badCredentials(st); ok {
		answering = bad
	}
	stderr := walExit(t, pg, answering, 0, "gbc-wal-restore", []string{"-v", "--prefetch", "4"}, walServer, next, dest)
	if !strings.Contains(stderr, "restored from the prefetch spool") {
		t.Errorf("%s was not taken from the spool:\n%s", next, stderr)
	}
	sameFile(t, dest, filepath.Join(pg.DataDir, "pg_wal", next))
}

func testWALErrors(t *testing.T, pg *harness.Cluster, st harness.Store, seg string) {
	segPath := filepath.Join(pg.DataDir, "pg_wal", seg)
	dest := filepath.Join(harness.TempDir(t), "RECOVERYXLOG")
	fast := []string{"--retry-timeout", "2s"}

	bad := st.WithURL("ftp://bucket/prefix")
	walExit(t, pg, bad, 2, "gbc-wal-archive", nil, walServer, segPath)
	walExit(t, pg, bad, 2, "gbc-check-wal-archive", nil, walServer)
	// A broken restore_command must stop recovery, not end it.
	walExit(t, pg, bad, 126, "gbc-wal-restore", nil, walServer, seg, dest)
	walExit(t, pg, st, 126, "gbc-wal-restore", nil, walServer, "RECOVERYXLOG", dest)

	missing := st.WithURL(missingBucketURL(t, st))
	if st.Name != "file" { // file:// creates its directory on the first write and lists a missing one as empty
		walExit(t, pg, missing, 3, "gbc-wal-archive", fast, walServer, segPath)
		walExit(t, pg, missing, 3, "gbc-check-wal-archive", fast, walServer)
	}
	walExit(t, pg, missing, 126, "gbc-wal-restore", fast, walServer, seg, dest)

	if wrong, ok := badCredentials(st); ok {
		walExit(t, pg, wrong, 3, "gbc-wal-archive", fast, walServer, segPath)
		walExit(t, pg, wrong, 3, "gbc-check-wal-archive", fast, walServer)
		walExit(t, pg, wrong, 126, "gbc-wal-restore", fast, walServer, seg, dest)
	}

	if st.Name != "file" {
		// Nothing listens there: the store is unreachable after retries.
		down := st
		down.Args = []string{"--endpoint-url", "http://127.0.0.1:" + fmt.Sprint(harness.FreePort(t))}
		walExit(t, pg, down, 126, "gbc-wal-restore", fast, walServer, seg, dest)
		_, _, code := pg.RunGBC(t, down.Env, down.Argv(harness.Bin(t, "gbc-wal-archive"), fast, walServer, segPath)...)
		if code == 0 {
			t.Error("gbc-wal-archive succeeded against an unreachable store")
		}
		// On a standby (standby.signal in the current directory, the
		// data directory under PostgreSQL), the same outage exits 3.
		standbyDir := harness.TempDir(t)
		os.WriteFile(filepath.Join(standbyDir, "standby.signal"), nil, 0o600)
		cmd := exec.Command(harness.Bin(t, "gbc-wal-restore"), down.Argv("", fast, walServer, seg, dest)[1:]...)
		cmd.Dir = standbyDir
		cmd.Env = append(os.Environ(), down.Env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("gbc-wal-restore on a standby with the store down: %v, want exit 3\n%s", err, out)
		}
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed restore left %s: %v", dest, err)
	}
}
