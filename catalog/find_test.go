package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
	// s3://, gs:// and azblob:// for the measurements on a real server.
	_ "github.com/gbc-backup/gbc/cloud/providers"
)

// openTestStore is a file:// store, or the store of GBC_TEST_FIND_URL (with
// GBC_TEST_FIND_ENDPOINT) to measure listings on a real server.
func openTestStore(t testing.TB) cloud.Store {
	t.Helper()
	url := os.Getenv("GBC_TEST_FIND_URL")
	if url == "" {
		url = "file://" + t.TempDir()
	}
	s, err := cloud.Open(context.Background(), url, cloud.Options{EndpointURL: os.Getenv("GBC_TEST_FIND_ENDPOINT")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func saveTestBackup(t testing.TB, s cloud.Store, l Layout, start time.Time, name string, status Status) *Backup {
	t.Helper()
	b := &Backup{
		ID: start.UTC().Format(IDLayout), Name: name, Server: l.Server, Status: status,
		BeginTime: start, EndTime: start.Add(time.Minute), EndLSN: fmt.Sprintf("0/%X", start.Unix()&0xFFFFFF),
	}
	if err := Save(context.Background(), s, l, b); err != nil {
		t.Fatal(err)
	}
	// A part beside the record, as a real backup has, for the listing to skip.
	if err := s.Put(context.Background(), l.PartKey(b.ID, "", 0, "zst"), cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFind(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	l := Layout{Server: "main"}
	other := Layout{Server: "main2"}
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	b1 := saveTestBackup(t, s, l, t0, "first", StatusDone)
	b2 := saveTestBackup(t, s, l, t0.Add(24*time.Hour), "", StatusDone)
	b3 := saveTestBackup(t, s, l, t0.Add(48*time.Hour), "broken", StatusFailed)
	saveTestBackup(t, s, other, t0.Add(72*time.Hour), "elsewhere", StatusDone)
	// A part without a record (a backup that died before its first
	// record) is not a backup.
	s.Put(ctx, l.PartKey("20261125T000000Z", "", 0, "zst"), cloud.BytesBody(nil), cloud.PutOptions{})
	// A record that is not JSON is listed, not fatal.
	s.Put(ctx, l.RecordKey("20261126T000000Z"), cloud.BytesBody([]byte("{oops")), cloud.PutOptions{})

	all, err := List(ctx, s, l)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range all {
		ids = append(ids, b.ID+":"+string(b.Status))
	}
	want := []string{b1.ID + ":DONE", b2.ID + ":DONE", b3.ID + ":FAILED", "20261126T000000Z:UNREADABLE"}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("List = %v, want %v", ids, want)
	}

	for ref, wantID := range map[string]string{
		b1.ID: b1.ID, "first": b1.ID, "latest": b2.ID, "oldest": b1.ID, "auto": b2.ID,
		"broken": b3.ID, b3.ID: b3.ID,
	} {
		b, err := Find(ctx, s, l, ref, nil)
		if err != nil || b.ID != wantID {
			t.Errorf("Find(%q) = %v, %v; want %s", ref, b, err, wantID)
		}
	}
	b, err := Find(ctx, s, l, "auto", func(b *Backup) bool { return b.EndTime.Before(t0.Add(time.Hour)) })
	if err != nil || b.ID != b1.ID {
		t.Errorf("auto with a target = %v, %v", b, err)
	}
	_, err = Find(ctx, s, l, "auto", func(*Backup) bool { return false })
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("auto with nothing suitable: %v", err)
	}
	for _, ref := range []string{"nope", "20200101T000000Z", "elsewhere"} {
		_, err := Find(ctx, s, l, ref, nil)
		if !errors.Is(err, cloud.ErrNotFound) || !errors.Is(err, ErrNoBackup) || !strings.Contains(err.Error(), "gbc-backup-list") {
			t.Errorf("Find(%q): %v", ref, err)
		}
	}
	if _, err := Find(ctx, s, Layout{Server: "none"}, "latest", nil); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("latest of an unknown server: %v", err)
	}
}

// TestListMany measures a listing of many backups. It is skipped in -short
// runs; with GBC_TEST_FIND_URL it runs against a real server:
//
//	GBC_TEST_FIND_URL=s3://bucket/x GBC_TEST_FIND_ENDPOINT=http://127.0.0.1:9000 go test -run ListMany ./catalog
func TestListMany(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: writes 2,000 records")
	}
	n := 2000
	ctx := context.Background()
	s := openTestStore(t)
	l := Layout{Server: fmt.Sprintf("many%d", time.Now().UnixNano())}
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			b := &Backup{ID: t0.Add(time.Duration(i) * time.Hour).Format(IDLayout), Server: l.Server, Status: StatusDone,
				Parts: make([]Part, 4), BackupLabel: strings.Repeat("x", 300)}
			errs <- Save(ctx, s, l, b)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	all, err := List(ctx, s, l)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if len(all) != n {
		t.Fatalf("listed %d of %d", len(all), n)
	}
	t.Logf("listed %d backups in %s", n, d)
	for _, what := range []string{"summaries, cache built", "summaries, from the cache"} {
		start = time.Now()
		sums, err := Summaries(ctx, s, l)
		if err != nil || len(sums) != n {
			t.Fatalf("%d summaries, %v", len(sums), err)
		}
		t.Logf("%s: %s", what, time.Since(start))
	}
	start = time.Now()
	if b, err := Find(ctx, s, l, all[7].ID, nil); err != nil || b.ID != all[7].ID {
		t.Fatal(b, err)
	}
	t.Logf("found one by id in %s", time.Since(start))
}

// countingStore counts the GETs of backup records.
type countingStore struct {
	cloud.Store
	mu   sync.Mutex
	gets int
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, "/"+recordName) {
		c.mu.Lock()
		c.gets++
		c.mu.Unlock()
	}
	return c.Store.Get(ctx, key)
}

func (c *countingStore) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.gets
	c.gets = 0
	return n
}

func TestSummariesCache(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{Store: openTestStore(t)}
	l := Layout{Server: "main"}
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	b1 := saveTestBackup(t, s, l, t0, "a", StatusDone)
	b2 := saveTestBackup(t, s, l, t0.Add(time.Hour), "", StatusStarted)
	s.Put(ctx, l.RecordKey("20261126T000000Z"), cloud.BytesBody([]byte("{oops")), cloud.PutOptions{})

	summaries := func() []string {
		t.Helper()
		all, err := Summaries(ctx, s, l)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range all {
			out = append(out, b.ID+":"+string(b.Status))
		}
		return out
	}
	first := summaries()
	if n := s.take(); n != 3 {
		t.Fatalf("first listing read %d records, want 3", n)
	}
	if got := summaries(); strings.Join(got, " ") != strings.Join(first, " ") {
		t.Fatalf("cached listing %v, want %v", got, first)
	}
	if n := s.take(); n != 1 {
		t.Fatalf("second listing read %d records, want only the unreadable one", n)
	}

	// A rewritten record (STARTED -> DONE, with parts) is read again.
	time.Sleep(10 * time.Millisecond)
	b2.Status, b2.Parts = StatusDone, []Part{{Key: "k"}}
	if err := Save(ctx, s, l, b2); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, l.RecordKey(b1.ID)); err != nil {
		t.Fatal(err)
	}
	got := summaries()
	if want := b2.ID + ":DONE 20261126T000000Z:UNREADABLE"; strings.Join(got, " ") != want {
		t.Fatalf("after changes: %v, want %s", got, want)
	}
	if n := s.take(); n != 2 {
		t.Fatalf("read %d records after one changed, want 2", n)
	}
	all, _ := Summaries(ctx, s, l)
	if all[0].Parts != nil {
		t.Error("summaries carry parts")
	}
	// Find returns the full record, not the summary.
	b, err := Find(ctx, s, l, "latest", nil)
	if err != nil || len(b.Parts) != 1 {
		t.Fatalf("Find latest = %+v, %v", b, err)
	}
}
