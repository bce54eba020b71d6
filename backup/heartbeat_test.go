package backup

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// recordOutage fails every Put of a backup record while down is set, as an
// unreachable store would.
type recordOutage struct {
	cloud.Store
	down atomic.Bool
	puts atomic.Int64
}

func (s *recordOutage) Put(ctx context.Context, key string, r cloud.Body, opts cloud.PutOptions) error {
	if strings.HasSuffix(key, "/backup.json") {
		s.puts.Add(1)
		if s.down.Load() {
			return errors.New("store unreachable")
		}
	}
	return s.Store.Put(ctx, key, r, opts)
}

func heartbeatRun(t *testing.T, s cloud.Store, every time.Duration) *run {
	t.Helper()
	codec, _ := compress.Lookup("zstd")
	r := &run{o: Options{Store: s, Server: "main", Codec: codec, now: time.Now, heartbeatEvery: every}, layout: catalog.Layout{Server: "main"}}
	if err := r.create(t.Context(), r.newRecord("local")); err != nil {
		t.Fatal(err)
	}
	return r
}

// A live backup refreshes its record well within the window a reader
// allows, and says how often it does.
func TestHeartbeatRefreshes(t *testing.T) {
	s := &recordOutage{Store: cloud.NewMem()}
	r := heartbeatRun(t, s, 20*time.Millisecond)
	first := r.rec.Heartbeat
	ctx := r.heartbeat(t.Context())
	time.Sleep(200 * time.Millisecond)
	r.stopBeat()
	if ctx.Err() != nil {
		t.Fatalf("heartbeat of a healthy store stopped the backup: %v", context.Cause(ctx))
	}
	b, err := catalog.Load(t.Context(), s, r.layout, r.rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Heartbeat.After(first) || b.HeartbeatInterval != 1 {
		t.Errorf("record after some heartbeats: heartbeat %v (first %v), interval %d s; want a newer heartbeat and interval 1 (rounded up)", b.Heartbeat, first, b.HeartbeatInterval)
	}
	if err := r.checkBeat(); err != nil {
		t.Errorf("checkBeat after a healthy heartbeat: %v", err)
	}
}

// A backup whose heartbeat cannot be written stops before a reader could
// take it for dead, retries sooner than its interval meanwhile, and is
// never committed.
func TestHeartbeatLostStopsBackup(t *testing.T) {
	s := &recordOutage{Store: cloud.NewMem()}
	const every = 50 * time.Millisecond
	r := heartbeatRun(t, s, every)
	s.down.Store(true)
	start := time.Now()
	ctx := r.heartbeat(t.Context())
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		r.stopBeat()
		t.Fatal("the backup went on for 5 s without a heartbeat")
	}
	elapsed := time.Since(start)
	if elapsed > catalog.StaleHeartbeats*every {
		t.Errorf("stopped after %s, later than a reader's %s", elapsed, catalog.StaleHeartbeats*every)
	}
	if n := s.puts.Load(); n < 3 {
		t.Errorf("%d refresh attempts before giving up, want retries sooner than the interval", n)
	}
	cause := context.Cause(ctx)
	if cause == nil || !strings.Contains(cause.Error(), "could not be refreshed") || !strings.Contains(cause.Error(), "store unreachable") {
		t.Errorf("cause = %v, want the lost heartbeat with the store's error", cause)
	}
	s.down.Store(false)
	if _, err := r.done(context.WithoutCancel(ctx)); err == nil {
		t.Fatal("done committed a backup whose heartbeat was lost")
	}
	// fail (as the backup's code path calls it, with what it saw) names
	// the lost heartbeat and writes FAILED.
	r2 := heartbeatRun(t, s, every)
	s.down.Store(true)
	ctx = r2.heartbeat(t.Context())
	<-ctx.Done()
	s.down.Store(false)
	err := r2.fail(ctx, ctx.Err())
	if err == nil || !strings.Contains(err.Error(), "could not be refreshed") {
		t.Errorf("fail after a lost heartbeat: %v", err)
	}
	if b, lerr := catalog.Load(t.Context(), s, r2.layout, r2.rec.ID); lerr != nil || b.Status != catalog.StatusFailed {
		t.Errorf("record after fail: %+v, %v; want FAILED", b, lerr)
	}
}

// A backup that did not refresh its heartbeat for too long (the machine
// was suspended, the process stopped) is not committed, even though the
// store answers again.
func TestDoneRefusesAfterSilence(t *testing.T) {
	s := cloud.NewMem()
	r := heartbeatRun(t, s, 5*time.Minute)
	r.stopBeat = func() {}
	r.lastBeat = time.Now().Add(-catalog.HeartbeatGiveUp*5*time.Minute - time.Second)
	_, err := r.done(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not marking it DONE") {
		t.Fatalf("done after a long silence: %v", err)
	}
	if b, err := catalog.Load(t.Context(), s, r.layout, r.rec.ID); err != nil || b.Status == catalog.StatusDone {
		t.Fatalf("record: %+v, %v; want it not DONE", b, err)
	}
}

// The give-up point of the writer is strictly before a reader's limit.
func TestHeartbeatContract(t *testing.T) {
	if catalog.HeartbeatGiveUp >= catalog.StaleHeartbeats {
		t.Fatalf("a writer gives up after %d intervals, a reader after %d: a live backup could be taken for dead", catalog.HeartbeatGiveUp, catalog.StaleHeartbeats)
	}
	b := &catalog.Backup{Heartbeat: time.Now(), HeartbeatInterval: int64(heartbeatEvery / time.Second)}
	if got := b.SilenceLimit(24 * time.Hour); got != 15*time.Minute {
		t.Errorf("silence limit of gbc-backup's records = %s, want 15m", got)
	}
}
