package status_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/status"
)

// BenchmarkFleet measures the fleet view on a file:// store of 100
// servers with 1,000 WAL segments each (100,000 WAL objects), four DONE
// backup records and a drill record per server, and reports the store
// requests one view costs (lists/op, gets/op): on S3 or GCS the time is
// about those requests times the round trip, divided by the servers
// scanned at once (status.DefaultJobs).
//
//	go test -run '^$' -bench Fleet -benchtime 5x ./status/
//
// Building the store (100,000 fsynced files) takes a minute or two; it
// is built once per run.
func BenchmarkFleet(b *testing.B) {
	const servers, segments = 100, 1000
	dir := b.TempDir()
	fs, err := cloud.Open(context.Background(), "file://"+dir, cloud.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	start := time.Now()
	buildFleet(b, fs, servers, segments)
	b.Logf("built %d servers x %d WAL segments in %v", servers, segments, time.Since(start).Round(time.Second))
	s := &requestCounter{Store: fs}
	// The first view writes each server's summary cache, as the first
	// gbc-backup-list would; measure the steady state after it.
	if _, err := status.Fleet(context.Background(), s, 0); err != nil {
		b.Fatal(err)
	}
	s.reset()
	b.ResetTimer()
	for b.Loop() {
		facts, err := status.Fleet(context.Background(), s, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(facts) != servers || facts[0].NewestWAL == nil || facts[0].NewestWAL.Name != seg(1, segments-1) || len(facts[0].Gaps) != 0 {
			b.Fatalf("unexpected facts: %d servers, first %+v", len(facts), facts[0])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.lists)/float64(b.N), "lists/op")
	b.ReportMetric(float64(s.gets)/float64(b.N), "gets/op")
}

func buildFleet(b *testing.B, s cloud.Store, servers, segments int) {
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(32)
	for i := range servers {
		server := fmt.Sprintf("db%03d", i)
		for k := range 4 {
			id := time.Date(2026, 11, 1+k, 0, 0, 0, 0, time.UTC).Format(catalog.IDLayout)
			putBackup(b, s, server, id, 1, uint64(k*segments/4), nil)
		}
		d := &catalog.Drill{Server: server, OK: true, RTOSeconds: 42, Time: time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)}
		if err := catalog.SaveDrill(ctx, s, catalog.Layout{Server: server}, d); err != nil {
			b.Fatal(err)
		}
		l := catalog.Layout{Server: server}
		for from := 0; from < segments; from += 100 {
			g.Go(func() error {
				for no := from; no < min(from+100, segments); no++ {
					if err := s.Put(ctx, l.WALKey(seg(1, uint64(no)), "zst"), cloud.BytesBody([]byte("wal")), cloud.PutOptions{}); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

// requestCounter counts the listings and reads that pass through it.
type requestCounter struct {
	cloud.Store
	mu          sync.Mutex
	lists, gets int
}

func (c *requestCounter) reset() {
	c.mu.Lock()
	c.lists, c.gets = 0, 0
	c.mu.Unlock()
}

func (c *requestCounter) List(ctx context.Context, prefix string, fn func(cloud.Attrs) error) error {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return c.Store.List(ctx, prefix, fn)
}

// ListLevel counts a level listing as one list and passes it to the
// provider's own.
func (c *requestCounter) ListLevel(ctx context.Context, prefix string, fn func(cloud.Attrs) error) error {
	c.mu.Lock()
	c.lists++
	c.mu.Unlock()
	return cloud.ListLevel(ctx, c.Store, prefix, fn)
}

func (c *requestCounter) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}
