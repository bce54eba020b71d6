package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bench is one run in progress.
type bench struct {
	e     *env
	p     Params
	tools []tool

	// Filled by the backup scenario, read by the later ones.
	backupRSS map[string]float64 // tool -> peak RSS of its backup, MiB
}

const mib = 1 << 20

// fill replaces PostgreSQL's placeholders in an archive or restore argv.
func fill(argv []string, f, p string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.NewReplacer("%f", f, "%p", p).Replace(a)
	}
	return out
}

// withServer returns a copy of c whose WAL and backups go under server.
func withServer(c *cluster, server string) *cluster {
	cc := *c
	cc.server = server
	return &cc
}

// waitUnlocked waits until no pgBackRest process holds the stanza's
// archive lock: its async archive-push and archive-get processes outlive
// the command PostgreSQL ran, and must be done before their cluster goes.
func (b *bench) waitUnlocked(ctx context.Context, t tool, stanza string) {
	if _, ok := t.(pgbackrestTool); !ok {
		return
	}
	path := filepath.Join(b.e.dir, "pgbackrest", "lock", stanza+"-archive.lock")
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		f, err := os.Open(path)
		if err != nil {
			return // no lock file: nothing runs
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		f.Close() // also releases the lock if taken
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.e.log.printf("warning: %s still holds %s", t.name(), path)
}

// ---- 1. WAL archive throughput on a live cluster -------------------------

func (b *bench) walArchive(ctx context.Context) *Scenario {
	s := &Scenario{
		ID:    "wal-archive",
		Title: "1. WAL archive throughput, live cluster",
		Description: fmt.Sprintf("A fresh cluster per tool; pgbench writes WAL for %d s with %d clients (TPC-B-like "+
			"transactions mixed 1:1 with bulk inserts of 5,000 rows of ~250 bytes) while the tool is archive_command. "+
			"Rate: segments archived during the load ÷ its duration. Lag: segments still .ready when the load stops. "+
			"Catch-up: time after the load until nothing is .ready (not measured past %d s).",
			b.p.ArchiveSeconds, b.p.ArchiveClients, b.drainLimit()),
		Columns: []Column{
			{Key: "written", Title: "segments written"},
			{Key: "archived", Title: "segments archived"},
			{Key: "rate", Title: "archive rate", Unit: "segments/s", Better: +1},
			{Key: "mibs", Title: "archive rate", Unit: "MiB/s"},
			{Key: "lag", Title: "lag at end", Unit: "segments"},
			{Key: "catchup", Title: "catch-up", Unit: "s", Better: -1},
			{Key: "failed", Title: "failed calls"},
		},
	}
	for _, t := range b.tools {
		if t.archive(b.e, &cluster{}) == nil {
			continue
		}
		row := s.row(t)
		if err := b.liveArchive(ctx, t, row); err != nil {
			row.Error = err.Error()
			b.e.log.printf("wal-archive %s: %v", t.name(), err)
		}
	}
	return s
}

func (b *bench) drainLimit() int { return max(10, 2*b.p.ArchiveSeconds) }

func (b *bench) liveArchive(ctx context.Context, t tool, row *Row) (err error) {
	e := b.e
	c, err := e.newCluster(ctx, "live-"+t.name(), nil)
	if err != nil {
		return err
	}
	defer func() {
		if serr := c.stop(context.WithoutCancel(ctx), "immediate"); serr != nil && err == nil {
			err = serr
		}
		b.waitUnlocked(ctx, t, c.server)
		e.removeAll(c.dir)
	}()
	if err := c.start(ctx); err != nil {
		return err
	}
	if _, err := c.pgbench(ctx, "-i", "-s", "1", "-q"); err != nil {
		return err
	}
	if _, err := c.sql(ctx, "CREATE TABLE wal_load (id bigint, payload text)"); err != nil {
		return err
	}
	if err := t.prepare(ctx, e, c); err != nil {
		return err
	}
	if err := c.set(ctx, map[string]string{"archive_command": shellJoin(t.archive(e, c))}); err != nil {
		return err
	}
	// The first segment through the tool, before the clock starts.
	if _, err := c.sql(ctx, "SELECT pg_switch_wal()"); err != nil {
		return err
	}
	if err := c.waitArchived(ctx, 2*time.Minute); err != nil {
		return err
	}
	script := filepath.Join(e.dir, "bulk.sql")
	if err := e.writeFile(script, []byte(insertWAL(5000)+";\n"), 0o644); err != nil {
		return err
	}
	ok0, failed0, err := c.archived(ctx)
	if err != nil {
		return err
	}
	lsn0, err := c.lsn(ctx)
	if err != nil {
		return err
	}
	e.log.printf("wal-archive %s: pgbench for %d s", t.name(), b.p.ArchiveSeconds)
	m, err := c.pgbench(ctx, "-n", "-T", strconv.Itoa(b.p.ArchiveSeconds), "-c", strconv.Itoa(b.p.ArchiveClients),
		"-j", strconv.Itoa(b.p.ArchiveClients), "-b", "tpcb-like@1", "-f", script+"@1")
	if err != nil {
		return err
	}
	end := time.Now()
	lsn1, err := c.lsn(ctx)
	if err != nil {
		return err
	}
	ok1, failed1, err := c.archived(ctx)
	if err != nil {
		return err
	}
	ready, err := c.readyFiles()
	if err != nil {
		return err
	}
	archived := float64(ok1 - ok0)
	row.Values["written"] = float64((lsn1 - lsn0) / walSegmentSize)
	row.Values["archived"] = archived
	row.Values["rate"] = archived / m.Wall.Seconds()
	row.Values["mibs"] = archived * walSegmentSize / mib / m.Wall.Seconds()
	row.Values["lag"] = float64(ready)
	row.Values["failed"] = float64(failed1 - failed0)
	if err := c.waitArchived(ctx, time.Duration(b.drainLimit())*time.Second); err == nil {
		row.Values["catchup"] = time.Since(end).Seconds()
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	e.log.printf("wal-archive %s: %.0f segments written, %.0f archived (%.2f/s), %d ready at the end",
		t.name(), row.Values["written"], archived, row.Values["rate"], ready)
	return nil
}

// ---- 1b. An archiver behind: a backlog of .ready segments -----------------

func (b *bench) walArchiveBacklog(ctx context.Context) *Scenario {
	s := &Scenario{
		ID:    "wal-archive-backlog",
		Title: fmt.Sprintf("1b. WAL archive throughput, archiver behind by %d segments", b.p.BacklogSegments),
		Description: fmt.Sprintf("A fresh cluster per tool writes %d segments of bulk-insert WAL with no archive_command "+
			"(they stay .ready), then the tool becomes archive_command on the idle cluster: the archiver's own throughput, "+
			"without pgbench competing for the CPU, as on a server that fell behind. Rate: segments archived ÷ time "+
			"until none is .ready (or until %d s, when the rate is over what was archived by then). Peak RSS: the sampled "+
			"sum over every process of the tool, detached workers included (gbc's archive pusher, pgBackRest's async process).",
			b.p.BacklogSegments, b.backlogLimit()),
		Columns: []Column{
			{Key: "archived", Title: "segments archived"},
			{Key: "time", Title: "time", Unit: "s"},
			{Key: "rate", Title: "archive rate", Unit: "segments/s", Better: +1},
			{Key: "mibs", Title: "archive rate", Unit: "MiB/s"},
			{Key: "left", Title: "left at the end", Unit: "segments"},
			{Key: "rss", Title: "peak RSS, all its processes", Unit: "MiB", Better: -1},
		},
	}
	for _, t := range b.tools {
		if t.archive(b.e, &cluster{}) == nil {
			continue
		}
		row := s.row(t)
		if err := b.backlogArchive(ctx, t, row); err != nil {
			row.Error = err.Error()
			b.e.log.printf("wal-archive-backlog %s: %v", t.name(), err)
		}
	}
	return s
}

func (b *bench) backlogLimit() int { return max(20, 3*b.p.ArchiveSeconds) }

func (b *bench) backlogArchive(ctx context.Context, t tool, row *Row) (err error) {
	e := b.e
	c, err := e.newCluster(ctx, "backlog-"+t.name(), map[string]string{"archive_command": ""})
	if err != nil {
		return err
	}
	defer func() {
		if serr := c.stop(context.WithoutCancel(ctx), "immediate"); serr != nil && err == nil {
			err = serr
		}
		b.waitUnlocked(ctx, t, c.server)
		e.removeAll(c.dir)
	}()
	if err := c.start(ctx); err != nil {
		return err
	}
	if err := c.generateWAL(ctx, b.p.BacklogSegments); err != nil {
		return err
	}
	if err := t.prepare(ctx, e, c); err != nil {
		return err
	}
	ready, err := c.readyFiles()
	if err != nil {
		return err
	}
	ok0, _, err := c.archived(ctx)
	if err != nil {
		return err
	}
	e.log.printf("wal-archive-backlog %s: %d segments .ready", t.name(), ready)
	archive := t.archive(e, c)
	stopRSS, rss := make(chan struct{}), make(chan int64, 1)
	go func() { rss <- sampleToolRSS(filepath.Base(archive[0]), stopRSS) }()
	start := time.Now()
	if err := c.set(ctx, map[string]string{"archive_command": shellJoin(archive)}); err != nil {
		close(stopRSS)
		return err
	}
	werr := c.waitArchived(ctx, time.Duration(b.backlogLimit())*time.Second)
	elapsed := time.Since(start).Seconds()
	close(stopRSS)
	row.Values["rss"] = float64(<-rss) / mib
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ok1, _, err := c.archived(ctx)
	if err != nil {
		return err
	}
	left, err := c.readyFiles()
	if err != nil {
		return err
	}
	_ = werr // not drained in time: the rate is over what was archived
	archived := float64(ok1 - ok0)
	row.Values["archived"] = archived
	row.Values["time"] = elapsed
	row.Values["rate"] = archived / elapsed
	row.Values["mibs"] = archived * walSegmentSize / mib / elapsed
	row.Values["left"] = float64(left)
	e.log.printf("wal-archive-backlog %s: %.0f segments in %.1f s (%.2f/s)", t.name(), archived, elapsed, row.Values["rate"])
	return nil
}

// ---- 1c. One archive call on one segment ---------------------------------

func (b *bench) walArchiveCall(ctx context.Context) (*Scenario, error) {
	e := b.e
	s := &Scenario{
		ID:    "wal-archive-call",
		Title: "1c. One archive_command call on one 16 MiB segment",
		Description: fmt.Sprintf("Each tool archives the same %d real segments (bulk-insert WAL) of a stopped cluster, "+
			"one call per segment as PostgreSQL makes them (cwd PGDATA, %%p = pg_wal/NAME, only that segment .ready, "+
			"so no look-ahead). Median, 90th percentile and fastest call; peak RSS over the calls.", b.p.LatencyCalls),
		Columns: []Column{
			{Key: "median", Title: "median", Unit: "s", Better: -1},
			{Key: "p90", Title: "p90", Unit: "s"},
			{Key: "min", Title: "min", Unit: "s"},
			{Key: "rss", Title: "peak RSS", Unit: "MiB", Better: -1},
		},
	}
	var tools []tool
	for _, t := range b.tools {
		if t.archive(e, &cluster{}) != nil {
			tools = append(tools, t)
		}
	}
	c, err := e.newCluster(ctx, "calls", map[string]string{"archive_command": ""})
	if err != nil {
		return s, err
	}
	defer func() {
		_ = c.stop(context.WithoutCancel(ctx), "immediate")
		e.removeAll(c.dir)
	}()
	if err := c.start(ctx); err != nil {
		return s, err
	}
	// With archive_mode on and no archive_command, every segment stays.
	if err := c.generateWAL(ctx, b.p.LatencyCalls+1); err != nil {
		return s, err
	}
	for _, t := range tools {
		if err := t.prepare(ctx, e, withServer(c, "calls-"+t.name())); err != nil {
			return s, err
		}
	}
	if err := c.stop(ctx, "fast"); err != nil {
		return s, err
	}
	status := filepath.Join(c.dir, "pg_wal", "archive_status")
	ents, err := os.ReadDir(status)
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	var segs []string
	for _, ent := range ents {
		if name, ok := strings.CutSuffix(ent.Name(), ".ready"); ok && isSegment(name) {
			segs = append(segs, name)
		}
		if err := os.Remove(filepath.Join(status, ent.Name())); err != nil {
			return s, fmt.Errorf("bench: %w", err)
		}
	}
	slices.Sort(segs)
	if len(segs) < b.p.LatencyCalls {
		return s, fmt.Errorf("bench: only %d complete segments for %d calls", len(segs), b.p.LatencyCalls)
	}
	segs = segs[:b.p.LatencyCalls]
	for _, t := range tools {
		row := s.row(t)
		cs := withServer(c, "calls-"+t.name())
		var times []float64
		var rss int64
		for _, seg := range segs {
			ready := filepath.Join(status, seg+".ready")
			if err := e.writeFile(ready, nil, 0o600); err != nil {
				return s, err
			}
			m, err := e.run(ctx, command{argv: fill(t.archive(e, cs), seg, filepath.Join("pg_wal", seg)), dir: c.dir})
			if err != nil {
				row.Error = err.Error()
				break
			}
			// As PostgreSQL does once archive_command succeeded.
			if err := os.Rename(ready, filepath.Join(status, seg+".done")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return s, fmt.Errorf("bench: %w", err)
			}
			times = append(times, m.Wall.Seconds())
			rss = max(rss, m.PeakRSS())
		}
		b.waitUnlocked(ctx, t, cs.server)
		for _, seg := range segs {
			_ = os.Remove(filepath.Join(status, seg+".done"))
		}
		if len(times) > 0 {
			slices.Sort(times)
			row.Values["median"] = percentile(times, 0.5)
			row.Values["p90"] = percentile(times, 0.9)
			row.Values["min"] = times[0]
			row.Values["rss"] = float64(rss) / mib
		}
		e.log.printf("wal-archive-call %s: median %.3f s over %d calls", t.name(), row.Values["median"], len(times))
	}
	return s, nil
}

// percentile of sorted values, by nearest rank (the median of an even
// count is the mean of the middle two).
func percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if q == 0.5 {
		if n%2 == 1 {
			return sorted[n/2]
		}
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	i := int(q*float64(n)+0.5) - 1
	return sorted[min(max(i, 0), n-1)]
}

// ---- 2, 3 and 4: backup, restore, WAL replay -----------------------------

// backupRun holds what the backup scenario leaves for restore and replay.
type backupRun struct {
	c         *cluster
	stash     string            // every segment the cluster archived
	firstSeg  map[string]string // tool -> the segment current when its backup started
	done      map[string]bool   // tool -> its backup succeeded
	restored  map[string]string // tool -> its restored data directory
	dataBytes int64
}

func (b *bench) backupRestoreReplay(ctx context.Context) ([]*Scenario, error) {
	e := b.e
	bs := &Scenario{
		ID:    "backup",
		Title: fmt.Sprintf("2. Base backup of pgbench -s %d", b.p.PgbenchScale),
		Description: "Each tool backs up the same running cluster (page cache warm), with its own command as " +
			"archive_command for the duration (each waits for its end-of-backup WAL to be archived, which is in the time). " +
			"Throughput: PGDATA without pg_wal ÷ time. Stored: every object under the tool's backup prefix. " +
			"Peak RSS: the larger of the largest process (getrusage) and the sampled sum over the tool's process group.",
		Columns: []Column{
			{Key: "time", Title: "time", Unit: "s", Better: -1},
			{Key: "mibs", Title: "throughput", Unit: "MiB/s", Better: +1},
			{Key: "stored", Title: "stored", Unit: "MiB", Better: -1},
			{Key: "ratio", Title: "stored ÷ data", Unit: "%"},
			{Key: "rss", Title: "peak RSS", Unit: "MiB", Better: -1},
			{Key: "rss_proc", Title: "largest process", Unit: "MiB"},
		},
	}
	rs := &Scenario{
		ID:    "restore",
		Title: "3. Restore of that backup into an empty directory",
		Description: "Each tool restores its own backup of scenario 2. Throughput: restored bytes (without pg_wal) ÷ time; " +
			"restored and files: what the directory holds afterwards, without pg_wal (a check against scenario 2's data). " +
			"barman-cloud-restore does not fsync; pgBackRest and gbc do.",
		Columns: []Column{
			{Key: "time", Title: "time", Unit: "s", Better: -1},
			{Key: "mibs", Title: "throughput", Unit: "MiB/s", Better: +1},
			{Key: "restored", Title: "restored", Unit: "MiB"},
			{Key: "files", Title: "files"},
			{Key: "rss", Title: "peak RSS", Unit: "MiB", Better: -1},
			{Key: "rss_proc", Title: "largest process", Unit: "MiB"},
		},
	}
	ws := &Scenario{
		ID:    "wal-replay",
		Title: fmt.Sprintf("4. WAL replay: recovery fetching ≥ %d segments through restore_command", b.p.ReplaySegments),
		Description: fmt.Sprintf("After the backups, %d+ segments of bulk-insert WAL are written; every store gets "+
			"the WAL from the earliest backup on (pushed with the tool's archive command, not timed). A copy of a restored "+
			"directory is started with each tool's restore_command and no recovery target; time from the server's start to "+
			"\"ready to accept connections\" after promotion. Segments: distinct \"restored log file\" lines of the server log. "+
			"The last row, cp (floor), is no tool: the same recovery through a plain cp of the uncompressed segments from local "+
			"disk, which is what PostgreSQL's replay alone costs.",
			b.p.ReplaySegments),
		Columns: []Column{
			{Key: "time", Title: "time to end of recovery", Unit: "s", Better: -1},
			{Key: "segments", Title: "segments fetched"},
			{Key: "rate", Title: "replay rate", Unit: "segments/s", Better: +1},
		},
	}
	out := []*Scenario{bs, rs, ws}
	run, err := b.backups(ctx, bs)
	if run != nil {
		defer func() {
			_ = run.c.stop(context.WithoutCancel(ctx), "immediate")
			e.removeAll(run.c.dir)
			e.removeAll(run.stash)
			for _, d := range run.restored {
				e.removeAll(d)
			}
		}()
	}
	if err != nil {
		return out, err
	}
	if err := b.prepareReplay(ctx, run); err != nil {
		return out, err
	}
	b.restores(ctx, rs, run)
	b.replays(ctx, ws, run)
	return out, nil
}

func (b *bench) backups(ctx context.Context, s *Scenario) (*backupRun, error) {
	e := b.e
	run := &backupRun{stash: filepath.Join(e.dir, "stash"), firstSeg: map[string]string{},
		done: map[string]bool{}, restored: map[string]string{}}
	if err := e.mkdir(run.stash); err != nil {
		return nil, err
	}
	stashCmd := "cp %p " + shellQuote(run.stash) + "/%f"
	c, err := e.newCluster(ctx, "main", map[string]string{"archive_command": stashCmd})
	if err != nil {
		return nil, err
	}
	run.c = c
	if err := c.start(ctx); err != nil {
		return run, err
	}
	e.log.printf("backup: pgbench -i -s %d", b.p.PgbenchScale)
	if _, err := c.pgbench(ctx, "-i", "-s", strconv.Itoa(b.p.PgbenchScale), "-q"); err != nil {
		return run, err
	}
	if _, err := c.sql(ctx, "CHECKPOINT"); err != nil {
		return run, err
	}
	bytes, files, err := c.dataSize()
	if err != nil {
		return run, err
	}
	run.dataBytes = bytes
	s.Description += fmt.Sprintf(" Data: %.0f MiB in %d files.", float64(bytes)/mib, files)
	if err := warmCache(c.dir); err != nil {
		return run, err
	}
	b.backupRSS = map[string]float64{}
	for _, t := range b.tools {
		if t.backup(e, c) == nil {
			continue
		}
		row := s.row(t)
		m, err := b.backupOne(ctx, t, c, stashCmd, run)
		if err != nil {
			row.Error = err.Error()
			e.log.printf("backup %s: %v", t.name(), err)
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			continue
		}
		stored, objects, err := e.s3.size(ctx, t.backupPrefix(c))
		if err != nil {
			row.Error = err.Error()
			continue
		}
		if objects == 0 {
			row.Error = "no object under " + t.backupPrefix(c)
			continue
		}
		run.done[t.name()] = true
		row.Values["time"] = m.Wall.Seconds()
		row.Values["mibs"] = float64(bytes) / mib / m.Wall.Seconds()
		row.Values["stored"] = float64(stored) / mib
		row.Values["ratio"] = 100 * float64(stored) / float64(bytes)
		row.Values["rss"] = float64(m.PeakRSS()) / mib
		row.Values["rss_proc"] = float64(m.MaxRSS) / mib
		b.backupRSS[t.name()] = row.Values["rss"]
		e.log.printf("backup %s: %.1f s, %.0f MiB stored, %.0f MiB RSS", t.name(), m.Wall.Seconds(), row.Values["stored"], row.Values["rss"])
	}
	return run, nil
}

func (b *bench) backupOne(ctx context.Context, t tool, c *cluster, stashCmd string, run *backupRun) (measurement, error) {
	e := b.e
	if err := t.prepare(ctx, e, c); err != nil {
		return measurement{}, err
	}
	// The tool archives (for its backup to be complete) and so does the
	// stash (for the replay scenario).
	if err := c.set(ctx, map[string]string{"archive_command": shellJoin(t.archive(e, c)) + " && " + stashCmd}); err != nil {
		return measurement{}, err
	}
	defer func() { _ = c.set(context.WithoutCancel(ctx), map[string]string{"archive_command": stashCmd}) }()
	lsn, err := c.lsn(ctx)
	if err != nil {
		return measurement{}, err
	}
	run.firstSeg[t.name()] = segmentName(1, lsn)
	e.log.printf("backup %s", t.name())
	return e.run(ctx, command{argv: t.backup(e, c)})
}

// prepareReplay writes the WAL the replay scenario fetches, stops the
// cluster and pushes every segment each tool lacks into its store.
func (b *bench) prepareReplay(ctx context.Context, run *backupRun) error {
	e, c := b.e, run.c
	e.log.printf("wal-replay: writing %d+ segments", b.p.ReplaySegments)
	if err := c.generateWAL(ctx, b.p.ReplaySegments+1); err != nil {
		return err
	}
	if err := c.waitArchived(ctx, 10*time.Minute); err != nil {
		return err
	}
	if err := c.stop(ctx, "fast"); err != nil {
		return err
	}
	ents, err := os.ReadDir(run.stash)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var segs []string
	for _, ent := range ents {
		if isSegment(ent.Name()) {
			segs = append(segs, ent.Name())
		}
	}
	slices.Sort(segs)
	// Every store gets the WAL from the earliest backup on: every tool then
	// recovers the same base (see replays) through the same segments.
	first := ""
	for _, t := range b.tools {
		if f := run.firstSeg[t.name()]; run.done[t.name()] && (first == "" || f < first) {
			first = f
		}
	}
	var todo []string
	for _, s := range segs {
		if s >= first {
			todo = append(todo, s)
		}
	}
	for _, t := range b.tools {
		if !run.done[t.name()] {
			continue
		}
		e.log.printf("wal-replay: pushing %d segments to %s's store (not timed)", len(todo), t.name())
		if err := b.pushAll(ctx, t, c, run.stash, todo); err != nil {
			return fmt.Errorf("push WAL with %s: %w", t.name(), err)
		}
	}
	return nil
}

// pushAll archives segments from dir with the tool's archive command, four
// at a time. A segment the tool archived already is pushed again, which
// every tool accepts for identical content.
func (b *bench) pushAll(ctx context.Context, t tool, c *cluster, dir string, segs []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seg := range work {
				_, err := b.e.run(ctx, command{argv: fill(t.archive(b.e, c), seg, filepath.Join(dir, seg))})
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, s := range segs {
		select {
		case work <- s:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func (b *bench) restores(ctx context.Context, s *Scenario, run *backupRun) {
	e := b.e
	parent := filepath.Join(e.dir, "restore")
	if err := e.mkdir(parent); err != nil {
		s.Error = err.Error()
		return
	}
	for _, t := range b.tools {
		if !run.done[t.name()] || t.restore(e, run.c, "x") == nil {
			continue
		}
		row := s.row(t)
		dest := filepath.Join(parent, t.name())
		if err := e.mkdir0700(dest); err != nil {
			row.Error = err.Error()
			continue
		}
		e.log.printf("restore %s", t.name())
		m, err := e.run(ctx, command{argv: t.restore(e, run.c, dest)})
		if err != nil {
			row.Error = err.Error()
			e.log.printf("restore %s: %v", t.name(), err)
			continue
		}
		for _, f := range []string{"PG_VERSION", "global/pg_control"} {
			if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
				row.Error = "the restored directory has no " + f
			}
		}
		if row.Error != "" {
			continue
		}
		bytes, files, err := dirSize(dest, "pg_wal")
		if err != nil {
			row.Error = err.Error()
			continue
		}
		row.Values["restored"] = float64(bytes) / mib
		row.Values["files"] = float64(files)
		run.restored[t.name()] = dest
		row.Values["time"] = m.Wall.Seconds()
		row.Values["mibs"] = float64(bytes) / mib / m.Wall.Seconds()
		row.Values["rss"] = float64(m.PeakRSS()) / mib
		row.Values["rss_proc"] = float64(m.MaxRSS) / mib
		e.log.printf("restore %s: %.1f s, %.0f MiB RSS", t.name(), m.Wall.Seconds(), row.Values["rss"])
	}
}

// replays recovers, for each tool, a copy of one and the same restored
// directory: the first tool's restore, made from the earliest backup. So
// every tool fetches the same segments, and only the fetching differs.
func (b *bench) replays(ctx context.Context, s *Scenario, run *backupRun) {
	src := ""
	for _, t := range b.tools {
		if d, ok := run.restored[t.name()]; ok && src == "" {
			src = d
			s.Description += fmt.Sprintf(" Every tool recovers a copy of the directory %s restored.", t.name())
		}
	}
	if src == "" {
		s.Error = "no restored directory to recover"
		return
	}
	// Last, the floor: the same recovery through a plain cp of the stashed
	// segments, to tell the tools' overhead from PostgreSQL's replay.
	for _, t := range append(slices.Clone(b.tools), tool(localCopy{dir: run.stash})) {
		if t.fetch(b.e, run.c, "x") == nil || !run.done[t.backupOf()] {
			continue
		}
		row := s.row(t)
		if err := b.replayOne(ctx, t, run, src, row); err != nil {
			row.Error = err.Error()
			b.e.log.printf("wal-replay %s: %v", t.name(), err)
		}
	}
}

func (b *bench) replayOne(ctx context.Context, t tool, run *backupRun, src string, row *Row) (err error) {
	e := b.e
	name := "replay-" + t.name()
	dir := filepath.Join(e.dir, "pg", name)
	if _, err := e.run(ctx, command{argv: []string{"cp", "-a", src, dir}}); err != nil {
		return err
	}
	rc := e.clusterAt(name, dir)
	rc.server = run.c.server
	rc.settings = map[string]string{
		"archive_mode":             "off",
		"restore_command":          shellJoin(t.fetch(e, run.c, dir)),
		"recovery_target_timeline": "latest",
	}
	defer func() {
		if serr := rc.stop(context.WithoutCancel(ctx), "immediate"); serr != nil && err == nil {
			err = serr
		}
		b.waitUnlocked(ctx, t, rc.server)
		e.removeAll(dir)
	}()
	_ = os.Remove(filepath.Join(dir, "standby.signal"))
	if err := e.writeFile(filepath.Join(dir, "recovery.signal"), nil, 0o600); err != nil {
		return err
	}
	e.log.printf("wal-replay %s", t.name())
	start := time.Now()
	if err := rc.startNoWait(ctx); err != nil {
		return err
	}
	at, err := rc.waitLog(ctx, "database system is ready to accept connections", 30*time.Minute)
	if err != nil {
		return err
	}
	elapsed := at.Sub(start).Seconds()
	segs := rc.countSegmentsRestored()
	row.Values["time"] = elapsed
	row.Values["segments"] = float64(segs)
	row.Values["rate"] = float64(segs) / elapsed
	if segs < b.p.ReplaySegments {
		return fmt.Errorf("recovery fetched only %d segments, want ≥ %d; see %s", segs, b.p.ReplaySegments, rc.log)
	}
	e.log.printf("wal-replay %s: %d segments in %.1f s", t.name(), segs, elapsed)
	return nil
}

// countSegmentsRestored counts the distinct WAL segments the server log
// says restore_command brought.
func (c *cluster) countSegmentsRestored() int {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return 0
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		_, rest, ok := strings.Cut(line, `restored log file "`)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, `"`)
		if isSegment(name) {
			seen[name] = true
		}
	}
	return len(seen)
}

// warmCache reads every file under dir once, so that the first tool does
// not pay for a cold page cache.
func warmCache(dir string) error {
	buf := make([]byte, 1<<20)
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		_, _ = io.CopyBuffer(io.Discard, f, buf)
		return nil
	})
}

// ---- 5. Many files --------------------------------------------------------

func (b *bench) manyFiles(ctx context.Context) (s *Scenario, err error) {
	e := b.e
	s = &Scenario{
		ID:    "many-files",
		Title: fmt.Sprintf("5. Base backup of a cluster with %d+ small files", b.p.ManyFiles),
		Description: "Tables (id int primary key, v text) with one row: four files each (heap, primary key, TOAST " +
			"table and its index), created 1,000 per transaction. Each tool backs it up as in scenario 2. " +
			"RSS ÷ scenario 2: this backup's peak RSS over the pgbench backup's; flat memory is about 1.",
		Columns: []Column{
			{Key: "files", Title: "files"},
			{Key: "time", Title: "time", Unit: "s", Better: -1},
			{Key: "stored", Title: "stored", Unit: "MiB"},
			{Key: "objects", Title: "objects"},
			{Key: "rss", Title: "peak RSS", Unit: "MiB", Better: -1},
			{Key: "rss_proc", Title: "largest process", Unit: "MiB"},
			{Key: "rss_ratio", Title: "RSS ÷ scenario 2", Better: -1},
		},
	}
	// fsync off while the files are made: each index build fsyncs, which
	// would take minutes; it is switched on again before any backup.
	c, err := e.newCluster(ctx, "files", map[string]string{"max_locks_per_transaction": "1024", "fsync": "off"})
	if err != nil {
		return s, err
	}
	defer func() {
		_ = c.stop(context.WithoutCancel(ctx), "immediate")
		e.removeAll(c.dir)
	}()
	if err := c.start(ctx); err != nil {
		return s, err
	}
	tables := (b.p.ManyFiles + 3) / 4
	e.log.printf("many-files: creating %d tables", tables)
	for from := 1; from <= tables; from += 1000 {
		to := min(from+999, tables)
		q := fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP
EXECUTE format('CREATE TABLE f_%%s (id int PRIMARY KEY, v text); INSERT INTO f_%%s VALUES (1, ''x'')', i, i);
END LOOP; END $$`, from, to)
		if _, err := c.sql(ctx, q); err != nil {
			return s, err
		}
	}
	if err := c.set(ctx, map[string]string{"fsync": "on"}); err != nil {
		return s, err
	}
	if _, err := c.sql(ctx, "CHECKPOINT"); err != nil {
		return s, err
	}
	bytes, files, err := c.dataSize()
	if err != nil {
		return s, err
	}
	s.Description += fmt.Sprintf(" Data: %.0f MiB in %d files.", float64(bytes)/mib, files)
	if err := warmCache(c.dir); err != nil {
		return s, err
	}
	for _, t := range b.tools {
		if t.backup(e, c) == nil {
			continue
		}
		row := s.row(t)
		row.Values["files"] = float64(files)
		if err := t.prepare(ctx, e, c); err != nil {
			row.Error = err.Error()
			continue
		}
		if err := c.set(ctx, map[string]string{"archive_command": shellJoin(t.archive(e, c))}); err != nil {
			row.Error = err.Error()
			continue
		}
		e.log.printf("many-files: backup %s", t.name())
		m, err := e.run(ctx, command{argv: t.backup(e, c)})
		if err != nil {
			row.Error = err.Error()
			e.log.printf("many-files %s: %v", t.name(), err)
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			continue
		}
		stored, objects, err := e.s3.size(ctx, t.backupPrefix(c))
		if err != nil {
			row.Error = err.Error()
			continue
		}
		row.Values["time"] = m.Wall.Seconds()
		row.Values["stored"] = float64(stored) / mib
		row.Values["objects"] = float64(objects)
		row.Values["rss"] = float64(m.PeakRSS()) / mib
		row.Values["rss_proc"] = float64(m.MaxRSS) / mib
		if base := b.backupRSS[t.name()]; base > 0 {
			row.Values["rss_ratio"] = row.Values["rss"] / base
		}
		e.log.printf("many-files %s: %.1f s, %.0f MiB RSS", t.name(), m.Wall.Seconds(), row.Values["rss"])
	}
	return s, nil
}
