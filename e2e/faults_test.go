package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// TestStoreFaults puts a fault-injecting TCP proxy between gbc and each
// provider's server: latency, a connection reset in the middle of an
// upload, a slow trickle and a stall. Retries must succeed where they can
// (and the restored file be byte-identical); a trickle that keeps moving
// must never pass for a stall; a stall must end the call within its
// deadline, with a clear message.
func TestStoreFaults(t *testing.T) {
	for _, provider := range []string{"s3", "gcs", "azure"} {
		t.Run(provider, func(t *testing.T) { testStoreFaults(t, provider) })
	}
}

func testStoreFaults(t *testing.T, provider string) {
	st := harness.NewStore(t, provider)
	u, err := url.Parse(st.EndpointURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := harness.StartFaultProxy(t, u.Host)
	st.Args = []string{"--endpoint-url", proxy.URL(t, st.EndpointURL)}
	dir := harness.TempDir(t)
	walDir := filepath.Join(dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	const server = "faults"
	flags := []string{"--max-parallel", "1", "--io-timeout", "2s", "--retry-timeout", "30s"}

	seg := 0
	roundTrip := func(what string, f harness.Fault) {
		t.Helper()
		seg++
		name := fmt.Sprintf("0000000100000000000000%02X", seg)
		path := writeWALSegment(t, walDir, name)
		proxy.Set(f)
		r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env}, st.Argv("gbc-wal-archive", flags, server, path)...)
		if r.ExitCode != 0 {
			t.Fatalf("%s: archive: exit %d: %s", what, r.ExitCode, r.Stderr)
		}
		dest := filepath.Join(dir, "RECOVERYXLOG")
		os.Remove(dest)
		r = harness.RunGBCWith(t, harness.RunOptions{Env: st.Env, Dir: dir},
			st.Argv("gbc-wal-restore", append([]string{"--prefetch", "0"}, flags[2:]...), server, name, dest)...)
		if r.ExitCode != 0 {
			t.Fatalf("%s: restore: exit %d: %s", what, r.ExitCode, r.Stderr)
		}
		sameFile(t, dest, path)
		proxy.Set(harness.Fault{})
	}
	roundTrip("no fault", harness.Fault{})
	roundTrip("100 ms of latency", harness.Fault{Latency: 100 * time.Millisecond})
	var resets atomic.Int64
	resets.Store(2)
	roundTrip("two connections reset mid-upload", harness.Fault{ResetAfter: 300 << 10, Resets: &resets})
	if resets.Load() > 0 {
		t.Errorf("the resets were never injected (%d left): the case proved nothing", resets.Load())
	}
	start := time.Now()
	roundTrip("a 512 KiB/s trickle, slower in total than --io-timeout", harness.Fault{Trickle: 512 << 10})
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("the trickle took only %v for 2 MiB: it was not applied", d)
	}

	seg++
	path := writeWALSegment(t, walDir, fmt.Sprintf("0000000100000000000000%02X", seg))
	proxy.Set(harness.Fault{Stall: true})
	r := harness.RunGBCWith(t, harness.RunOptions{Env: st.Env},
		st.Argv("gbc-wal-archive", []string{"--max-parallel", "1", "--io-timeout", "1s", "--retry-timeout", "4s"}, server, path)...)
	if r.ExitCode != 1 || r.Elapsed > 9*time.Second || r.Stderr == "" {
		t.Errorf("archive through a stall: exit %d after %v, stderr %q; want 1 within about 4s and a message", r.ExitCode, r.Elapsed, r.Stderr)
	}
	proxy.Set(harness.Fault{})
}
