package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"google.golang.org/api/option"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// These tests check the harness itself: each server really starts, serves
// a real client, runs unprivileged, and is gone after its test.

func TestHarnessMinIO(t *testing.T) {
	srv := harness.SharedMinIO(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	c := srv.Client()
	want := []byte("hello from the harness")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b"), Body: bytes.NewReader(want)}); err != nil {
		t.Fatalf("put: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b")})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("get = %q, %v; want %q", got, err, want)
	}
	// A second bucket is a different, empty one.
	other := srv.NewBucket(t)
	if other == bucket {
		t.Fatalf("NewBucket returned %q twice", bucket)
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(other)})
	if err != nil || len(list.Contents) != 0 {
		t.Fatalf("new bucket: %d objects, %v; want empty", len(list.Contents), err)
	}
}

func TestHarnessAzurite(t *testing.T) {
	srv := harness.SharedAzurite(t)
	container := srv.NewContainer(t)
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := []byte("hello from the harness")
	if _, err := c.UploadBuffer(ctx, container, "a/b", want, nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	resp, err := c.DownloadStream(ctx, container, "a/b", nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("download = %q, %v; want %q", got, err, want)
	}
	if !strings.Contains(srv.ConnectionString, "BlobEndpoint="+srv.Endpoint) {
		t.Errorf("connection string %q does not name %s", srv.ConnectionString, srv.Endpoint)
	}
}

func TestHarnessFakeGCS(t *testing.T) {
	srv := harness.SharedFakeGCS(t)
	bucket := srv.NewBucket(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	c, err := storage.NewClient(ctx, option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []byte("hello from the harness")
	w := c.Bucket(bucket).Object("a/b").NewWriter(ctx)
	if _, err := w.Write(want); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("write: %v", err)
	}
	// The Go client reads over the XML API: this is what -public-host fixes.
	r, err := c.Bucket(bucket).Object("a/b").NewReader(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read = %q, %v; want %q", got, err, want)
	}
}

func TestHarnessStores(t *testing.T) {
	stores := harness.Stores(t)
	if len(stores) != len(harness.Providers) {
		t.Fatalf("Stores returned %d stores, want %d", len(stores), len(harness.Providers))
	}
	scheme := map[string]string{"file": "file:///", "s3": "s3://", "gcs": "gs://", "azure": "azblob://"}
	seen := map[string]bool{}
	for i, st := range stores {
		if st.Name != harness.Providers[i] {
			t.Errorf("store %d is %q, want %q", i, st.Name, harness.Providers[i])
		}
		if !strings.HasPrefix(st.URL, scheme[st.Name]) {
			t.Errorf("%s: URL %q, want scheme %s", st.Name, st.URL, scheme[st.Name])
		}
		if seen[st.URL] {
			t.Errorf("%s: URL %q returned twice", st.Name, st.URL)
		}
		seen[st.URL] = true
		if st.Name != "file" && (st.EndpointURL == "" || len(st.Env) == 0 || len(st.Args) != 2) {
			t.Errorf("%s: missing endpoint, env or args: %+v", st.Name, st)
		}
	}
	// The file store must be writable by the PostgreSQL user, which runs
	// archive_command.
	pg := harness.StartPostgres(t, harness.PGOptions{})
	out := pg.Run(t, "sh", "-c", "touch "+harness.ShellQuote(filepath.Join(stores[0].Bucket, "probe"))+" && id -un")
	if got := strings.TrimSpace(out); got != harness.PGUser(t) {
		t.Errorf("tool ran as %q, want %q", got, harness.PGUser(t))
	}
	argv := stores[1].Argv("gbc-wal-archive", []string{"-v"}, "main", "%p")
	want := []string{"gbc-wal-archive", "-v", "--endpoint-url", stores[1].EndpointURL, stores[1].URL, "main", "%p"}
	if strings.Join(argv, " ") != strings.Join(want, " ") {
		t.Errorf("Argv = %q, want %q", argv, want)
	}
	if got := harness.ShellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("ShellQuote = %s", got)
	}
}

func TestHarnessPostgres(t *testing.T) {
	archive := harness.TempDir(t)
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   "test ! -f " + archive + "/%f && cp %p " + archive + "/%f && echo \"$GBC_HARNESS_PROBE\" > " + archive + "/probe",
		WALSegmentSizeMB: 1,
		DataChecksums:    true,
		Settings:         map[string]string{"application_name": "harness's test"},
		Env:              []string{"GBC_HARNESS_PROBE=42"},
	})
	if pg.Version < 15 {
		t.Errorf("PostgreSQL %d, want 15 or later", pg.Version)
	}
	// It runs unprivileged, and owns its data directory.
	st, err := os.Stat(pg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; os.Geteuid() == 0 && uid == 0 {
		t.Errorf("data directory owned by root")
	}
	pid := postmasterPID(t, pg.DataDir)
	if uid := procUID(t, pid); uid == 0 {
		t.Errorf("postmaster %d runs as root", pid)
	}
	if got := pg.QueryString(t, "SHOW application_name"); got != "harness's test" {
		t.Errorf("application_name = %q", got)
	}
	if got := pg.QueryString(t, "SHOW data_checksums"); got != "on" {
		t.Errorf("data_checksums = %q", got)
	}
	if got := pg.QueryString(t, "SHOW wal_segment_size"); got != "1MB" {
		t.Errorf("wal_segment_size = %q", got)
	}
	if got := pg.QueryString(t, "SELECT current_setting('archive_mode')"); got != "on" {
		t.Errorf("archive_mode = %q", got)
	}
	pg.Exec(t, "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)")
	if n := pg.QueryInt(t, "SELECT count(*) FROM t WHERE x > $1", 500); n != 500 {
		t.Errorf("count = %d", n)
	}
	var sum int64
	if err := pg.QueryRow(t, "SELECT sum(x) FROM t").Scan(&sum); err != nil || sum != 500500 {
		t.Errorf("sum = %d, %v", sum, err)
	}
	seg := pg.SwitchWAL(t)
	if len(seg) != 24 {
		t.Fatalf("SwitchWAL = %q", seg)
	}
	pg.WaitArchived(t, seg, time.Minute)
	if _, err := os.Stat(filepath.Join(archive, seg)); err != nil {
		t.Errorf("archived segment: %v", err)
	}
	// PGOptions.Env reaches archive_command (store credentials do so).
	if b, err := os.ReadFile(filepath.Join(archive, "probe")); err != nil || string(b) != "42\n" {
		t.Errorf("archive_command's environment: %q, %v", b, err)
	}
	// A second switch completes a later segment.
	if seg2 := pg.SwitchWAL(t); seg2 <= seg {
		t.Errorf("second SwitchWAL = %s, not after %s", seg2, seg)
	}

	pg.PgBench(t, "-i", "-s", "1", "-q")
	pg.PgBench(t, "-c", "2", "-t", "50", "-n")
	if n := pg.QueryInt(t, "SELECT count(*) FROM pgbench_accounts"); n != 100000 {
		t.Errorf("pgbench_accounts has %d rows", n)
	}
	out := pg.Run(t, "sh", "-c", `echo "$GBC_HARNESS_PROBE $PGPORT $(id -u)"`)
	if f := strings.Fields(out); len(f) != 3 || f[0] != "42" || f[1] != strconv.Itoa(pg.Port) || (os.Geteuid() == 0 && f[2] == "0") {
		t.Errorf("tool environment: %q", out)
	}
	pg.Exec(t, "CREATE EXTENSION amcheck")
	pg.Run(t, "pg_amcheck", "--all", "--heapallindexed")

	pg.Restart(t)
	if n := pg.QueryInt(t, "SELECT count(*) FROM t"); n != 1000 {
		t.Errorf("after restart: %d rows", n)
	}
	pg.Kill(t)
	if pg.Running() {
		t.Fatal("still running after Kill")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postmaster %d still exists after Kill: %v", pid, err)
	}
	pg.Start(t) // crash recovery
	if n := pg.QueryInt(t, "SELECT count(*) FROM t"); n != 1000 {
		t.Errorf("after crash: %d rows", n)
	}
}

// TestHarnessPostgresRestore takes a base backup with pg_basebackup into
// NewEmptyDataDir and starts it with StartFrom, as restore tests do with
// gbc-restore.
func TestHarnessPostgresRestore(t *testing.T) {
	pg := harness.StartPostgres(t, harness.PGOptions{})
	pg.Exec(t, "CREATE TABLE t AS SELECT generate_series(1, 100) AS x")
	dest := pg.NewEmptyDataDir(t)
	pg.Run(t, "pg_basebackup", "-D", dest, "-X", "stream", "-c", "fast")
	pg.Run(t, "pg_verifybackup", "-n", dest)
	// Files written by root (as gbc-restore run by RunGBC would) are
	// given to the PostgreSQL user by StartFrom.
	if err := os.WriteFile(filepath.Join(dest, "root_wrote_this"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "INSERT INTO t VALUES (101)") // not in the copy
	clone := pg.StartFrom(t, dest, 0)
	if clone.Port == pg.Port {
		t.Fatalf("copy listens on the original's port %d", pg.Port)
	}
	if n := clone.QueryInt(t, "SELECT count(*) FROM t"); n != 100 {
		t.Errorf("copy has %d rows, want 100", n)
	}
	if n := pg.QueryInt(t, "SELECT count(*) FROM t"); n != 101 {
		t.Errorf("original has %d rows, want 101", n)
	}
	if got := clone.QueryString(t, "SHOW data_directory"); got != dest {
		t.Errorf("copy's data_directory = %q, want %q", got, dest)
	}
}

// TestHarnessRunGBC checks RunGBC's contract with a stand-in command, so
// that it does not depend on the gbc build.
func TestHarnessRunGBC(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := harness.RunGBC(t, []string{"GBC_X=1"}, sh, "-c", `echo "out $GBC_X"; echo err >&2; exit 3`)
	if stdout != "out 1\n" || stderr != "err\n" || code != 3 {
		t.Errorf("RunGBC = %q, %q, %d", stdout, stderr, code)
	}
	dir := harness.TempDir(t)
	r := harness.RunGBCWith(t, harness.RunOptions{Dir: dir, Stdin: strings.NewReader("in"), AsPG: true},
		sh, "-c", `cat; echo " $(pwd) $(id -un)"`)
	if want := "in " + dir + " " + harness.PGUser(t) + "\n"; r.Stdout != want || r.ExitCode != 0 {
		t.Errorf("RunGBCWith = %q, %d; want %q", r.Stdout, r.ExitCode, want)
	}
	if r.MaxRSSKiB <= 0 || r.Elapsed <= 0 {
		t.Errorf("RunGBCWith: peak RSS %d KiB, elapsed %v", r.MaxRSSKiB, r.Elapsed)
	}
	pg := harness.StartPostgres(t, harness.PGOptions{Env: []string{"GBC_Y=2"}})
	stdout, _, code = pg.RunGBC(t, nil, sh, "-c", `echo "$(id -un) $GBC_Y $PGPORT"`)
	want := fmt.Sprintf("%s 2 %d\n", harness.PGUser(t), pg.Port)
	if stdout != want || code != 0 {
		t.Errorf("Cluster.RunGBC = %q, %d; want %q", stdout, code, want)
	}
}

// TestHarnessCleanup checks that dedicated servers, Azurite (which ignores
// SIGTERM) included, are gone with their files once their test ends.
func TestHarnessCleanup(t *testing.T) {
	type leftover struct {
		name string
		dir  string
		port string
	}
	var left []leftover
	t.Run("start", func(t *testing.T) {
		m := harness.StartMinIO(t)
		a := harness.StartAzurite(t)
		g := harness.StartFakeGCS(t)
		pg := harness.StartPostgres(t, harness.PGOptions{})
		left = []leftover{
			{"minio", m.Dir, m.Endpoint[strings.LastIndex(m.Endpoint, ":")+1:]},
			{"azurite", a.Dir, strings.Split(a.Endpoint[strings.LastIndex(a.Endpoint, ":")+1:], "/")[0]},
			{"fake-gcs-server", "", g.Host[strings.LastIndex(g.Host, ":")+1:]},
			{"postgres", filepath.Dir(pg.DataDir), strconv.Itoa(pg.Port)},
		}
	})
	for _, l := range left {
		if l.dir != "" {
			if _, err := os.Stat(l.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %s still exists (%v)", l.name, l.dir, err)
			}
		}
		// Nothing listens on the port any more.
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+l.port, time.Second); err == nil {
			c.Close()
			t.Errorf("%s: port %s still accepts connections", l.name, l.port)
		}
	}
}

func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func procUID(t *testing.T, pid int) uint32 {
	t.Helper()
	st, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Uid
}

// TestHarnessNoSkips enforces the rule that an end-to-end test never skips:
// in CI a skipped test is a failure, so a missing server or tool must fail
// (the harness does), and an opt-in measurement belongs in a Benchmark
// function, not in a Test that skips.
func TestHarnessNoSkips(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files found (%v)", err)
	}
	skip := regexp.MustCompile(`\.(` + "Skip" + `|` + "Skipf" + `|` + "SkipNow" + `)\(`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if skip.MatchString(line) {
				t.Errorf("%s:%d: end-to-end tests must not skip: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}
