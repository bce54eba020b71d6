package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/restore"
	"github.com/gbc-backup/gbc/wal"
)

// Concurrency, end to end, with real processes: archiving and a retention
// delete of the same WAL range, and two restores into one directory.

const (
	// raceRounds is how many rounds of archive-and-delete run; raceSegs
	// how many segments each round archives.
	raceRounds = 6
	raceSegs   = 16
)

// TestArchiveDeleteRace archives WAL with gbc-wal-archive, as PostgreSQL's
// archiver does (in order, each call until it says 0, with and without the
// background pusher), while gbc-backup-delete --retention-policy
// "REDUNDANCY 1" runs again and again, and a reader checks every object
// the store lists as it appears.
//
// Each round stores a newer backup that begins in the middle of the
// round's segments: the archiver is behind, as after an outage of the
// store. Every delete run then deletes the older backup and the WAL before
// the new one's begin, which is the WAL being archived right then;
// retention's WAL filter keeps everything from that begin on (the floor),
// whatever the timing. So: a segment at or after the floor that a call
// reported archived is in the store, byte-identical, during the race and
// after it; no object the store lists is ever half-written; and once the
// race is over, one more run leaves exactly the WAL from the floor on.
func TestArchiveDeleteRace(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) { testArchiveDeleteRace(t, harness.NewStore(t, provider)) })
	}
}

func testArchiveDeleteRace(t *testing.T, st harness.Store) {
	seed := killSeed(t)
	rng := rand.New(rand.NewPCG(seed, 4))
	s := openRetStore(t, st)
	dir := harness.TempDir(t)
	walDir := filepath.Join(dir, "pg_wal")
	status := filepath.Join(walDir, "archive_status")
	if err := os.MkdirAll(status, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killPushers(t, walDir) })
	deleteArgv := st.Argv(harness.Bin(t, "gbc-backup-delete"), []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
	first := time.Now().UTC().Truncate(time.Second).Add(-time.Duration(raceRounds+1) * 24 * time.Hour)
	var runs, failedRuns, retries, raced int
	for round := range raceRounds {
		lo := uint64(round*raceSegs + 1)
		b := synthBackup(t, s, first.Add(time.Duration(round)*24*time.Hour), catalog.StatusDone, 1, lo+raceSegs/2, lo+raceSegs/2+1)
		floor := b.BeginWAL
		var names []string
		for n := lo; n < lo+raceSegs; n++ {
			name := retSeg(1, n)
			writeWALSegment(t, walDir, name)
			if err := os.WriteFile(filepath.Join(status, name+".ready"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		maxParallel := []string{"1", "4"}[round%2]

		// The deleter and the reader run until the archiver is done.
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var mu sync.Mutex
		wg.Add(2)
		pause := rand.New(rand.NewPCG(seed, uint64(100+round)))
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// Not harness.GBCCommand, which would register a cleanup
				// for each of hundreds of runs.
				cmd := exec.Command(deleteArgv[0], deleteArgv[1:]...)
				cmd.Env = append(os.Environ(), st.Env...)
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
				out, err := cmd.CombinedOutput()
				mu.Lock()
				runs++
				if err != nil {
					failedRuns++
					t.Errorf("round %d: gbc-backup-delete during the archiving: %v\n%s", round, err, out)
				}
				mu.Unlock()
				time.Sleep(time.Duration(pause.Int64N(int64(20 * time.Millisecond))))
			}
		}()
		go func() {
			defer wg.Done()
			checked := map[string]bool{}
			for ctx.Err() == nil {
				checkWALObjects(t, s, retLayout, walDir, checked, "during the race")
				time.Sleep(5 * time.Millisecond)
			}
		}()

		reported := map[string]bool{}
		for _, name := range names {
			for attempt := 1; ; attempt++ {
				r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env, Timeout: time.Minute},
					st.Argv("gbc-wal-archive", []string{"--max-parallel", maxParallel}, retServer, filepath.Join(walDir, name))...)
				if r.ExitCode == 0 {
					break
				}
				// A delete may remove the object between the call's look
				// and its check of it: the call fails (1), PostgreSQL
				// calls again.
				if r.ExitCode != 1 || attempt == 5 {
					stop()
					wg.Wait()
					t.Fatalf("round %d: archive of %s: exit %d (attempt %d): %s", round, name, r.ExitCode, attempt, r.Stderr)
				}
				retries++
			}
			if err := os.Rename(filepath.Join(status, name+".ready"), filepath.Join(status, name+".done")); err != nil {
				t.Fatal(err)
			}
			reported[name] = true
			if name >= floor {
				checkArchived(t, s, walDir, name, "during the race")
			}
		}
		time.Sleep(time.Duration(rng.Int64N(int64(50 * time.Millisecond)))) // a last run or two on the whole range
		stop()
		wg.Wait()

		stored := map[string]bool{}
		for _, n := range archivedSegments(t, s, retServer) {
			stored[n] = true
		}
		for _, name := range names {
			switch {
			case name >= floor:
				checkArchived(t, s, walDir, name, "after the race")
			case !stored[name]:
				raced++ // deleted after its call said 0: obsolete, rightly
			}
		}
		checkWALObjects(t, s, retLayout, walDir, map[string]bool{}, "after the race")

		// Quiet, one run leaves the WAL from the floor on, and nothing
		// before it.
		mustGBC(t, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
		left := archivedSegments(t, s, retServer)
		for _, n := range left {
			if n < floor {
				t.Errorf("round %d: %s, before the floor %s, is left after a quiet delete", round, n, floor)
			}
		}
		if want := len(names) - raceSegs/2; len(left) != want {
			t.Errorf("round %d: %d segments left after a quiet delete, want the %d from the floor %s on: %v", round, len(left), want, floor, left)
		}
	}
	t.Logf("%d delete runs during the archiving (%d failed); %d archive calls failed and were retried; %d segments deleted after their call reported them archived, all before the floor",
		runs, failedRuns, retries, raced)
	if raced == 0 {
		t.Errorf("no delete ever removed a segment of the range being archived: the race proved nothing")
	}
}

// checkArchived fails the test unless the segment name, which a call
// reported archived, is in the store and decompresses to the file in
// walDir.
func checkArchived(t *testing.T, s cloud.Store, walDir, name, when string) {
	t.Helper()
	key, err := wal.Find(context.Background(), s, retLayout, name)
	switch {
	case err != nil:
		t.Errorf("%s: %v", when, err)
	case key == "":
		t.Errorf("%s: %s, which a remaining backup needs, was reported archived and is not in the store", when, name)
	default:
		problem, err := walObjectProblem(context.Background(), s, key, walDir)
		if err != nil || problem != "" {
			t.Errorf("%s: %s: %s%v", when, key, problem, err)
		}
	}
}

// TestConcurrentRestores starts two gbc-restore processes at the same
// moment into one empty directory, a few times: exactly one succeeds; the
// other exits 4 saying that another restore is running, without touching
// the directory; and the directory is the winner's whole restore, which
// starts and holds the data, with no lock file left in it.
func TestConcurrentRestores(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	pg.Exec(t, "INSERT INTO marks VALUES ('backed up')")
	b := bkBackup(t, pg, st)
	for round := range 3 {
		dest := pg.NewEmptyDataDir(t)
		var cmds [2]*exec.Cmd
		var outs [2]bytes.Buffer
		for i := range cmds {
			cmds[i] = pg.Command(t, harness.Bin(t, "gbc-restore"),
				st.Argv("", []string{"--disable-archiving"}, bkServer, b.ID, dest)[1:]...)
			cmds[i].Stderr = &outs[i]
		}
		// Both are started before either has read the backup's record,
		// in turn first.
		for i := range cmds {
			c := cmds[(i+round)%2]
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL) })
		}
		var codes [2]int
		for i, c := range cmds {
			_ = c.Wait()
			codes[i] = c.ProcessState.ExitCode()
		}
		t.Logf("round %d: exit codes %v\n%s%s", round, codes, outs[0].String(), outs[1].String())
		winner, loser := 0, 1
		if codes[0] != 0 {
			winner, loser = 1, 0
		}
		msg := outs[loser].String()
		if codes[winner] != 0 || codes[loser] != exitConflict || strings.Count(msg, ": error: ") != 1 ||
			!strings.Contains(msg, ": error: another gbc-restore is restoring into "+dest+" ") {
			t.Fatalf("round %d: exit codes %v; want one 0 and one %d whose one error line says that another gbc-restore is restoring into %s; the loser said:\n%s",
				round, codes, exitConflict, dest, msg)
		}
		if _, err := os.Stat(filepath.Join(dest, restore.LockFile)); !os.IsNotExist(err) {
			t.Errorf("round %d: the lock file is left in the restored directory: %v", round, err)
		}
		c := pg.StartFrom(t, dest, 0)
		c.WaitRecovered(t, 3*time.Minute)
		if got := c.QueryString(t, "SELECT string_agg(mark, ',') FROM marks"); got != "backed up" {
			t.Errorf("round %d: the restored cluster holds marks %q, want %q", round, got, "backed up")
		}
		if n := c.QueryInt(t, "SELECT count(*) FROM pgbench_accounts"); n != 200000 {
			t.Errorf("round %d: the restored cluster holds %d pgbench accounts, want 200000", round, n)
		}
		c.Stop(t)
	}
}
