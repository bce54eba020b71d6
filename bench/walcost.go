package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ---- 1d. The fixed cost of every WAL call --------------------------------
//
// PostgreSQL starts the archive command once per 16 MiB of WAL, and the
// restore command once per segment replayed. What a call costs before it
// does any work (the binary's start) is paid hundreds of times a minute on
// a busy server, and it is most of what the calls answered without the
// store cost: a segment the background pusher already stored (its marker
// is checked) and a segment the prefetcher already spooled. This scenario
// measures those in CPU time (getrusage: user + system, exact, unlike the
// 10 ms of /usr/bin/time), and one archive call of a real segment to a
// file:// store against the floor of the same work done by the zstd CLI.

// walCostColumns are the figures of the scenario's one row.
var walCostColumns = []Column{
	{Key: "version", Title: "--version", Unit: "ms CPU", Better: -1},
	{Key: "marker", Title: "marker hit", Unit: "ms CPU", Better: -1},
	{Key: "spool", Title: "spool hit", Unit: "ms CPU", Better: -1},
	{Key: "archive", Title: "archive call", Unit: "ms"},
	{Key: "floor", Title: "zstd -1 + sync", Unit: "ms"},
	{Key: "ratio", Title: "archive ÷ floor", Better: -1},
}

func (b *bench) walCost(ctx context.Context) (*Scenario, error) {
	starts, calls := 10*b.p.LatencyCalls, 2*b.p.LatencyCalls
	s := &Scenario{
		ID:    "wal-cost",
		Title: "1d. The fixed cost of a WAL call",
		Description: fmt.Sprintf("gbc alone, on a file:// store, run as PostgreSQL runs it (cwd the data directory). "+
			"Median CPU time (user + system, getrusage) over %d calls of: gbc-wal-archive --version; "+
			"a marker hit (gbc-wal-archive of a segment the background pusher already stored); "+
			"a spool hit (gbc-wal-restore of a segment the prefetcher already spooled). "+
			"Then %d archive calls of one real 16 MiB segment (bulk-insert WAL; a fresh object each time), "+
			"alternating with its floor: zstd -1 of the same segment into a file, then sync of that file; "+
			"median wall time of each and their ratio.", starts, calls),
		Columns: walCostColumns,
	}
	var gbc tool
	for _, t := range b.tools {
		if t.family() == "gbc" {
			gbc = t
		}
	}
	if gbc == nil {
		return s, nil
	}
	row := s.row(gbc)
	if err := b.measureWALCost(ctx, row, starts, calls); err != nil {
		row.Error = err.Error()
		b.e.log.printf("wal-cost: %v", err)
	}
	return s, ctx.Err()
}

func (b *bench) measureWALCost(ctx context.Context, row *Row, starts, calls int) (err error) {
	e := b.e
	c, err := e.newCluster(ctx, "cost", map[string]string{"archive_command": ""})
	if err != nil {
		return err
	}
	defer func() {
		_ = c.stop(context.WithoutCancel(ctx), "immediate")
		e.removeAll(c.dir)
	}()
	if err := c.start(ctx); err != nil {
		return err
	}
	if err := c.generateWAL(ctx, 2); err != nil {
		return err
	}
	if err := c.stop(ctx, "fast"); err != nil {
		return err
	}
	segs, err := completeSegments(c.dir)
	if err != nil {
		return err
	}
	if len(segs) < 2 {
		return fmt.Errorf("bench: %d complete segments, want 2", len(segs))
	}
	w := &walCost{e: e, dir: filepath.Join(e.dir, "wal-cost"), seg: segs[:2], from: filepath.Join(c.dir, "pg_wal")}
	defer e.removeAll(w.dir)
	if err := w.setUp(); err != nil {
		return err
	}
	archive := filepath.Join(e.gbcBin, "gbc-wal-archive")
	restore := filepath.Join(e.gbcBin, "gbc-wal-restore")

	v, err := w.cpuMedian(ctx, starts, nil, w.pgdata, archive, "--version")
	if err != nil {
		return err
	}
	row.Values["version"] = v

	prepMarker, err := w.pushAhead(ctx, archive)
	if err != nil {
		return err
	}
	markerCall := []string{archive, w.storeURL("a"), "cost", filepath.Join("pg_wal", w.seg[1])}
	if err := w.expect(ctx, prepMarker, w.pgdata, "pushed ahead", markerCall...); err != nil {
		return err
	}
	if row.Values["marker"], err = w.cpuMedian(ctx, starts, prepMarker, w.pgdata, markerCall...); err != nil {
		return err
	}

	prepSpool, err := w.prefetch(ctx, restore)
	if err != nil {
		return err
	}
	spoolCall := []string{restore, w.storeURL("a"), "cost", w.seg[1], filepath.Join("pg_wal", "RECOVERYXLOG")}
	if err := w.expect(ctx, prepSpool, w.standby, "prefetch spool", spoolCall...); err != nil {
		return err
	}
	if row.Values["spool"], err = w.cpuMedian(ctx, starts, prepSpool, w.standby, spoolCall...); err != nil {
		return err
	}

	gbcWall, floorWall, err := w.archiveVersusFloor(ctx, calls, archive)
	if err != nil {
		return err
	}
	row.Values["archive"], row.Values["floor"] = gbcWall, floorWall
	row.Values["ratio"] = gbcWall / floorWall
	e.log.printf("wal-cost: start %.1f ms CPU (marker hit %.1f, spool hit %.1f); archive call %.1f ms, %.2fx its floor (%.1f ms)",
		v, row.Values["marker"], row.Values["spool"], gbcWall, row.Values["ratio"], floorWall)
	return nil
}

// completeSegments lists the segments of a stopped cluster that are
// complete (.ready: archive_mode on and no archive_command), in order.
func completeSegments(pgdata string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(pgdata, "pg_wal", "archive_status"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var segs []string
	for _, ent := range ents {
		if name, ok := strings.CutSuffix(ent.Name(), ".ready"); ok && isSegment(name) {
			segs = append(segs, name)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

// walCost holds the directories of the scenario: a data directory that
// archives (pgdata), one that restores (standby), and the stores.
type walCost struct {
	e       *env
	dir     string
	from    string   // the cluster's pg_wal
	seg     []string // two complete segments
	pgdata  string
	standby string
}

func (w *walCost) storeURL(name string) string {
	return "file://" + filepath.Join(w.dir, "store-"+name)
}

func (w *walCost) setUp() error {
	w.pgdata, w.standby = filepath.Join(w.dir, "pgdata"), filepath.Join(w.dir, "standby")
	// One level at a time: mkdir gives only the last level to the
	// PostgreSQL user.
	for _, d := range []string{w.dir, w.pgdata, filepath.Join(w.pgdata, "pg_wal"), filepath.Join(w.pgdata, "pg_wal", "archive_status"),
		w.standby, filepath.Join(w.standby, "pg_wal"), filepath.Join(w.dir, "store-a"), filepath.Join(w.dir, "store-b")} {
		if err := w.e.mkdir(d); err != nil {
			return err
		}
	}
	for _, seg := range w.seg {
		data, err := os.ReadFile(filepath.Join(w.from, seg))
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := w.e.writeFile(filepath.Join(w.pgdata, "pg_wal", seg), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// pushAhead archives the first segment with the second one .ready too, so
// that the background pusher stores the second and leaves its marker; it
// returns what puts that marker back before each measured call (a call
// consumes it).
func (w *walCost) pushAhead(ctx context.Context, archive string) (func() error, error) {
	status := filepath.Join(w.pgdata, "pg_wal", "archive_status")
	for _, seg := range w.seg {
		if err := w.e.writeFile(filepath.Join(status, seg+".ready"), nil, 0o600); err != nil {
			return nil, err
		}
	}
	if _, err := w.call(ctx, w.pgdata, archive, w.storeURL("a"), "cost", filepath.Join("pg_wal", w.seg[0])); err != nil {
		return nil, err
	}
	markers := filepath.Join(w.pgdata, "pg_wal", ".gbc-archived")
	marker := filepath.Join(markers, w.seg[1])
	if err := waitFor(ctx, func() bool { _, err := os.Stat(marker); return err == nil }); err != nil {
		log, _ := os.ReadFile(filepath.Join(markers, ".log"))
		return nil, fmt.Errorf("bench: no look-ahead marker for %s: %w%s", w.seg[1], err, tail(string(log), 1500))
	}
	if err := waitFlock(ctx, filepath.Join(markers, ".lock")); err != nil {
		return nil, fmt.Errorf("bench: the background pusher did not exit: %w", err)
	}
	data, err := os.ReadFile(marker)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return func() error { return w.e.writeFile(marker, data, 0o600) }, nil
}

// prefetch restores the first segment, so that the prefetcher spools the
// second; it returns what puts the spooled file back before each measured
// call (a call moves it onto its destination). The file is put back as a
// hard link to a copy made once, so that no 16 MiB write (and its
// writeback) runs between calls.
func (w *walCost) prefetch(ctx context.Context, restore string) (func() error, error) {
	if _, err := w.call(ctx, w.standby, restore, w.storeURL("a"), "cost", w.seg[0], filepath.Join("pg_wal", "RECOVERYXLOG")); err != nil {
		return nil, err
	}
	spool := filepath.Join(w.standby, "pg_wal", ".gbc-prefetch")
	var spooled string
	err := waitFor(ctx, func() bool {
		m, _ := filepath.Glob(filepath.Join(spool, w.seg[1]+".*"))
		if len(m) == 1 {
			spooled = m[0]
		}
		return spooled != ""
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(spool, ".log"))
		return nil, fmt.Errorf("bench: %s was not prefetched: %w%s", w.seg[1], err, tail(string(log), 1500))
	}
	if err := waitFlock(ctx, filepath.Join(spool, ".lock")); err != nil {
		return nil, fmt.Errorf("bench: the prefetcher did not exit: %w", err)
	}
	keep := filepath.Join(w.standby, "spooled-copy")
	if err := os.Link(spooled, keep); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	dest := filepath.Join(w.standby, "pg_wal", "RECOVERYXLOG")
	return func() error {
		// The previous call's prefetcher (for segments that are not in
		// the store) must be gone, not competing with the next call.
		if err := waitFlock(ctx, filepath.Join(spool, ".lock")); err != nil {
			return err
		}
		if err := os.Remove(dest); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("bench: %w", err)
		}
		if err := os.Link(keep, spooled); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("bench: %w", err)
		}
		return nil
	}, nil
}

// archiveVersusFloor alternates archive calls of the second segment (into
// a store emptied before each) with the floor, and returns the median wall
// time of each, in ms.
func (w *walCost) archiveVersusFloor(ctx context.Context, calls int, archive string) (gbcMS, floorMS float64, err error) {
	if _, err := exec.LookPath("zstd"); err != nil {
		return 0, 0, errors.New("bench: the zstd command is not installed (apt-get install zstd): no floor to compare with")
	}
	seg := filepath.Join("pg_wal", w.seg[1])
	stored := filepath.Join(w.dir, "store-b", "cost", "wals", w.seg[1][:16], w.seg[1]+".zst")
	out := filepath.Join(w.dir, "floor.zst")
	floor := []string{"sh", "-c", `zstd -q -1 -c "$1" > "$2" && sync "$2"`, "sh", seg, out}
	var gbc, zstd []float64
	for range calls {
		if err := os.Remove(stored); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, 0, fmt.Errorf("bench: %w", err)
		}
		r, err := w.call(ctx, w.pgdata, archive, w.storeURL("b"), "cost", seg)
		if err != nil {
			return 0, 0, err
		}
		if _, err := os.Stat(stored); err != nil {
			return 0, 0, fmt.Errorf("bench: the archive call stored no %s: %w", stored, err)
		}
		gbc = append(gbc, ms(r.wall))
		if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, 0, fmt.Errorf("bench: %w", err)
		}
		if r, err = w.call(ctx, w.pgdata, floor...); err != nil {
			return 0, 0, err
		}
		zstd = append(zstd, ms(r.wall))
	}
	return median(gbc), median(zstd), nil
}

// expect runs argv once with -v after prep and checks that its messages
// contain want: that the measured calls take the path they are meant to.
func (w *walCost) expect(ctx context.Context, prep func() error, dir, want string, argv ...string) error {
	if err := prep(); err != nil {
		return err
	}
	r, err := w.call(ctx, dir, slices.Concat(argv[:1], []string{"-v"}, argv[1:])...)
	if err != nil {
		return err
	}
	if !strings.Contains(r.stderr, want) {
		return fmt.Errorf("bench: %s did not take the path measured (no %q in its messages):\n%s", strings.Join(shorten(argv), " "), want, r.stderr)
	}
	return nil
}

// cpuMedian runs argv n times, prep before each, and returns the median CPU
// time of a call, in ms.
func (w *walCost) cpuMedian(ctx context.Context, n int, prep func() error, dir string, argv ...string) (float64, error) {
	var cpu []float64
	for range n {
		if prep != nil {
			if err := prep(); err != nil {
				return 0, err
			}
		}
		r, err := w.call(ctx, dir, argv...)
		if err != nil {
			return 0, err
		}
		cpu = append(cpu, ms(r.cpu))
	}
	return median(cpu), nil
}

// costRun is what one call cost.
type costRun struct {
	wall, cpu time.Duration
	stderr    string
}

// call runs argv as the PostgreSQL user in dir with the tools'
// environment and reports its wall and CPU time. The CPU time is the
// process's own and that of the children it waited for; gbc's detached
// workers are not counted, as PostgreSQL does not wait for them.
func (w *walCost) call(ctx context.Context, dir string, argv ...string) (costRun, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = w.e.procEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w.e.user.Apply(cmd)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	start := time.Now()
	err := cmd.Run()
	r := costRun{wall: time.Since(start), stderr: errb.String()}
	if err != nil {
		return r, fmt.Errorf("%s: %w%s", strings.Join(shorten(argv), " "), err, tail(r.stderr, 1500))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out after 1m")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// waitFlock waits until no process holds the flock on path (a gbc
// worker's lock); a missing file is free.
func waitFlock(ctx context.Context, path string) error {
	return waitFor(ctx, func() bool {
		f, err := os.Open(path)
		if err != nil {
			return true
		}
		defer f.Close() // also releases the lock if taken
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	})
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

// median of unsorted values.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return percentile(s, 0.5)
}
