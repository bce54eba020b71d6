package e2e

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// Kill -9 on the incremental paths: gbc-backup --type incr killed at
// seeded random points never leaves a DONE record with a missing part or
// block map, and the next incremental still finds a sound parent;
// gbc-restore of a chain killed at random points never leaves
// global/pg_control; and the chain restores to the source's state after
// all that.
func TestKillIncremental(t *testing.T) {
	seed := killSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x1c2e))
	st := harness.NewStore(t, "file")
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	s := bkOpen(t, st)
	bkBackup(t, pg, st)
	pg.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1000 = 0")
	start := time.Now()
	bkBackup(t, pg, st, "--type", "incr")
	incrTime := time.Since(start)

	checked := map[string]bool{}
	const points = 10
	killed := 0
	for i := range points {
		pg.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 997 = $1", i)
		cmd, _ := bkStartAsync(t, pg, st, "--type", "incr")
		time.Sleep(time.Duration(rng.Int64N(int64(incrTime))))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if wasKilled(cmd) {
			killed++
		}
		checkDoneRecords(t, s, checked, i)
		all, err := catalog.List(t.Context(), s, catalog.Layout{Server: bkServer})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range all {
			if b.Status == catalog.StatusDone && b.BlockMap != nil {
				bkCheckObject(t, s, b.BlockMap.Key, b.BlockMap.StoredSize, b.BlockMap.SHA256)
			}
		}
	}
	t.Logf("%d of %d incremental backups killed before they ended", killed, points)
	if killed == 0 {
		t.Errorf("no incremental backup was killed before it ended: the loop proved nothing")
	}
	want := incrState(t, pg)
	last := bkBackup(t, pg, st, "--type", "incr")
	if last.Kind() != catalog.TypeIncr || last.ParentID == "" {
		t.Fatalf("the incremental after the kills: type %q parent %q", last.Type, last.ParentID)
	}

	// A killed chain restore leaves nothing that could be started.
	killRestores(t, pg, st, rng, last.ID, points)

	// After all that, the chain restores to the source as it was.
	r := rstRestore(t, pg, st, last.ID, "--target-immediate", "--target-action", "promote")
	pg.Run(t, "pg_verifybackup", "-n", r)
	c := rstStart(t, pg, r)
	if got := incrState(t, c); got != want {
		t.Errorf("restored state\n%s\nwant\n%s", got, want)
	}
	c.Stop(t)
}
