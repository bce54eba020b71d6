package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	// st.Open reaches MinIO through the s3:// provider.
	_ "github.com/gbc-backup/gbc/cloud/providers"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/verify"
	"github.com/gbc-backup/gbc/wal"
)

// gbc-verify on PostgreSQL 15, on file:// and MinIO: a sound store
// passes; a flipped byte, a truncated part, a missing part, a segment
// missing in the middle of the archive and a missing history file are
// each found and named; drills pass with a plausible RTO, fail on a
// failing --sql, and leave nothing behind, also when killed with SIGTERM.

const verifyExitProblems = 7

func TestVerify(t *testing.T) {
	for _, name := range []string{"file", "s3"} {
		t.Run(name, func(t *testing.T) { testVerify(t, harness.NewStore(t, name)) })
	}
}

// verifyOut is the JSON gbc-verify prints.
type verifyOut struct {
	OK       bool             `json:"ok"`
	Problems []verify.Problem `json:"problems"`
	WAL      *verify.WALResult
}

func testVerify(t *testing.T, st harness.Store) {
	pg := rstPrimary(t, st)
	pg.PgBench(t, "-i", "-s", "1", "-q")
	retGBC(t, pg, st, "gbc-backup", nil, rstServer)
	var last string
	for i := range 4 {
		if i == 2 {
			// An incremental on the full: its parts hold INCREMENTAL
			// files, and the drill restores the chain.
			retGBC(t, pg, st, "gbc-backup", []string{"--type", "incr"}, rstServer)
		}
		pg.PgBench(t, "-t", "200", "-n")
		last = pg.SwitchWAL(t)
	}
	pg.WaitArchived(t, last, time.Minute)
	store := st.Open(t)
	ctx := context.Background()
	layout := catalog.Layout{Server: rstServer}
	rec, err := catalog.Find(ctx, store, layout, catalog.RefLatest, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Kind() != catalog.TypeIncr {
		t.Fatalf("latest backup %s is %s, want the incremental", rec.ID, rec.Kind())
	}

	run := func(flags ...string) (verifyOut, string, string, int) {
		t.Helper()
		// Words that are not options are positional: a BACKUP_ID.
		opts, pos := []string{"--format", "json"}, []string{rstServer}
		for _, f := range flags {
			if strings.HasPrefix(f, "-") {
				opts = append(opts, f)
			} else {
				pos = append(pos, f)
			}
		}
		out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-verify"), opts, pos...)...)
		var v verifyOut
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("gbc-verify %v: exit %d, not JSON: %v\nstdout: %s\nstderr: %s", flags, code, err, out, errOut)
		}
		return v, out, errOut, code
	}
	// expect runs gbc-verify and wants a problem of kind naming object.
	expect := func(kind, object string, flags ...string) {
		t.Helper()
		v, out, errOut, code := run(flags...)
		if code != verifyExitProblems || v.OK {
			t.Fatalf("gbc-verify %v after damaging %s: exit %d, ok %v, want exit %d\nstdout: %s\nstderr: %s", flags, object, code, v.OK, verifyExitProblems, out, errOut)
		}
		for _, p := range v.Problems {
			if p.Kind == kind && strings.Contains(p.Object, object) && p.Means != "" {
				t.Logf("found: %s", p)
				return
			}
		}
		t.Fatalf("gbc-verify %v: no %s problem naming %s:\n%s", flags, kind, object, out)
	}
	sound := func() {
		t.Helper()
		v, out, errOut, code := run()
		if code != 0 || !v.OK || len(v.Problems) != 0 || v.WAL == nil || v.WAL.Checked < 4 {
			t.Fatalf("gbc-verify on a sound store: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		out, errOut, code = pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-verify"), nil, rstServer, "all")...)
		if code != 0 || !strings.Contains(out, "everything holds") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Fatalf("gbc-verify text: exit %d, want one summary line\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	}
	sound()
	testDrills(t, pg, st, store, rec)

	// Objects are damaged through the store and put back after each case.
	damage := func(key string, change func([]byte) []byte) (undo func()) {
		t.Helper()
		attrs, err := store.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		orig := readObject(t, store, key)
		if change == nil {
			if err := store.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		} else {
			putObject(t, st, store, key, change(bytes.Clone(orig)), nil)
		}
		return func() { putObject(t, st, store, key, orig, attrs.Metadata) }
	}
	part := rec.Parts[0].Key
	undo := damage(part, func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
	expect(verify.KindPart, part, "--backups-only")
	undo()
	undo = damage(part, func(b []byte) []byte { return b[:len(b)/2] })
	expect(verify.KindPart, part, rec.ID)
	undo()
	undo = damage(part, nil)
	expect(verify.KindPart, part)
	undo()

	// A segment in the middle, after the backup's end: PITR past it is
	// impossible.
	end, err := wal.ParseName(rec.EndWAL)
	if err != nil {
		t.Fatal(err)
	}
	mid, err := end.Next(rec.WALSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	midKey, err := wal.Find(ctx, store, layout, mid.String())
	if err != nil || midKey == "" {
		t.Fatalf("segment %s not archived (%v)", mid, err)
	}
	undo = damage(midKey, nil)
	expect(verify.KindWALGap, mid.String(), "--wal-only")
	if _, out, _, _ := run("--wal-only"); !strings.Contains(out, "PITR between") {
		t.Errorf("the gap's problem does not say what it means:\n%s", out)
	}
	undo()
	sound()

	// A timeline switch after the newest segment, with its history file:
	// the archive is followed onto timeline 2. (The segment of timeline 2
	// is a copy: gbc-verify checks presence, not content.)
	newest, err := wal.ParseName(last)
	if err != nil {
		t.Fatal(err)
	}
	lastKey, err := wal.Find(ctx, store, layout, last)
	if err != nil || lastKey == "" {
		t.Fatalf("segment %s not archived (%v)", last, err)
	}
	next, err := newest.Next(rec.WALSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	start, err := next.StartLSN(rec.WALSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	next.TLI = 2
	histKey := layout.WALKey("00000002.history", "")
	putObject(t, st, store, histKey, []byte("1\t"+wal.FormatLSN(start)+"\tno recovery target specified\n"), nil)
	nextKey := strings.Replace(lastKey, last, next.String(), 1)
	nextKey = strings.Replace(nextKey, "/"+last[:16]+"/", "/"+next.String()[:16]+"/", 1)
	putObject(t, st, store, nextKey, readObject(t, store, lastKey), nil)
	v, out, errOut, code := run("--wal-only")
	if code != 0 || v.WAL == nil || v.WAL.Newest != next.String() {
		t.Fatalf("gbc-verify after a switch to timeline 2: exit %d, want 0 with newest %s\nstdout: %s\nstderr: %s", code, next, out, errOut)
	}
	undo = damage(histKey, nil)
	expect(verify.KindHistory, "00000002.history", "--wal-only")
	undo()
	if err := store.Delete(ctx, histKey, nextKey); err != nil {
		t.Fatal(err)
	}
}

func testDrills(t *testing.T, pg *harness.Cluster, st harness.Store, store cloud.Store, rec *catalog.Backup) {
	ctx := context.Background()
	gbcVerify := harness.Bin(t, "gbc-verify")
	rows := pg.QueryInt(t, "SELECT count(*) FROM pgbench_history")

	// A drill that passes, as the database's OS user.
	scratch := harness.TempDir(t)
	flags := []string{"--drill", "--format", "json", "--scratch-dir", scratch, "--amcheck",
		"--sql", "SELECT count(*) FROM pgbench_accounts", "--sql", "SELECT 1/(count(*) > 0)::int FROM pgbench_history"}
	out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(gbcVerify, flags, rstServer)...)
	var d verify.DrillReport
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("drill: exit %d, not JSON: %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	if code != 0 || !d.OK || d.BackupID != rec.ID {
		t.Fatalf("drill: exit %d, ok %v, backup %s (want %s)\nstdout: %s\nstderr: %s", code, d.OK, d.BackupID, rec.ID, out, errOut)
	}
	t.Logf("drill: RTO %.2fs (write %.2fs, sync %.2fs, replay %.2fs over %d segments, first query %.3fs), recovered to %v, loss %v",
		d.RTOSeconds, d.Phases.DownloadWrite, d.Phases.Sync, d.Phases.WALReplay, d.WALSegmentsReplayed, d.Phases.FirstQuery, d.RecoveredTo, d.DataLossSeconds)
	sum := d.Phases.DownloadWrite + d.Phases.Sync + d.Phases.WALReplay + d.Phases.FirstQuery
	if d.RTOSeconds <= 0 || d.RTOSeconds > 120 || sum > d.RTOSeconds+0.01 || d.Phases.WALReplay <= 0 {
		t.Errorf("implausible RTO %.3fs for phases summing to %.3fs", d.RTOSeconds, sum)
	}
	// The archive holds two switched segments after the incremental.
	if d.WALSegmentsReplayed < 2 || d.RecoveredTo == nil || time.Since(*d.RecoveredTo) > 10*time.Minute {
		t.Errorf("drill replayed %d segments up to %v: want at least 4, to a recent commit", d.WALSegmentsReplayed, d.RecoveredTo)
	}
	if len(d.Checks) != 3 || !d.Checks[0].OK || !d.Checks[1].OK || !d.Checks[2].OK {
		t.Errorf("checks: %+v", d.Checks)
	}
	if rows == 0 {
		t.Fatal("no pgbench_history rows: the --sql check proves nothing")
	}
	last, err := catalog.LastDrill(ctx, store, catalog.Layout{Server: rstServer})
	if err != nil || last == nil || !last.OK || last.BackupID != rec.ID || last.RTOSeconds != d.RTOSeconds {
		t.Errorf("recorded drill: %+v, %v; want the report's", last, err)
	}
	assertClean(t, scratch)

	// A failing check fails the drill, and cleans up.
	flags = []string{"--drill", "--scratch-dir", scratch, "--no-record", "--sql", "SELECT * FROM no_such_table"}
	out, errOut, code = pg.RunGBC(t, st.Env, st.Argv(gbcVerify, flags, rstServer)...)
	if code != verifyExitProblems || !strings.Contains(out, "FAILED") || !strings.Contains(errOut, "no_such_table") {
		t.Errorf("drill with a failing --sql: exit %d, want %d\nstdout: %s\nstderr: %s", code, verifyExitProblems, out, errOut)
	}
	assertClean(t, scratch)

	// SIGTERM while the server runs (a check that sleeps): everything
	// stops and goes. This one runs as root, PostgreSQL as --os-user.
	flags = []string{"--drill", "--scratch-dir", scratch, "--no-record", "--os-user", harness.PGUser(t), "--sql", "SELECT pg_sleep(60)"}
	cmd := harness.GBCCommand(t, st.Env, st.Argv(gbcVerify, flags, rstServer)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !serverUnder(scratch) {
		if time.Now().After(deadline) {
			t.Fatalf("no PostgreSQL started under %s within a minute; stderr: %s", scratch, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // into recovery or the check
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("gbc-verify --drill exited 0 after SIGTERM; stderr: %s", stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("gbc-verify --drill did not end within a minute of SIGTERM")
	}
	t.Logf("after SIGTERM: %s", strings.TrimSpace(stderr.String()))
	assertClean(t, scratch)
}

// serverUnder tells whether a process runs with dir in its command line.
func serverUnder(dir string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir+"/")) {
			return true
		}
	}
	return false
}

// assertClean fails unless nothing runs from dir and dir is empty.
func assertClean(t *testing.T, dir string) {
	t.Helper()
	if serverUnder(dir) {
		t.Errorf("a process still runs from %s", dir)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("the drill left %d entries in %s (%s...)", len(left), dir, left[0].Name())
	}
}

func readObject(t *testing.T, s cloud.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putObject stores an object; in a file:// store it goes to the database's
// OS user, who runs gbc-verify and reads it.
func putObject(t *testing.T, st harness.Store, s cloud.Store, key string, data []byte, meta map[string]string) {
	t.Helper()
	if err := s.Put(context.Background(), key, cloud.BytesBody(data), cloud.PutOptions{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	if st.Name == "file" {
		harness.ChownToPG(t, st.Bucket)
	}
}
