package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/pgrun"
	"github.com/gbc-backup/gbc/wal"
	"github.com/gbc-backup/gbc/walreceive"
)

// gbc-wal-receive on real PostgreSQL, with no archive_command: a backup
// completes with the receiver as the only WAL source; kill -9 of the
// receiver while WAL is written leaves no gap; a row committed more than
// --flush-interval before the server is killed is there after a restore to
// the end; a promotion is followed onto the new timeline; and the receiver
// stores the same objects as archive_command.

const wrServer = "main"

// wrProc is a running gbc-wal-receive.
type wrProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wrStart starts gbc-wal-receive against pg on slot, storing into st.
func wrStart(t *testing.T, pg *harness.Cluster, st harness.Store, spool, slot string, flags ...string) *wrProc {
	t.Helper()
	all := append([]string{"--slot", slot, "--create-slot", "--flush-interval", "1s", "--spool-dir", spool}, flags...)
	cmd := harness.GBCCommand(t, append(pg.Env(), st.Env...), st.Argv("gbc-wal-receive", all, wrServer)...)
	// As PostgreSQL's user, like archive_command, so that the file://
	// store's directories are the other commands' too.
	u, err := pgrun.ServerUser(harness.PGUser(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Apply(cmd)
	harness.ChownToPG(t, spool)
	p := &wrProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gbc-wal-receive (slot %s) said:\n%s", slot, p.stderr.String())
		}
	})
	return p
}

// kill9 kills the receiver with SIGKILL and waits for it.
func (p *wrProc) kill9(t *testing.T) {
	t.Helper()
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and returns the exit code.
func (p *wrProc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("gbc-wal-receive did not stop within a minute of SIGTERM:\n%s", p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// wrObjects lists the server's WAL objects: base name (without the codec
// extension) to key.
func wrObjects(t *testing.T, s cloud.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	l := catalog.Layout{Server: wrServer}
	err := s.List(context.Background(), l.WALRoot(), func(a cloud.Attrs) error {
		base, _ := compress.SplitKey(a.Key)
		out[path.Base(base)] = a.Key
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wrWaitStored waits until the store holds the WAL object name (a segment
// or a history file).
func wrWaitStored(t *testing.T, s cloud.Store, p *wrProc, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, ok := wrObjects(t, s)[name]; ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not stored by the receiver after %v; it said:\n%s", name, timeout, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wrWaitStreaming waits for the receiver's status object to say streaming.
func wrWaitStreaming(t *testing.T, s cloud.Store, p *wrProc, slot string) walreceive.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := walreceive.ReadStatus(context.Background(), s, catalog.Layout{Server: wrServer}, slot)
		if err == nil && st.State == walreceive.StateStreaming {
			return st
		}
		select {
		case <-p.done:
			t.Fatalf("the receiver exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver does not stream after a minute (status %+v, %v):\n%s", st, err, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wrCheckNoGap checks that every segment of timeline tli from first to
// last is stored in full.
func wrCheckNoGap(t *testing.T, objs map[string]string, tli uint32, first, last string) {
	t.Helper()
	n, err := wal.ParseName(first)
	if err != nil {
		t.Fatal(err)
	}
	for count := 0; n.String() <= last; count++ {
		if _, ok := objs[n.String()]; !ok {
			var names []string
			for k := range objs {
				names = append(names, k)
			}
			sort.Strings(names)
			t.Fatalf("gap: segment %s is not stored (between %s and %s); the store holds %v", n, first, last, names)
		}
		if n, err = n.Next(1 << 20); err != nil {
			t.Fatal(err)
		}
		if count > 10000 {
			t.Fatal("runaway segment walk")
		}
	}
}

func TestWALReceive(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) { testWALReceive(t, provider) })
	}
}

func testWALReceive(t *testing.T, provider string) {
	st := harness.NewStore(t, provider)
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveMode:      "off",
		Env:              st.Env,
		WALSegmentSizeMB: 1,
	})
	s := st.Open(t)
	spool := harness.TempDir(t)
	rcv := wrStart(t, pg, st, spool, "gbc")
	wrWaitStreaming(t, s, rcv, "gbc")

	pg.Exec(t, "CREATE TABLE marks (id serial PRIMARY KEY, mark text NOT NULL)")
	pg.PgBench(t, "-i", "-s", "2", "-q")

	// A backup with the receiver as the only WAL source.
	out := bkRun(t, pg, st, "gbc-backup", []string{"--format", "json", "--wal-timeout", "1m"}, wrServer)
	var b catalog.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("gbc-backup --format json: %v\n%s", err, out)
	}
	if b.Status != catalog.StatusDone {
		t.Fatalf("backup status %s, want DONE", b.Status)
	}
	if _, ok := wrObjects(t, s)[b.EndWAL]; !ok {
		t.Fatalf("the backup's last segment %s is not stored in full", b.EndWAL)
	}

	// kill -9 while WAL is written, then a restart: no gap.
	stopLoad := make(chan struct{})
	loadDone := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				loadDone <- nil
				return
			default:
			}
			if err := pg.ExecErr("INSERT INTO marks (mark) SELECT 'load' || g FROM generate_series(1, 500) g"); err != nil {
				loadDone <- err
				return
			}
			if i%20 == 0 {
				_ = pg.ExecErr("SELECT pg_switch_wal()")
			}
		}
	}()
	time.Sleep(3 * time.Second)
	rcv.kill9(t)
	time.Sleep(2 * time.Second) // WAL written while no receiver runs
	rcv = wrStart(t, pg, st, spool, "gbc")
	time.Sleep(3 * time.Second)
	close(stopLoad)
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	last := pg.SwitchWAL(t)
	wrWaitStored(t, s, rcv, last, time.Minute)
	wrCheckNoGap(t, wrObjects(t, s), 1, b.BeginWAL, last)

	// A row committed well over --flush-interval before the server dies
	// is stored in the .partial segment.
	pg.Exec(t, "INSERT INTO marks (mark) VALUES ('before the crash')")
	want := pg.QueryString(t, "SELECT count(*) || ' ' || max(id) FROM marks")
	time.Sleep(3 * time.Second)
	pg.Kill(t)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(rcv.stderr.String(), "reconnecting"); {
		if time.Now().After(deadline) {
			t.Errorf("the receiver did not report the lost connection within 20s:\n%s", rcv.stderr.String())
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := rcv.stop(t); code != 0 {
		t.Errorf("gbc-wal-receive exited %d after SIGTERM, want 0:\n%s", code, rcv.stderr.String())
	}
	objs := wrObjects(t, s)
	partials := 0
	for k := range objs {
		if strings.HasSuffix(k, ".partial") {
			partials++
		}
	}
	if partials != 1 {
		t.Errorf("the store holds %d .partial segments, want 1 (the one in progress; stale ones are deleted): %v", partials, objs)
	}

	dest := pg.NewEmptyDataDir(t)
	bkRun(t, pg, st, "gbc-restore", []string{"--disable-archiving"}, wrServer, b.ID, dest)
	r := pg.StartFrom(t, dest, 0)
	r.WaitRecovered(t, 3*time.Minute)
	if got := r.QueryString(t, "SELECT count(*) || ' ' || max(id) FROM marks"); got != want {
		t.Errorf("after a restore to the end: marks has %q, want %q (the last commit before the crash)", got, want)
	}
	if got := r.QueryString(t, "SELECT count(*) FROM marks WHERE mark = 'before the crash'"); got != "1" {
		t.Errorf("the row committed before the crash is missing after the restore")
	}
}

// TestWALReceiveTimeline follows a promotion: the receiver streams from a
// standby, which is promoted; the new timeline's history file and segments
// reach the store.
func TestWALReceiveTimeline(t *testing.T) {
	st := harness.NewStore(t, "file")
	primary := harness.StartPostgres(t, harness.PGOptions{ArchiveMode: "off", Env: st.Env, WALSegmentSizeMB: 1})
	primary.Exec(t, "CREATE TABLE marks (mark text)")
	standby := primary.StartStandby(t)
	s := st.Open(t)
	rcv := wrStart(t, standby, st, harness.TempDir(t), "gbc")
	wrWaitStreaming(t, s, rcv, "gbc")
	primary.Exec(t, "INSERT INTO marks VALUES ('on timeline 1')")
	seg := primary.SwitchWAL(t)
	wrWaitStored(t, s, rcv, seg, time.Minute)

	standby.Exec(t, "SELECT pg_promote()")
	deadline := time.Now().Add(time.Minute)
	for standby.QueryString(t, "SELECT pg_is_in_recovery()") != "f" {
		if time.Now().After(deadline) {
			t.Fatal("the standby was not promoted within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	standby.Exec(t, "INSERT INTO marks VALUES ('on timeline 2')")
	seg2 := standby.SwitchWAL(t)
	if !strings.HasPrefix(seg2, "00000002") {
		t.Fatalf("the promoted server writes %s, not timeline 2", seg2)
	}
	wrWaitStored(t, s, rcv, "00000002.history", time.Minute)
	wrWaitStored(t, s, rcv, seg2, time.Minute)

	// The history file is the server's own.
	got := wrFetch(t, s, wrObjects(t, s)["00000002.history"])
	want, err := os.ReadFile(filepath.Join(standby.DataDir, "pg_wal", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored 00000002.history differs from the server's:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(rcv.stderr.String(), "following timeline 2") {
		t.Errorf("the receiver did not report the new timeline:\n%s", rcv.stderr.String())
	}
	if code := rcv.stop(t); code != 0 {
		t.Errorf("gbc-wal-receive exited %d after SIGTERM, want 0", code)
	}
}

// wrFetch downloads and decompresses key.
func wrFetch(t *testing.T, s cloud.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, codec := compress.SplitKey(key)
	zr, err := codec.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWALReceiveBesideArchiveCommand runs the receiver and archive_command
// at once: into one store, neither fails on the other's objects; and each
// into a store of its own, they store byte-identical objects with the same
// metadata.
func TestWALReceiveBesideArchiveCommand(t *testing.T) {
	archived := harness.NewStore(t, "file")
	received := harness.NewStore(t, "file")
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   archived.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, wrServer, "%p"),
		Env:              archived.Env,
		WALSegmentSizeMB: 1,
	})
	sa, sr := archived.Open(t), received.Open(t)
	own := wrStart(t, pg, received, harness.TempDir(t), "own")
	shared := wrStart(t, pg, archived, harness.TempDir(t), "shared")
	wrWaitStreaming(t, sr, own, "own")
	wrWaitStreaming(t, sa, shared, "shared")
	pg.PgBench(t, "-i", "-s", "1", "-q")
	var last string
	for range 3 {
		last = pg.SwitchWAL(t)
	}
	pg.WaitArchived(t, last, time.Minute)
	wrWaitStored(t, sr, own, last, time.Minute)
	wrWaitStored(t, sa, shared, last, time.Minute)

	oa, or := wrObjects(t, sa), wrObjects(t, sr)
	compared := 0
	for name, ka := range oa {
		n, err := wal.ParseName(name)
		if err != nil || n.Kind != wal.Segment {
			continue
		}
		kr, ok := or[name]
		if !ok {
			continue // before the receiver's slot
		}
		ba, br := wrRaw(t, sa, ka), wrRaw(t, sr, kr)
		if !bytes.Equal(ba, br) {
			t.Errorf("%s: archive_command stored %d bytes (%s), the receiver %d (%s): not identical", name, len(ba), ka, len(br), kr)
		}
		ma, _ := sa.Stat(context.Background(), ka)
		mr, _ := sr.Stat(context.Background(), kr)
		if fmt.Sprint(ma.Metadata) != fmt.Sprint(mr.Metadata) {
			t.Errorf("%s: metadata %v (archive_command) and %v (receiver) differ", name, ma.Metadata, mr.Metadata)
		}
		compared++
	}
	if compared < 3 {
		t.Fatalf("only %d segments stored by both to compare", compared)
	}
	for _, p := range []*wrProc{own, shared} {
		if code := p.stop(t); code != 0 {
			t.Errorf("gbc-wal-receive exited %d, want 0:\n%s", code, p.stderr.String())
		}
	}
	var failed int64
	if err := pg.QueryRow(t, "SELECT failed_count FROM pg_stat_archiver").Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("archive_command failed %d times beside the receiver in the same store", failed)
	}
}

// wrRaw is the object's stored bytes, compressed as they are.
func wrRaw(t *testing.T, s cloud.Store, key string) []byte {
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
