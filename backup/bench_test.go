package backup

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	// s3://, gs:// and azblob:// for the measurements on a real server.
	_ "github.com/gbc-backup/gbc/cloud/providers"
	"github.com/gbc-backup/gbc/compress"
)

// TestCopyThroughput copies the directory in $GBC_BENCH_DIR (a data
// directory) through the whole pipeline into a store that discards, and
// reports the throughput: the engine's speed without PostgreSQL or a
// network. Run with -cpuprofile to see where the time goes.
//
// GBC_BENCH_URL (and GBC_BENCH_ENDPOINT) send the parts to a real store
// instead, to measure the memory its uploads take.
func TestCopyThroughput(t *testing.T) {
	dir := os.Getenv("GBC_BENCH_DIR")
	if dir == "" {
		t.Skip("set GBC_BENCH_DIR to a data directory to measure")
	}
	codecName := os.Getenv("GBC_BENCH_CODEC")
	if codecName == "" {
		codecName = "zstd"
	}
	codec, err := compress.Lookup(codecName)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := strconv.Atoi(os.Getenv("GBC_BENCH_JOBS"))
	if jobs == 0 {
		jobs = 2
	}
	var st cloud.Store
	if url := os.Getenv("GBC_BENCH_URL"); url != "" {
		s, err := cloud.Open(context.Background(), url, cloud.Options{EndpointURL: os.Getenv("GBC_BENCH_ENDPOINT"), PartSize: 8 << 20, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		st = s
	} else {
		st = discardPuts{cloud.NewMem()}
	}
	man, err := newManifestWriter(codec, 0, 150000, "1")
	if err != nil {
		t.Fatal(err)
	}
	defer man.Close()
	start := time.Now()
	p := newPipeline(context.Background(), pipelineConfig{
		Store: st, Layout: catalog.Layout{Server: "b"}, ID: "x", Codec: codec,
		Jobs: jobs, MaxPartSize: DefaultMaxPartSize, Uploads: 2,
	})
	c := &copier{buf: make([]byte, 1<<20), man: man, warnf: t.Logf}
	a := p.archive("")
	w := &walker{root: dir, data: true, dirMode: 0o700, warnf: t.Logf}
	if err := w.walk(p.ctx, func(e *entry) error { return c.send(a, e, "") }); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	parts, err := p.wait()
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	var size, stored int64
	for _, pt := range parts {
		size += pt.Size
		stored += pt.StoredSize
	}
	t.Logf("%s, %d jobs: %d parts, %d files, %.1f MiB -> %.1f MiB in %s: %.0f MiB/s",
		codecName, jobs, len(parts), man.Files(), float64(size)/(1<<20), float64(stored)/(1<<20), el, float64(size)/(1<<20)/el.Seconds())
}
