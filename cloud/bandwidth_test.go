package cloud_test

import (
	"fmt"
	"io"
	"math"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/cloud"
)

// TestBandwidthLimit moves data through the S3 driver to a server over
// loopback TCP (gofakes3 behind httptest) with MaxBandwidth set, and checks
// that the throughput of uploads and of downloads, one stream or several
// at once, holds within 20% of the limit. The limit is small (4 MiB/s for
// 3 s of transfer per case) so that loopback itself, hundreds of MiB/s
// even on a busy machine, is never what sets the pace, and the band is
// wide enough that scheduling noise cannot leave it.
func TestBandwidthLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s of timed transfers")
	}
	const (
		limit = 4 << 20
		total = 12 << 20 // 3 s at the limit
	)
	endpoint := fakeS3(t, "gbc-bw")
	s, err := cloud.Open(t.Context(), "s3://gbc-bw/p", cloud.Options{EndpointURL: endpoint, MaxBandwidth: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()

	check := func(what string, streams int, move func(i int) error) {
		t.Helper()
		g := errgroup.Group{}
		start := time.Now()
		for i := range streams {
			g.Go(func() error { return move(i) })
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		el := time.Since(start)
		rate := float64(total) / el.Seconds()
		t.Logf("%s: %d MiB in %v: %.2f MiB/s for a limit of %d MiB/s (%+.1f%%)", what, total>>20, el.Round(time.Millisecond), rate/(1<<20), limit>>20, 100*(rate/limit-1))
		if math.Abs(rate/limit-1) > 0.2 {
			t.Errorf("%s: %.2f MiB/s, want within 20%% of %d MiB/s", what, rate/(1<<20), limit>>20)
		}
	}
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i * 7)
	}
	part := func(i, n int) []byte { return data[i*total/n : (i+1)*total/n] }

	check("upload, 1 stream", 1, func(int) error {
		return s.Put(ctx, "one", cloud.BytesBody(data), cloud.PutOptions{})
	})
	check("download, 1 stream", 1, func(int) error {
		rc, err := s.Get(ctx, "one")
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if err == nil && n != total {
			err = fmt.Errorf("got %d bytes, want %d", n, total)
		}
		return err
	})
	// The limit is the process's, not each stream's: 3 at once share it.
	check("upload, 3 streams", 3, func(i int) error {
		return s.Put(ctx, fmt.Sprintf("three/%d", i), cloud.BytesBody(part(i, 3)), cloud.PutOptions{})
	})
	check("download, 3 streams", 3, func(i int) error {
		rc, err := s.GetRange(ctx, "one", int64(i*total/3), total/3)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	})
}
