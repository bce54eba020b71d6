package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/e2e/harness"
	"github.com/gbc-backup/gbc/retention"
	"github.com/gbc-backup/gbc/retention/prune"
	"github.com/gbc-backup/gbc/wal"
)

// Retention end to end. The synthetic tests build a catalog and a WAL
// archive directly in the store (records through catalog.Save, as
// gbc-backup writes them) and run the real gbc-backup-delete and
// gbc-backup-keep against it, on every provider; TestRetentionPostgres does
// the same with real backups of a PostgreSQL 15 cluster and restores what
// remains.

const retServer = "main"

var retLayout = catalog.Layout{Server: retServer}

// Exit codes of the documented contract (README), checked as a user's
// script sees them.
const (
	exitUsage    = 2
	exitConflict = 4
	exitNotFound = 5
)

// openRetStore opens st in this process, with the credentials the gbc
// commands get.
func openRetStore(t testing.TB, st harness.Store) cloud.Store {
	t.Helper()
	st.Setenv(t)
	s, err := cloud.Open(context.Background(), st.URL, cloud.Options{EndpointURL: st.EndpointURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func retPut(t testing.TB, s cloud.Store, key, content string) {
	t.Helper()
	if err := s.Put(context.Background(), key, cloud.BytesBody([]byte(content)), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func retSeg(tli uint32, segno uint64) string {
	return wal.SegmentFromSegNo(tli, segno, wal.DefaultSegmentSize).String()
}

// synthBackup stores a backup as gbc-backup leaves it: parts, manifest, and
// the record last.
func synthBackup(t testing.TB, s cloud.Store, begin time.Time, status catalog.Status, tli uint32, beginSeg, endSeg uint64) *catalog.Backup {
	t.Helper()
	id := begin.UTC().Format(catalog.IDLayout)
	const size = 16 << 20
	b := &catalog.Backup{
		Format: catalog.FormatVersion, ID: id, Server: retServer, Status: status, Timeline: tli,
		WALSegmentSize: size, BeginTime: begin.UTC(), EndTime: begin.UTC().Add(time.Hour),
		BeginWAL: retSeg(tli, beginSeg), EndWAL: retSeg(tli, endSeg),
		BeginLSN: wal.FormatLSN(beginSeg*size + 0x28), EndLSN: wal.FormatLSN(endSeg*size + 0x100),
		Method: "local", Compression: "zstd",
	}
	if status != catalog.StatusDone {
		b.EndTime, b.EndWAL, b.EndLSN = time.Time{}, "", ""
	}
	for i := range 2 {
		key := retLayout.PartKey(id, "", i, "zst")
		retPut(t, s, key, "part "+key)
		b.Parts = append(b.Parts, catalog.Part{Key: key})
	}
	b.ManifestKey = retLayout.ManifestKey(id, "zst")
	retPut(t, s, b.ManifestKey, "manifest")
	if err := catalog.Save(context.Background(), s, retLayout, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func synthBackupFile(b *catalog.Backup) string {
	return retLayout.WALKey(fmt.Sprintf("%s.%08X.backup", b.BeginWAL, 0x28), "zst")
}

func listKeys(t testing.TB, s cloud.Store, prefix string) []string {
	t.Helper()
	var out []string
	if err := s.List(context.Background(), prefix, func(a cloud.Attrs) error {
		out = append(out, a.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func runGBC(t *testing.T, st harness.Store, cmd string, flags []string, pos ...string) (string, string, int) {
	t.Helper()
	return harness.RunGBC(t, st.Env, st.Argv(harness.Bin(t, cmd), flags, pos...)...)
}

func mustGBC(t *testing.T, st harness.Store, cmd string, flags []string, pos ...string) string {
	t.Helper()
	out, errOut, code := runGBC(t, st, cmd, flags, pos...)
	if code != 0 {
		t.Fatalf("%s %v: exit %d\nstdout: %s\nstderr: %s", cmd, flags, code, out, errOut)
	}
	return out
}

func TestRetentionSynthetic(t *testing.T) {
	for _, provider := range harness.Providers {
		t.Run(provider, func(t *testing.T) { testRetentionSynthetic(t, provider) })
	}
}

func testRetentionSynthetic(t *testing.T, provider string) {
	st := harness.NewStore(t, provider)
	s := openRetStore(t, st)
	now := time.Now().UTC().Truncate(time.Second)

	// Four daily backups on timeline 1 (begin WAL 2, 5, 8, 11), WAL 1..14,
	// a timeline 2 forked at 13, a young FAILED backup and a young orphan.
	var bs []*catalog.Backup
	for i := range 4 {
		b := synthBackup(t, s, now.Add(-time.Duration(4-i)*24*time.Hour), catalog.StatusDone, 1, uint64(2+3*i), uint64(3+3*i))
		retPut(t, s, synthBackupFile(b), "backup label")
		bs = append(bs, b)
	}
	failed := synthBackup(t, s, now.Add(-90*time.Minute), catalog.StatusFailed, 1, 12, 12)
	orphan := now.Add(-time.Hour).Format(catalog.IDLayout)
	retPut(t, s, retLayout.PartKey(orphan, "", 0, "zst"), "orphan part")
	for n := uint64(1); n <= 14; n++ {
		retPut(t, s, retLayout.WALKey(retSeg(1, n), "zst"), "wal")
	}
	for n := uint64(13); n <= 15; n++ {
		retPut(t, s, retLayout.WALKey(retSeg(2, n), "zst"), "wal")
	}
	retPut(t, s, retLayout.WALKey("00000002.history", "zst"), "1\t0/D000000\tno recovery target specified\n")
	retPut(t, s, retLayout.WALKey(retSeg(1, 13)+".partial", "zst"), "partial")

	// Keep the second backup standalone.
	mustGBC(t, st, "gbc-backup-keep", []string{"--target", "standalone"}, retServer, bs[1].ID)
	if got := strings.TrimSpace(mustGBC(t, st, "gbc-backup-keep", []string{"--status"}, retServer, bs[1].ID)); got != "standalone" {
		t.Fatalf("keep --status = %q, want standalone", got)
	}
	if _, _, code := runGBC(t, st, "gbc-backup-keep", []string{"--target", "full"}, retServer, failed.ID); code != exitConflict {
		t.Errorf("keep of a FAILED backup: exit %d, want %d", code, exitConflict)
	}

	// A dry run reports, and deletes nothing.
	before := listKeys(t, s, "")
	out := mustGBC(t, st, "gbc-backup-delete", []string{"--dry-run", "--format", "json", "--retention-policy", "redundancy 2"}, retServer)
	var dry prune.Report
	if err := json.Unmarshal([]byte(out), &dry); err != nil {
		t.Fatalf("dry-run JSON: %v\n%s", err, out)
	}
	if after := listKeys(t, s, ""); !reflect.DeepEqual(before, after) {
		t.Fatal("--dry-run changed the store")
	}

	// The real run. REDUNDANCY 2 with the second backup kept: the first
	// goes; WAL before the third backup's begin (8) goes, except the kept
	// backup's 5..6 and its .backup file; timeline 2 (forked at 13) stays.
	out = mustGBC(t, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 2"}, retServer)
	t.Logf("gbc-backup-delete:\n%s", out)
	var wantWAL []string
	for _, n := range []uint64{5, 6, 8, 9, 10, 11, 12, 13, 14} {
		wantWAL = append(wantWAL, retLayout.WALKey(retSeg(1, n), "zst"))
	}
	for n := uint64(13); n <= 15; n++ {
		wantWAL = append(wantWAL, retLayout.WALKey(retSeg(2, n), "zst"))
	}
	wantWAL = append(wantWAL, retLayout.WALKey("00000002.history", "zst"), retLayout.WALKey(retSeg(1, 13)+".partial", "zst"))
	for _, b := range bs[1:] {
		wantWAL = append(wantWAL, synthBackupFile(b))
	}
	sort.Strings(wantWAL)
	if got := listKeys(t, s, retLayout.WALRoot()); !reflect.DeepEqual(got, wantWAL) {
		t.Errorf("WAL left:\n got %v\nwant %v", got, wantWAL)
	}
	var wantBase []string
	for _, id := range []string{bs[1].ID, bs[2].ID, bs[3].ID, failed.ID} {
		wantBase = append(wantBase, retLayout.ManifestKey(id, "zst"), retLayout.RecordKey(id),
			retLayout.PartKey(id, "", 0, "zst"), retLayout.PartKey(id, "", 1, "zst"))
	}
	wantBase = append(wantBase, retLayout.PartKey(orphan, "", 0, "zst")) // younger than --orphan-age
	sort.Strings(wantBase)
	if got := listKeys(t, s, retLayout.BaseRoot()); !reflect.DeepEqual(got, wantBase) {
		t.Errorf("backups left:\n got %v\nwant %v", got, wantBase)
	}
	// The dry run announced exactly this.
	if len(dry.Deleted) != 1 || dry.Deleted[0].ID != bs[0].ID || dry.WAL.Objects != 6 ||
		dry.Objects != 4+6 || len(before)-dry.Objects != len(listKeys(t, s, "")) {
		t.Errorf("dry run announced %+v", dry)
	}

	// Refusals, which change nothing.
	before = listKeys(t, s, "")
	for _, tt := range []struct {
		flags []string
		code  int
	}{
		{[]string{"--backup-id", bs[1].ID}, exitConflict},                              // kept
		{[]string{"--backup-id", bs[2].ID, "--minimum-redundancy", "2"}, exitConflict}, // 1 would remain
		{[]string{"--backup-id", "20200101T000000Z"}, exitNotFound},
		{[]string{"--retention-policy", "REDUNDANCY 0"}, exitUsage},
		{[]string{"--retention-policy", "REDUNDANCY 1", "--backup-id", "latest"}, exitUsage},
		{[]string{"--retention-policy", "REDUNDANCY 1", "--orphan-age", "1m"}, exitUsage},
	} {
		if _, errOut, code := runGBC(t, st, "gbc-backup-delete", tt.flags, retServer); code != tt.code {
			t.Errorf("gbc-backup-delete %v: exit %d, want %d (%s)", tt.flags, code, tt.code, errOut)
		}
	}
	if after := listKeys(t, s, ""); !reflect.DeepEqual(before, after) {
		t.Fatal("a refused delete changed the store")
	}

	// Release the keep, then delete that backup by id.
	mustGBC(t, st, "gbc-backup-keep", []string{"--release"}, retServer, bs[1].ID)
	mustGBC(t, st, "gbc-backup-delete", []string{"--backup-id", bs[1].ID, "--minimum-redundancy", "2"}, retServer)
	if k := listKeys(t, s, retLayout.BackupRoot(bs[1].ID)); len(k) != 0 {
		t.Errorf("backup deleted by id left %v", k)
	}
	if got := listKeys(t, s, retLayout.WALRoot()); len(got) != len(wantWAL)-3 {
		t.Errorf("after deleting the released backup, WAL left: %v (want its range 5..6 and .backup file gone)", got)
	}
}

// Chains of incremental and differential backups, as records only (no
// incremental backup is taken here): the real gbc-backup-delete and
// gbc-backup-keep refuse to orphan an incremental, count full backups only,
// keep a kept incremental's chain (its data, not its WAL), and delete
// children before their parents.
func TestRetentionChainSynthetic(t *testing.T) {
	st := harness.NewStore(t, "file")
	s := openRetStore(t, st)
	now := time.Now().UTC().Truncate(time.Second)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const day = 24 * time.Hour
	on := func(b *catalog.Backup, typ string, parent *catalog.Backup) *catalog.Backup {
		t.Helper()
		b.Type, b.ParentID = typ, parent.ID
		if err := catalog.Save(context.Background(), s, retLayout, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// f1 <- i1 <- i2, f1 <- d1; f2 <- i3; f3. WAL 1..24.
	f1 := synthBackup(t, s, ago(6*day), catalog.StatusDone, 1, 2, 3)
	i1 := on(synthBackup(t, s, ago(5*day), catalog.StatusDone, 1, 5, 6), catalog.TypeIncr, f1)
	i2 := on(synthBackup(t, s, ago(4*day), catalog.StatusDone, 1, 8, 9), catalog.TypeIncr, i1)
	d1 := on(synthBackup(t, s, ago(3*day+12*time.Hour), catalog.StatusDone, 1, 11, 12), catalog.TypeDiff, f1)
	f2 := synthBackup(t, s, ago(3*day), catalog.StatusDone, 1, 14, 15)
	i3 := on(synthBackup(t, s, ago(2*day), catalog.StatusDone, 1, 17, 18), catalog.TypeIncr, f2)
	f3 := synthBackup(t, s, ago(1*day), catalog.StatusDone, 1, 20, 21)
	all := []*catalog.Backup{f1, i1, i2, d1, f2, i3, f3}
	for _, b := range all {
		retPut(t, s, synthBackupFile(b), "backup label")
	}
	for n := uint64(1); n <= 24; n++ {
		retPut(t, s, retLayout.WALKey(retSeg(1, n), "zst"), "wal")
	}
	report := func(flags ...string) prune.Report {
		t.Helper()
		out := mustGBC(t, st, "gbc-backup-delete", append([]string{"--format", "json"}, flags...), retServer)
		var rep prune.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("JSON: %v\n%s", err, out)
		}
		return rep
	}
	idsOf := func(bs []prune.Backup) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.ID)
		}
		return out
	}
	left := func() (base, walLeft []string) {
		seen := map[string]bool{}
		for _, k := range listKeys(t, s, retLayout.BaseRoot()) {
			if id := strings.Split(strings.TrimPrefix(k, retLayout.BaseRoot()), "/")[0]; !seen[id] {
				seen[id] = true
				base = append(base, id)
			}
		}
		return base, listKeys(t, s, retLayout.WALRoot())
	}
	walKeys := func(segs []uint64, backups ...*catalog.Backup) []string {
		var out []string
		for _, n := range segs {
			out = append(out, retLayout.WALKey(retSeg(1, n), "zst"))
		}
		for _, b := range backups {
			out = append(out, synthBackupFile(b))
		}
		sort.Strings(out)
		return out
	}

	// Deleting the full under a chain is refused, naming every dependent.
	before := listKeys(t, s, "")
	_, errOut, code := runGBC(t, st, "gbc-backup-delete", []string{"--backup-id", f1.ID}, retServer)
	if code != exitConflict || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
		!strings.Contains(errOut, i1.ID+", "+i2.ID+", "+d1.ID) || !strings.Contains(errOut, "--with-dependents") {
		t.Errorf("delete of a full with dependents: exit %d, stderr %q", code, errOut)
	}
	// --dry-run --with-dependents shows all of them, children first.
	if got, want := idsOf(report("--dry-run", "--with-dependents", "--backup-id", f1.ID).Deleted), []string{d1.ID, i2.ID, i1.ID, f1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("dry run with dependents deletes %v, want %v", got, want)
	}
	if !reflect.DeepEqual(before, listKeys(t, s, "")) {
		t.Fatal("a refusal or a dry run changed the store")
	}

	// Keep i2: the annotation is on it alone; f1 and i1 stay for it.
	mustGBC(t, st, "gbc-backup-keep", []string{"--target", "standalone"}, retServer, i2.ID)
	if got := strings.TrimSpace(mustGBC(t, st, "gbc-backup-keep", []string{"--status"}, retServer, f1.ID)); got != "none" {
		t.Errorf("keep --status of f1 = %q, want none", got)
	}
	// REDUNDANCY 1 counts fulls: f3 stays; f2's chain goes, and so does
	// d1 (built on f1, which stays for i2 only). WAL: f3's on, and i2's
	// own range; not f1's or i1's.
	rep := report("--retention-policy", "REDUNDANCY 1")
	if got, want := idsOf(rep.Deleted), []string{d1.ID, i3.ID, f2.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("REDUNDANCY 1 deleted %v, want %v", got, want)
	}
	for _, d := range rep.Deleted {
		if d.ID == d1.ID && (d.Type != catalog.TypeDiff || d.ParentID != f1.ID) {
			t.Errorf("report of %s: type %q, parent %q; want diff on %s", d.ID, d.Type, d.ParentID, f1.ID)
		}
	}
	for _, r := range rep.Retained {
		if (r.ID == f1.ID || r.ID == i1.ID) && r.Reason != retention.ReasonKeptChain+" "+i2.ID {
			t.Errorf("backup %s retained for %q, want %q", r.ID, r.Reason, retention.ReasonKeptChain+" "+i2.ID)
		}
	}
	base, walLeft := left()
	if want := []string{f1.ID, i1.ID, i2.ID, f3.ID}; !reflect.DeepEqual(base, want) {
		t.Errorf("backups left %v, want %v", base, want)
	}
	if want := walKeys([]uint64{8, 9, 20, 21, 22, 23, 24}, f1, i1, i2, f3); !reflect.DeepEqual(walLeft, want) {
		t.Errorf("WAL left:\n got %v\nwant %v", walLeft, want)
	}

	// Released, the chain can go by id with its dependents, children first.
	mustGBC(t, st, "gbc-backup-keep", []string{"--release"}, retServer, i2.ID)
	if got, want := idsOf(report("--with-dependents", "--backup-id", f1.ID).Deleted), []string{i2.ID, i1.ID, f1.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("delete with dependents deleted %v, want %v", got, want)
	}
	base, walLeft = left()
	if want := []string{f3.ID}; !reflect.DeepEqual(base, want) {
		t.Errorf("backups left %v, want %v", base, want)
	}
	if want := walKeys([]uint64{20, 21, 22, 23, 24}, f3); !reflect.DeepEqual(walLeft, want) {
		t.Errorf("WAL left:\n got %v\nwant %v", walLeft, want)
	}
}

// A backup in progress (its STARTED record, which gbc-backup writes before
// pg_backup_start with a lower bound of its begin WAL) keeps every WAL from
// its begin on, even below the remaining DONE backups; once its record is
// older than --orphan-age it protects nothing.
func TestRetentionInProgressBackup(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) {
			st := harness.NewStore(t, provider)
			s := openRetStore(t, st)
			now := time.Now().UTC().Truncate(time.Second)
			for i := range 3 {
				synthBackup(t, s, now.Add(-time.Duration(3-i)*24*time.Hour), catalog.StatusDone, 1, uint64(10+10*i), uint64(11+10*i))
			}
			started := synthBackup(t, s, now.Add(-time.Minute), catalog.StatusStarted, 1, 15, 15)
			for n := uint64(1); n <= 40; n++ {
				retPut(t, s, retLayout.WALKey(retSeg(1, n), "zst"), "wal")
			}
			mustGBC(t, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
			left := map[string]bool{}
			for _, k := range listKeys(t, s, retLayout.WALRoot()) {
				left[k] = true
			}
			for n := uint64(1); n <= 40; n++ {
				k := retLayout.WALKey(retSeg(1, n), "zst")
				if want := n >= 15; left[k] != want {
					t.Errorf("WAL %d present %v, want %v (in-progress backup begins at 15)", n, left[k], want)
				}
			}
			if k := listKeys(t, s, retLayout.BackupRoot(started.ID)); len(k) != 4 {
				t.Errorf("backup in progress touched: %v", k)
			}
		})
	}
}

// BenchmarkRetentionCleanup measures the cleanup of a large WAL archive: N
// small WAL objects (GBC_BENCH_WAL, default 100,000) of which all but 1,000
// are obsolete, on each store of GBC_BENCH_STORES (default "file,s3"). Each
// iteration fills a fresh store (not timed) and times one gbc-backup-delete
// process, reported with its peak RSS (from /usr/bin/time -v when
// installed, else from the process's rusage) and its rate. It is a
// benchmark, not a test, so that the default suite never pays for it:
//
//	go test ./e2e -run '^$' -bench RetentionCleanup -benchtime 1x -timeout 2h -v
func BenchmarkRetentionCleanup(b *testing.B) {
	n := 100_000
	if v := os.Getenv("GBC_BENCH_WAL"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2000 {
			b.Fatalf("GBC_BENCH_WAL=%q: want a number of at least 2000", v)
		}
	}
	stores := "file,s3"
	if v := os.Getenv("GBC_BENCH_STORES"); v != "" {
		stores = v
	}
	for _, provider := range strings.Split(stores, ",") {
		b.Run(provider, func(b *testing.B) {
			var peakKiB int64
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				st, argv := fillRetentionBench(b, provider, n)
				b.StartTimer()
				e, peak := runRetentionBench(b, provider, st, argv)
				b.StopTimer()
				if left := len(listKeys(b, openRetStore(b, st), retLayout.WALRoot())); left != benchKeep {
					b.Errorf("%s: %d WAL objects left, want %d", provider, left, benchKeep)
				}
				elapsed += e
				peakKiB = max(peakKiB, peak)
			}
			b.ReportMetric(float64(peakKiB)/1024, "peak-RSS-MiB")
			b.ReportMetric(float64(b.N*(n-benchKeep))/elapsed.Seconds(), "WAL-deletes/s")
		})
	}
}

// benchKeep is how many WAL objects the benchmark's backup still needs.
const benchKeep = 1000

// fillRetentionBench stores one backup and n WAL objects in a new store
// of provider, and returns the store and the gbc-backup-delete command
// line to time.
func fillRetentionBench(b *testing.B, provider string, n int) (harness.Store, []string) {
	st := harness.NewStore(b, provider)
	s := openRetStore(b, st)
	now := time.Now().UTC().Truncate(time.Second)
	synthBackup(b, s, now.Add(-24*time.Hour), catalog.StatusDone, 1, uint64(n-benchKeep+1), uint64(n-benchKeep+1))

	// Fill the archive with many concurrent Puts: the store's latency,
	// not its bandwidth, is what bounds this.
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	body := strings.Repeat("w", 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				key := retLayout.WALKey(retSeg(1, uint64(i)), "zst")
				if err := s.Put(context.Background(), key, cloud.BytesBody([]byte(body)), cloud.PutOptions{}); err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	b.Logf("%s: stored %d WAL objects in %s", provider, n, time.Since(start).Round(time.Millisecond))
	return st, st.Argv(harness.Bin(b, "gbc-backup-delete"), []string{"--retention-policy", "REDUNDANCY 1"}, retServer)
}

// runRetentionBench runs gbc-backup-delete and returns its wall time and
// peak RSS in KiB.
func runRetentionBench(b *testing.B, provider string, st harness.Store, argv []string) (time.Duration, int64) {
	// /usr/bin/time -v, when installed, reports the peak RSS of the
	// command; without it, the command's own rusage says the same.
	timeTool, timeErr := exec.LookPath("time")
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		timeTool, timeErr = "/usr/bin/time", nil
	}
	if timeErr == nil {
		argv = append([]string{timeTool, "-v"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), st.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		b.Fatalf("gbc-backup-delete: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	// ru_maxrss is in KiB on Linux, as is time -v's "Maximum resident set
	// size (kbytes)".
	peakKiB := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	if timeErr == nil {
		peakKiB = 0
		for _, line := range strings.Split(stderr.String(), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes): "); ok {
				peakKiB, _ = strconv.ParseInt(v, 10, 64)
			}
			if strings.Contains(line, "Elapsed (wall clock)") {
				b.Logf("%s: time -v: %s", provider, strings.TrimSpace(line))
			}
		}
		if peakKiB == 0 {
			b.Fatalf("no peak RSS in the output of %s -v:\n%s", timeTool, stderr.String())
		}
	}
	b.Logf("%s: gbc-backup-delete in %s, peak RSS %.1f MiB\n%s",
		provider, elapsed.Round(time.Millisecond), float64(peakKiB)/1024, stdout.String())
	return elapsed, peakKiB
}

// retPrimary starts a PostgreSQL cluster archiving into st (1 MiB segments,
// so that a few switches make WAL worth deleting) with a marks table.
func retPrimary(t *testing.T, st harness.Store) *harness.Cluster {
	t.Helper()
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, retServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
	})
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	return pg
}

// retGBC runs a gbc command as PostgreSQL's user, as the DBA's cron job
// would, and returns stdout; a non-zero exit fails the test.
func retGBC(t *testing.T, pg *harness.Cluster, st harness.Store, cmd string, flags []string, pos ...string) string {
	t.Helper()
	out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, cmd), flags, pos...)...)
	if code != 0 {
		t.Fatalf("%s %v %v: exit %d\nstdout: %s\nstderr: %s", cmd, flags, pos, code, out, errOut)
	}
	return out
}

// retRestore restores backupID into a new directory, starts it, waits for
// the end of recovery, and returns the marks it holds.
func retRestore(t *testing.T, pg *harness.Cluster, st harness.Store, backupID string, flags ...string) string {
	t.Helper()
	dest := pg.NewEmptyDataDir(t)
	// The copy must not archive into the primary's prefix.
	flags = append([]string{"--disable-archiving"}, flags...)
	retGBC(t, pg, st, "gbc-restore", flags, retServer, backupID, dest)
	c := pg.StartFrom(t, dest, 0)
	c.WaitRecovered(t, 3*time.Minute)
	return c.QueryString(t, "SELECT coalesce(string_agg(mark, ',' ORDER BY mark), '') FROM marks")
}

// obsoleteByName is the expected outcome for one WAL object of a single
// timeline, worked out from names alone (on one timeline, segment names
// order as positions): obsolete before floor, except within the kept
// range; a .backup file of a deleted backup goes; history files stay.
func obsoleteByName(name, floor, keptBegin, keptEnd string, deletedBegins map[string]bool) bool {
	switch {
	case strings.HasSuffix(name, ".history"):
		return false
	case strings.HasSuffix(name, ".backup") && deletedBegins[name[:24]]:
		return true
	}
	seg := name[:24]
	return seg < floor && (seg < keptBegin || seg > keptEnd)
}

// TestRetentionPostgres takes four backups of a PostgreSQL 15 cluster with
// WAL between them, keeps the second standalone, applies REDUNDANCY 2, and
// checks that exactly the first backup and the WAL before the third one
// (outside the kept backup's range) are gone; then restores the oldest
// remaining backup to the latest point and the kept one to its end.
func TestRetentionPostgres(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) { testRetentionPostgres(t, harness.NewStore(t, provider)) })
	}
}

func testRetentionPostgres(t *testing.T, st harness.Store) {
	pg := retPrimary(t, st)
	s := openRetStore(t, st)
	ctx := context.Background()
	var ids []string
	for i := 1; i <= 4; i++ {
		pg.Exec(t, fmt.Sprintf("INSERT INTO marks VALUES ('before%d')", i))
		if len(ids) > 0 {
			time.Sleep(1100 * time.Millisecond) // ids are start times, to the second
		}
		ids = append(ids, strings.TrimSpace(retGBC(t, pg, st, "gbc-backup", nil, retServer)))
		pg.Exec(t, fmt.Sprintf("INSERT INTO marks VALUES ('after%d')", i))
		for range 3 { // WAL between backups
			pg.Exec(t, "INSERT INTO marks SELECT 'filler' || g || '-' || md5(random()::text) FROM generate_series(1, 2000) g")
			pg.Exec(t, "DELETE FROM marks WHERE mark LIKE 'filler%'")
			pg.SwitchWAL(t)
		}
	}
	pg.Exec(t, "INSERT INTO marks VALUES ('end')")
	pg.WaitArchived(t, pg.SwitchWAL(t), 2*time.Minute)
	allMarks := "after1,after2,after3,after4,before1,before2,before3,before4,end"

	recs := make([]*catalog.Backup, len(ids))
	for i, id := range ids {
		b, err := catalog.Load(ctx, s, retLayout, id)
		if err != nil || b.Status != catalog.StatusDone {
			t.Fatalf("backup %s: %+v, %v", id, b, err)
		}
		recs[i] = b
	}
	retGBC(t, pg, st, "gbc-backup-keep", []string{"--target", "standalone"}, retServer, ids[1])

	walBefore := listKeys(t, s, retLayout.WALRoot())
	baseBefore := map[string][]string{}
	for _, id := range ids {
		baseBefore[id] = listKeys(t, s, retLayout.BackupRoot(id))
	}
	out := retGBC(t, pg, st, "gbc-backup-delete", []string{"--retention-policy", "REDUNDANCY 2"}, retServer)
	t.Logf("gbc-backup-delete:\n%s", out)

	// Backups: the first is gone, the others untouched.
	if k := listKeys(t, s, retLayout.BackupRoot(ids[0])); len(k) != 0 {
		t.Errorf("first backup left %v", k)
	}
	for _, id := range ids[1:] {
		if got := listKeys(t, s, retLayout.BackupRoot(id)); !reflect.DeepEqual(got, baseBefore[id]) {
			t.Errorf("backup %s changed: %v, was %v", id, got, baseBefore[id])
		}
	}
	// WAL: exactly the expected objects are gone.
	after := map[string]bool{}
	for _, k := range listKeys(t, s, retLayout.WALRoot()) {
		after[k] = true
	}
	deletedBegins := map[string]bool{recs[0].BeginWAL: true}
	gone, gapGone := 0, false
	for _, k := range walBefore {
		name, _ := strings.CutSuffix(k[strings.LastIndexByte(k, '/')+1:], ".zst")
		want := obsoleteByName(name, recs[2].BeginWAL, recs[1].BeginWAL, recs[1].EndWAL, deletedBegins)
		if after[k] == want {
			t.Errorf("WAL %s: present %v, want present %v", k, after[k], !want)
		}
		if want {
			gone++
			if len(name) == 24 && name > recs[1].EndWAL && name < recs[2].BeginWAL {
				gapGone = true
			}
		}
	}
	if gone == 0 || !gapGone {
		t.Errorf("the test deleted no WAL between the kept backup and the next one (%d objects gone): it proves nothing", gone)
	}

	// The oldest remaining backup restores to the latest point; the kept
	// one to its end, with its own WAL only.
	if got := retRestore(t, pg, st, ids[2]); got != allMarks {
		t.Errorf("backup 3 restored to the end: marks %q, want %q", got, allMarks)
	}
	if got := retRestore(t, pg, st, ids[1], "--target-immediate", "--target-action", "promote"); got != "after1,before1,before2" {
		t.Errorf("kept backup 2 restored to its end: marks %q, want after1,before1,before2", got)
	}
}

// TestRetentionConcurrentBackup races gbc-backup-delete against a backup in
// progress. Backup A starts and, as soon as it says PostgreSQL named its
// begin WAL, is held still (SIGSTOP: a backup exactly as slow as the test
// needs, whatever the machine's speed); while it is held, a backup B
// completes and REDUNDANCY 1 runs; then A goes on. B begins after A, so
// without A's STARTED record the WAL between A's and B's begin would be
// obsolete, and A, once DONE, unrestorable. The test restores A.
func TestRetentionConcurrentBackup(t *testing.T) {
	st := harness.NewStore(t, "s3")
	pg := retPrimary(t, st)
	s := openRetStore(t, st)
	ctx := context.Background()
	// Enough data that A is still copying files when it is stopped: the
	// stop follows the begin within microseconds, the copy takes seconds.
	pg.PgBench(t, "-i", "-s", "10", "-q")
	pg.Exec(t, "INSERT INTO marks VALUES ('old')")
	old := strings.TrimSpace(retGBC(t, pg, st, "gbc-backup", []string{"--compression", "none"}, retServer))
	for range 3 {
		pg.SwitchWAL(t)
	}

	argv := st.Argv(harness.Bin(t, "gbc-backup"), []string{"--jobs", "1", "--name", "held"}, retServer)
	held := pg.Command(t, argv[0], argv[1:]...)
	var heldOut bytes.Buffer
	heldErr := &lineWatch{want: "backup started at WAL", seen: make(chan struct{})}
	held.Stdout, held.Stderr = &heldOut, heldErr
	if err := held.Start(); err != nil {
		t.Fatal(err)
	}
	heldDone := make(chan error, 1)
	go func() { heldDone <- held.Wait() }()
	t.Cleanup(func() {
		if held.ProcessState == nil {
			// SIGKILL ends a stopped process too.
			_ = syscall.Kill(-held.Process.Pid, syscall.SIGKILL)
			<-heldDone
		}
	})
	select {
	case <-heldErr.seen:
	case err := <-heldDone:
		t.Fatalf("backup A ended (%v) before saying where it begins: %s", err, heldErr)
	case <-time.After(2 * time.Minute):
		t.Fatalf("backup A did not say where it begins after 2 minutes: %s", heldErr)
	}
	if err := syscall.Kill(-held.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resume := func() {
		if err := syscall.Kill(-held.Process.Pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	var a *catalog.Backup
	all, err := catalog.List(ctx, s, retLayout)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.Name == "held" {
			a = b
		}
	}
	if a == nil || a.Status != catalog.StatusStarted || a.BeginWAL == "" {
		resume()
		t.Fatalf("backup A, held after pg_backup_start: record %+v, want STARTED with its begin WAL: %s", a, heldErr)
	}
	pg.Exec(t, "INSERT INTO marks VALUES ('during')")
	for range 3 {
		pg.SwitchWAL(t)
	}
	time.Sleep(1100 * time.Millisecond) // a distinct id
	fast := strings.TrimSpace(retGBC(t, pg, st, "gbc-backup", []string{"--compression", "none"}, retServer))

	out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup-delete"),
		[]string{"--format", "json", "--retention-policy", "REDUNDANCY 1"}, retServer)...)
	if code != 0 {
		t.Fatalf("gbc-backup-delete: exit %d: %s", code, errOut)
	}
	var rep prune.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	resume()
	inProgress := slices.ContainsFunc(rep.Retained, func(b prune.Backup) bool {
		return b.ID == a.ID && b.Status == string(catalog.StatusStarted) && b.Reason == retention.ReasonInProgress
	})
	if !inProgress {
		t.Errorf("backup A (%s), held in progress, is not retained as in progress: report %s", a.ID, out)
	}
	if len(rep.Deleted) != 1 || rep.Deleted[0].ID != old {
		t.Errorf("deleted %+v, want only the old backup %s", rep.Deleted, old)
	}
	if err := <-heldDone; err != nil {
		t.Fatalf("backup A: %v\n%s", err, heldErr)
	}
	id := strings.TrimSpace(heldOut.String())
	if id != a.ID {
		t.Fatalf("backup A printed %q, its STARTED record was %s", id, a.ID)
	}
	// The STARTED record first holds a lower bound of the begin WAL, then
	// the exact one: compare with what the DONE record says.
	aDone, err := catalog.Load(ctx, s, retLayout, id)
	if err != nil {
		t.Fatal(err)
	}
	fastRec, err := catalog.Load(ctx, s, retLayout, fast)
	if err != nil {
		t.Fatal(err)
	}
	if !(aDone.BeginWAL < fastRec.BeginWAL) {
		t.Fatalf("backup A begins at %s, not before B (%s): the test proves nothing", aDone.BeginWAL, fastRec.BeginWAL)
	}
	if rep.WAL.Floor > aDone.BeginWAL {
		t.Errorf("WAL floor %s is after the begin of the backup in progress %s", rep.WAL.Floor, aDone.BeginWAL)
	}
	between := 0
	for _, k := range listKeys(t, s, retLayout.WALRoot()) {
		name := k[strings.LastIndexByte(k, '/')+1:]
		if len(name) >= 24 && name[:24] >= aDone.BeginWAL && name[:24] < fastRec.BeginWAL {
			between++
		}
	}
	if between == 0 {
		t.Errorf("no WAL left between the begin of backup A (%s) and of B (%s)", aDone.BeginWAL, fastRec.BeginWAL)
	}
	pg.Exec(t, "INSERT INTO marks VALUES ('end')")
	pg.WaitArchived(t, pg.SwitchWAL(t), 2*time.Minute)
	if got := retRestore(t, pg, st, id); got != "during,end,old" {
		t.Errorf("backup A restored: marks %q, want during,end,old", got)
	}
}

// lineWatch collects a command's output, and closes seen once the output
// holds want: the test reacts to the line as it is written, not at the
// next turn of a polling loop.
type lineWatch struct {
	want string
	seen chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return n, err
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
