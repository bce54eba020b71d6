package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/restore"
)

// killPoints is how many seeded random points each command is killed at.
const killPoints = 20

// killSeed is the seed of the kill points: GBC_FAULT_SEED, or a fixed one,
// so that a failure can be replayed.
func killSeed(t *testing.T) uint64 {
	seed := uint64(20261202)
	if s := os.Getenv("GBC_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GBC_FAULT_SEED=%q: want a number", s)
		}
		seed = v
	}
	t.Logf("kill points from seed %d (GBC_FAULT_SEED replays them)", seed)
	return seed
}

// TestKillLoop kills gbc-wal-archive (alone, and with its background
// pusher), gbc-backup, gbc-restore and gbc-backup-delete with SIGKILL at
// seeded random points, on file:// and MinIO. After every point: no DONE
// record has a missing or damaged part, a re-run completes, every segment
// whose archiving a call confirmed restores byte-identical, no object is
// half-written, and a delete leaves no garbage.
func TestKillLoop(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) {
			seed := killSeed(t)
			rng := rand.New(rand.NewPCG(seed, 1))
			st := harness.NewStore(t, provider)
			t.Run("gbc-wal-archive", func(t *testing.T) { killArchive(t, st, rng) })
			// A stream of its own, so that the other points stay those
			// of earlier releases for the same seed.
			t.Run("gbc-wal-archive with its pusher", func(t *testing.T) { killArchivePushAhead(t, st, rand.New(rand.NewPCG(seed, 3))) })
			t.Run("gbc-backup, gbc-restore and gbc-backup-delete", func(t *testing.T) { killBackupRestoreDelete(t, st, rng) })
		})
	}
}

func killArchive(t *testing.T, st harness.Store, rng *rand.Rand) {
	dir := harness.TempDir(t)
	walDir := filepath.Join(dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	const server = "kill"
	killed := 0
	for i := range killPoints {
		name := fmt.Sprintf("0000000100000000000000%02X", i+1)
		path := writeWALSegment(t, walDir, name)
		cmd := harness.GBCCommand(t, st.Env, st.Argv("gbc-wal-archive", []string{"--max-parallel", "1"}, server, path)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(60 * time.Millisecond))))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if wasKilled(cmd) {
			killed++
		}
		// PostgreSQL calls again until one call says 0: that one must hold.
		if _, errOut, code := harness.RunGBC(t, st.Env, st.Argv("gbc-wal-archive", []string{"--max-parallel", "1"}, server, path)...); code != 0 {
			t.Fatalf("point %d: archive after the kill: exit %d: %s", i, code, errOut)
		}
		dest := filepath.Join(dir, "RECOVERYXLOG")
		os.Remove(dest)
		if _, errOut, code := harness.RunGBC(t, st.Env, st.Argv("gbc-wal-restore", []string{"--prefetch", "0"}, server, name, dest)...); code != 0 {
			t.Fatalf("point %d: restore of %s: exit %d: %s", i, name, code, errOut)
		}
		sameFile(t, dest, path)
	}
	t.Logf("%d of %d calls killed before they ended", killed, killPoints)
	if killed == 0 {
		t.Errorf("no call was killed before it ended: the loop proved nothing")
	}
}

// wasKilled tells whether a waited-for command ended by SIGKILL.
func wasKilled(cmd *exec.Cmd) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func killBackupRestoreDelete(t *testing.T, st harness.Store, rng *rand.Rand) {
	pg := bkPrimary(t, st, nil)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	s := bkOpen(t, st)
	start := time.Now()
	bkBackup(t, pg, st)
	full := time.Since(start)
	checked := map[string]bool{}
	killed := 0
	for i := range killPoints {
		cmd, _ := bkStartAsync(t, pg, st)
		time.Sleep(time.Duration(rng.Int64N(int64(full))))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if wasKilled(cmd) {
			killed++
		}
		checkDoneRecords(t, s, checked, i)
	}
	t.Logf("%d of %d backups killed before they ended", killed, killPoints)
	if killed == 0 {
		t.Errorf("no backup was killed before it ended: the loop proved nothing")
	}
	// A re-run completes, and the server was left in no backup mode.
	last := bkBackup(t, pg, st)
	checkDoneRecords(t, s, checked, killPoints)
	t.Logf("%d DONE backups checked part by part", len(checked))

	// gbc-restore: a killed restore leaves nothing that could be started
	// half-restored (global/pg_control is written last), and a restore
	// into a fresh directory completes.
	killRestores(t, pg, st, rng, last.ID, killPoints)

	// gbc-backup-delete: killed while deleting a backup, then run again,
	// it leaves a store whose records all read and whose DONE backups are
	// all whole, and the backup is gone. The oldest backups go first, so
	// that each delete also deletes the WAL that only the backup needed.
	// One point more is made rather than waited for: the kill right after
	// the record went, which leaves objects without a record (a window of
	// a millisecond that the random points rarely hit).
	for range killPoints + 1 {
		bkBackup(t, pg, st)
	}
	var doomed []*catalog.Backup
	all, err := catalog.List(context.Background(), s, catalog.Layout{Server: bkServer})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all { // oldest first
		if b.Status == catalog.StatusDone && len(doomed) < killPoints+1 {
			doomed = append(doomed, b)
		}
	}
	// The kill points fall within the time of a whole run: a dry run's,
	// doubled for the deletes it leaves out.
	start = time.Now()
	bkRun(t, pg, st, "gbc-backup-delete", []string{"--dry-run", "--backup-id", doomed[0].ID}, bkServer)
	full = 2 * time.Since(start)
	killed = 0
	walBefore, walDeleted, orphaned := len(listKeys(t, s, catalog.Layout{Server: bkServer}.WALRoot())), 0, 0
	for i, b := range doomed {
		argv := st.Argv("gbc-backup-delete", []string{"--backup-id", b.ID}, bkServer)
		if i == killPoints {
			if err := s.Delete(context.Background(), catalog.Layout{Server: bkServer}.RecordKey(b.ID)); err != nil {
				t.Fatal(err)
			}
		} else {
			cmd := harness.GBCCommand(t, st.Env, argv...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rng.Int64N(int64(full))))
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			if wasKilled(cmd) {
				killed++
			}
		}
		// Run again, it finishes the delete (0), or finds the record gone
		// (5), or, when the kill came after the record went, refuses to
		// touch the record-less objects before --orphan-age (4): those are
		// swept later, as for any crashed delete.
		_, errOut, code := harness.RunGBC(t, st.Env, argv...)
		if code != 0 && code != 5 && !(code == 4 && strings.Contains(errOut, "younger than --orphan-age")) {
			t.Fatalf("point %d: delete of %s again: exit %d: %s", i, b.ID, code, errOut)
		}
		if code == 4 {
			orphaned++
		}
		left, err := catalog.List(context.Background(), s, catalog.Layout{Server: bkServer})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range left {
			if l.ID == b.ID {
				t.Errorf("point %d: backup %s is still listed (%s) after its delete was run again", i, b.ID, l.Status)
			}
			if l.Status == catalog.StatusUnreadable {
				t.Errorf("point %d: backup %s has an unreadable record: %s", i, l.ID, l.Error)
			}
		}
		checkDoneRecords(t, s, map[string]bool{}, i)
		// No garbage once the next run an --orphan-age later is done:
		// not of this backup, not of the backups killed above, and no
		// WAL that no backup needs; and the remaining backups' WAL is
		// all there.
		walDeleted += pruneLater(t, s, bkServer, i).WAL.Objects
		checkNoGarbage(t, st, s, bkServer, b.ID, i)
	}
	walAfter := len(listKeys(t, s, catalog.Layout{Server: bkServer}.WALRoot()))
	t.Logf("%d of %d delete calls killed before they ended; %d left objects without a record; WAL objects: %d before, %d after (%d of them deleted by the runs an --orphan-age later)",
		killed, killPoints, orphaned, walBefore, walAfter, walDeleted)
	if killed == 0 || orphaned == 0 {
		t.Errorf("%d delete calls killed, %d leaving objects without a record: the loop proved nothing", killed, orphaned)
	}
	if walAfter >= walBefore {
		t.Errorf("no WAL was deleted (%d objects before, %d after): the WAL checks proved nothing", walBefore, walAfter)
	}

	// The oldest remaining backup still recovers to the end of the WAL:
	// none that it needs was deleted.
	var oldest *catalog.Backup
	left, err := catalog.List(context.Background(), s, catalog.Layout{Server: bkServer})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range left {
		if oldest == nil && b.Status == catalog.StatusDone {
			oldest = b
		}
	}
	if oldest == nil {
		t.Fatalf("no DONE backup left after the deletes: %d records", len(left))
	}
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	pg.Exec(t, "INSERT INTO marks VALUES ('after the deletes')")
	pg.WaitArchived(t, pg.SwitchWAL(t), 2*time.Minute)
	// retRestore restores server retServer, which is bkServer.
	if got := retRestore(t, pg, st, oldest.ID); got != "after the deletes" {
		t.Errorf("the oldest remaining backup %s, restored to the end of the WAL, holds marks %q, want %q", oldest.ID, got, "after the deletes")
	}
}

// checkDoneRecords verifies every part of each DONE record not checked
// yet: present, of the recorded size and SHA-256.
func checkDoneRecords(t *testing.T, s cloud.Store, checked map[string]bool, point int) {
	t.Helper()
	all, err := catalog.List(context.Background(), s, catalog.Layout{Server: bkServer})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.Status != catalog.StatusDone || checked[b.ID] {
			continue
		}
		checked[b.ID] = true
		if len(b.Parts) == 0 {
			t.Errorf("point %d: DONE backup %s has no parts", point, b.ID)
		}
		for _, p := range b.Parts {
			rc, err := s.Get(context.Background(), p.Key)
			if err != nil {
				t.Errorf("point %d: DONE backup %s: part %s: %v", point, b.ID, p.Key, err)
				continue
			}
			h := sha256.New()
			n, err := io.Copy(h, rc)
			rc.Close()
			if err != nil || n != p.StoredSize || hex.EncodeToString(h.Sum(nil)) != p.SHA256 {
				t.Errorf("point %d: DONE backup %s: part %s holds %d bytes (%v), want %d with its recorded SHA-256", point, b.ID, p.Key, n, err, p.StoredSize)
			}
		}
	}
}

// killRestores kills gbc-restore of backupID at points seeded random
// moments, timed from one whole restore, and checks that none leaves a
// directory that could be started half-restored: global/pg_control is
// renamed into place once everything else is durable, so a directory that
// has it must pass the server's own manifest check.
func killRestores(t *testing.T, pg *harness.Cluster, st harness.Store, rng *rand.Rand, backupID string, points int) {
	t.Helper()
	start := time.Now()
	bkRun(t, pg, st, "gbc-restore", []string{"--no-recovery-config"}, bkServer, backupID, pg.NewEmptyDataDir(t))
	full := time.Since(start)
	killed := 0
	for i := range points {
		dest := pg.NewEmptyDataDir(t)
		cmd := pg.Command(t, harness.Bin(t, "gbc-restore"), st.Argv("", []string{"--no-recovery-config"}, bkServer, backupID, dest)[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full))))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := cmd.Wait()
		if !wasKilled(cmd) {
			if err != nil {
				t.Fatalf("point %d: gbc-restore failed on its own: %v", i, err)
			}
			continue // it had finished: a complete restore
		}
		killed++
		if _, err := os.Stat(filepath.Join(dest, "global", "pg_control")); err == nil {
			// A restore killed after the rename, on its way out, is
			// whole (its lock file aside, which a kill in the last
			// milliseconds leaves).
			out, err := pg.Command(t, "pg_verifybackup", "-n", "-i", restore.LockFile, dest).CombinedOutput()
			if err != nil {
				t.Errorf("point %d: a killed restore left global/pg_control in %s, which is not a whole restore: it could be started half-restored: %v\n%s", i, dest, err, out)
			}
		}
	}
	t.Logf("%d of %d restores killed before they ended", killed, points)
	if killed == 0 {
		t.Errorf("no restore was killed before it ended: the loop proved nothing")
	}
}
