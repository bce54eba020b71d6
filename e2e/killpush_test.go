package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/wal"
)

// pushBatch is how many segments are .ready at each point of the pusher's
// kill loop: the one PostgreSQL asks for and the ones its background
// pusher takes ahead.
const pushBatch = 6

// killArchivePushAhead kills gbc-wal-archive with push-ahead on, and its
// detached background pusher, at seeded random points. At each point
// pushBatch segments are .ready (the archiver is behind), so the call for
// the oldest starts a pusher, or finds one still running from the point
// before, which takes the new segments. The call's process group is killed
// at one moment, and every pusher of the WAL directory (a session of its
// own, found by its command line) at another. Then, before anything runs
// again, every object the store lists must be whole; PostgreSQL's calls are
// replayed in order, each must succeed at once (no lock left by a killed
// pusher holds them up), and every segment a call reported archived must
// be in the store, byte-identical.
func killArchivePushAhead(t *testing.T, st harness.Store, rng *rand.Rand) {
	dir := harness.TempDir(t)
	walDir := filepath.Join(dir, "pg_wal")
	status := filepath.Join(walDir, "archive_status")
	if err := os.MkdirAll(status, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killPushers(t, walDir) })
	const server = "killpush"
	layout := catalog.Layout{Server: server}
	s := st.Open(t)
	flags := []string{"-v", "--max-parallel", "4"}
	checked := map[string]bool{}
	var archived []string
	segno := uint64(0)
	batch := func() []string {
		var names []string
		for range pushBatch {
			segno++
			name := wal.SegmentFromSegNo(1, segno, 1<<20).String()
			writeWALSegment(t, walDir, name)
			if err := os.WriteFile(filepath.Join(status, name+".ready"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		}
		return names
	}
	marked := func(names []string) bool { // the pusher stored them all
		for _, name := range names[1:] {
			if _, err := os.Stat(filepath.Join(wal.MarkerDir(walDir), name)); err != nil {
				return false
			}
		}
		return true
	}
	// replay calls as PostgreSQL does, in order, until each says 0: at
	// once, since nothing but this call and the pusher it starts runs. It
	// returns how many calls a pusher's marker answered.
	replay := func(names []string, point int) int {
		fromMarker := 0
		for _, name := range names {
			r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env, Timeout: time.Minute},
				st.Argv("gbc-wal-archive", flags, server, filepath.Join(walDir, name))...)
			if r.ExitCode != 0 {
				t.Fatalf("point %d: archive of %s: exit %d: %s", point, name, r.ExitCode, r.Stderr)
			}
			if r.Elapsed > 20*time.Second {
				t.Errorf("point %d: archive of %s took %v: it waited for a pusher that was killed", point, name, r.Elapsed)
			}
			if strings.Contains(r.Stderr, "was pushed ahead and still matches") {
				fromMarker++
			}
			if err := os.Rename(filepath.Join(status, name+".ready"), filepath.Join(status, name+".done")); err != nil {
				t.Fatal(err)
			}
			archived = append(archived, name)
		}
		return fromMarker
	}

	// How long a call and its pusher's batch take on this machine, which
	// the kill points then fall within: one batch unharmed.
	names := batch()
	start := time.Now()
	r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv("gbc-wal-archive", flags, server, filepath.Join(walDir, names[0]))...)
	callTime := time.Since(start)
	for !marked(names) {
		if time.Since(start) > time.Minute {
			log, _ := os.ReadFile(filepath.Join(wal.MarkerDir(walDir), wal.PusherLog))
			t.Fatalf("the pusher did not store its batch in a minute; its log:\n%s", log)
		}
		time.Sleep(time.Millisecond)
	}
	pushTime := time.Since(start)
	if r.ExitCode != 0 {
		t.Fatalf("archive of %s: exit %d: %s", names[0], r.ExitCode, r.Stderr)
	}
	killPushers(t, walDir)
	replay(names, -1)
	t.Logf("a call takes %v, its pusher's batch of %d is stored after %v", callTime.Round(time.Millisecond), pushBatch-1, pushTime.Round(time.Millisecond))

	// midBatch counts the points where a pusher died before it had
	// stored (and marked) the whole batch.
	var callsKilled, pushersKilled, midBatch, fromMarker int
	for i := range killPoints {
		names := batch()
		cmd := harness.GBCCommand(t, st.Env, st.Argv("gbc-wal-archive", flags, server, filepath.Join(walDir, names[0]))...)
		callAt := time.Duration(rng.Int64N(int64(callTime)))
		pusherAt := time.Duration(rng.Int64N(int64(pushTime)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killCall := time.AfterFunc(callAt, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		time.Sleep(pusherAt)
		if killPushers(t, walDir) > 0 {
			pushersKilled++
			if !marked(names) {
				midBatch++
			}
		}
		_ = cmd.Wait()
		killCall.Stop()
		if wasKilled(cmd) {
			callsKilled++
		}
		// A pusher the call started after pusherAt dies now: every point
		// ends with no pusher alive, as after a crash of the machine.
		killPushers(t, walDir)
		checkPusherLockFree(t, walDir, i)
		checkWALObjects(t, s, layout, walDir, checked, fmt.Sprintf("point %d, after the kill", i))

		fromMarker += replay(names, i)
		stored := map[string]bool{}
		for _, n := range archivedSegments(t, s, server) {
			stored[n] = true
		}
		for _, name := range archived {
			if !stored[name] {
				t.Errorf("point %d: %s was reported archived (exit 0) but is not in the store", i, name)
			}
		}
		checkWALObjects(t, s, layout, walDir, checked, fmt.Sprintf("point %d, after the re-run", i))
	}
	t.Logf("%d of %d calls killed; pushers killed at %d points, %d of them before the batch was stored; %d of %d later calls answered from a pusher's marker; %d objects checked whole",
		callsKilled, killPoints, pushersKilled, midBatch, fromMarker, killPoints*pushBatch, len(checked))
	if callsKilled == 0 || midBatch == 0 {
		t.Errorf("%d calls killed, and %d pushers before they stored their batch: the loop proved nothing", callsKilled, midBatch)
	}
	// A pusher started again after the kills: their locks did not stay.
	if fromMarker == 0 {
		t.Errorf("no call after a kill was answered by a new pusher: did a killed pusher leave its lock?")
	}
}

// backgroundPushers returns the pids of the live background pushers
// (gbc-wal-archive's detached --push-ahead-worker) of walDir. They run in
// a session of their own, so that killing the call's process group misses
// them: they are found by their command line, which names a file of walDir.
func backgroundPushers(walDir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// A dead process, not yet reaped, has an empty command line.
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if slices.Contains(args, "--push-ahead-worker") &&
			slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, walDir+string(filepath.Separator)) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killPushers kills walDir's background pushers with SIGKILL, waits until
// they are dead, and returns how many it killed.
func killPushers(t *testing.T, walDir string) int {
	t.Helper()
	pids := backgroundPushers(walDir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for !processDead(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("background pusher %d of %s still alive 10 s after SIGKILL", pid, walDir)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return len(pids)
}

// processDead tells whether pid has ended: gone, or a zombie. Its command
// line empties earlier, when its memory goes, but its files (and the
// locks on them) go only just before it turns zombie.
func processDead(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

// checkPusherLockFree fails the test if, with no pusher alive, the
// pusher's lock in walDir stays held: no pusher could ever start again.
// A pusher that the killed call forked just before its death may still
// come to life: it is killed too, and the lock looked at again.
func checkPusherLockFree(t *testing.T, walDir string, point int) {
	t.Helper()
	// The pusher's lock file (wal's pusherLockFile).
	f, err := os.Open(filepath.Join(wal.MarkerDir(walDir), ".lock"))
	if errors.Is(err, os.ErrNotExist) {
		return // no pusher ever took it
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("point %d: the pusher's lock is still held 2 s after every pusher was killed: %v", point, err)
			return
		}
		killPushers(t, walDir)
		time.Sleep(10 * time.Millisecond)
	}
}

// checkWALObjects reads every WAL object of layout that the store lists
// and has not been checked yet (by key and modification time: an object
// deleted and stored again is read again). Each must decompress to the
// content its metadata describes (size and SHA-256), and that content must
// be the file of the same name in walDir: a half-written object must never
// be visible. An object deleted while it is read (a concurrent
// gbc-backup-delete) is skipped. It reports through t.Errorf only, so it
// may run in a goroutine of its own.
func checkWALObjects(t *testing.T, s cloud.Store, layout catalog.Layout, walDir string, checked map[string]bool, when string) {
	ctx := context.Background()
	var objects []cloud.Attrs
	if err := s.List(ctx, layout.WALRoot(), func(a cloud.Attrs) error {
		objects = append(objects, a)
		return nil
	}); err != nil {
		t.Errorf("%s: list WAL: %v", when, err)
		return
	}
	for _, a := range objects {
		id := a.Key + "@" + a.ModTime.String()
		if checked[id] {
			continue
		}
		problem, err := walObjectProblem(ctx, s, a.Key, walDir)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			continue // deleted since the listing
		case err != nil:
			t.Errorf("%s: %s: %v", when, a.Key, err)
		case problem != "":
			// Gone since? Then a delete cut the read short, which is fine.
			if _, serr := s.Stat(ctx, a.Key); errors.Is(serr, cloud.ErrNotFound) {
				continue
			}
			t.Errorf("%s: %s %s", when, a.Key, problem)
		}
		checked[id] = true
	}
}

// walObjectProblem reads one WAL object and says what is wrong with it,
// or "" when it is whole and holds the file of its name in walDir.
func walObjectProblem(ctx context.Context, s cloud.Store, key, walDir string) (string, error) {
	attrs, err := s.Stat(ctx, key)
	if err != nil {
		return "", err
	}
	rc, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	base, codec := compress.SplitKey(key)
	zr, err := codec.NewReader(rc)
	if err != nil {
		return "is not a whole " + codec.Name() + " stream: " + err.Error(), nil
	}
	defer zr.Close()
	data, err := io.ReadAll(zr)
	if err != nil {
		return "is not a whole " + codec.Name() + " stream: " + err.Error(), nil
	}
	sum := sha256.Sum256(data)
	if attrs.Metadata[wal.MetaSHA256] != hex.EncodeToString(sum[:]) || attrs.Metadata[wal.MetaSize] != strconv.Itoa(len(data)) {
		return fmt.Sprintf("holds %d bytes (sha256 %.12x), its metadata says %s bytes (sha256 %.12s): half-written",
			len(data), sum, attrs.Metadata[wal.MetaSize], attrs.Metadata[wal.MetaSHA256]), nil
	}
	local, err := os.ReadFile(filepath.Join(walDir, path.Base(base)))
	if err != nil {
		return "", err
	}
	if !bytes.Equal(data, local) {
		return fmt.Sprintf("holds %d bytes that differ from the archived file (%d bytes)", len(data), len(local)), nil
	}
	return "", nil
}
