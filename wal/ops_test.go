package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

const testSegSize = MinSegmentSize // 1 MiB segments keep the tests quick

var testLayout = catalog.Layout{Server: "main"}

// testStore is a file:// store in a temporary directory, with an opener
// that counts how often the operations asked for it.
type testStore struct {
	url   string
	opens atomic.Int32
}

func newTestStore(t *testing.T) *testStore {
	return &testStore{url: "file://" + t.TempDir()}
}

func (s *testStore) open(ctx context.Context) (cloud.Store, error) {
	s.opens.Add(1)
	return cloud.Open(ctx, s.url, cloud.Options{})
}

func (s *testStore) store(t *testing.T) cloud.Store {
	t.Helper()
	st, err := cloud.Open(context.Background(), s.url, cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// keys lists every key under the server's WAL area.
func (s *testStore) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	if err := s.store(t).List(context.Background(), testLayout.WALRoot(), func(a cloud.Attrs) error {
		keys = append(keys, a.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func noOpen(t *testing.T) Opener {
	return func(context.Context) (cloud.Store, error) {
		t.Error("the store was opened, but the call should have been answered locally")
		return nil, errors.New("no store")
	}
}

// walContent is WAL-like data: compressible, and different per seed.
func walContent(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := 0; i < size; i += 64 {
		v := r.Uint64()
		for j := i; j < i+8 && j < size; j++ {
			b[j] = byte(v >> (8 * (j - i)))
		}
	}
	return b
}

// segContent is walContent that starts with the long page header of
// segment name, as a real segment of size bytes does.
func segContent(t *testing.T, name string, size int, seed uint64) []byte {
	t.Helper()
	b := walContent(size, seed)
	n := mustName(t, name)
	start, err := n.StartLSN(int64(size))
	if err != nil {
		t.Fatal(err)
	}
	stampHeader(b, n.TLI, start, uint32(size))
	return b
}

// stampHeader writes a long page header (XLogLongPageHeaderData) at the
// start of b.
func stampHeader(b []byte, tli uint32, pageAddr uint64, segSize uint32) {
	binary.LittleEndian.PutUint16(b[0:], 0xD110) // PostgreSQL 15
	binary.LittleEndian.PutUint16(b[2:], xlpLongHeader)
	binary.LittleEndian.PutUint32(b[4:], tli)
	binary.LittleEndian.PutUint64(b[8:], pageAddr)
	binary.LittleEndian.PutUint64(b[24:], 7441000000000000000)
	binary.LittleEndian.PutUint32(b[32:], segSize)
	binary.LittleEndian.PutUint32(b[36:], 8192)
}

// pgWAL makes a pg_wal directory with archive_status.
func pgWAL(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeSegment writes segment name with content of seed and marks it .ready.
func writeSegment(t *testing.T, dir, name string, size int, seed uint64) []byte {
	t.Helper()
	data := segContent(t, name, size, seed)
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "archive_status", name+".ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return data
}

func mustName(t *testing.T, s string) Name {
	t.Helper()
	n, err := ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func codec(t *testing.T, name string) compress.Codec {
	c, err := compress.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func archiveOpts(c compress.Codec) ArchiveOptions {
	return ArchiveOptions{Codec: c, MaxParallel: 1, Target: "test"}
}

func restoreTo(t *testing.T, st *testStore, name, dest string, opts RestoreOptions) (RestoreResult, error) {
	t.Helper()
	opts.Target = "test"
	return Restore(context.Background(), st.open, testLayout, mustName(t, name), dest, opts)
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: content differs from what was archived (%d bytes, want %d)", path, len(got), len(want))
	}
}

// onlyFiles fails unless dir holds exactly names.
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	sort.Strings(names)
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

func TestArchiveRestoreEveryCodecAndKind(t *testing.T) {
	ctx := context.Background()
	files := map[string][]byte{
		"000000010000000000000003":                 segContent(t, "000000010000000000000003", testSegSize, 1),
		"000000010000000000000004.partial":         segContent(t, "000000010000000000000004", testSegSize, 2),
		"000000010000000000000002.00000028.backup": []byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"),
		"00000002.history":                         []byte("1\t0/3000158\tno recovery target specified\n"),
	}
	for _, cname := range compress.Names() {
		t.Run(cname, func(t *testing.T) {
			st := newTestStore(t)
			src := t.TempDir()
			for name, data := range files {
				path := filepath.Join(src, name)
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				res, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, cname)))
				if err != nil || res.AlreadyStored || res.FromMarker {
					t.Fatalf("Archive(%s) = %+v, %v", name, res, err)
				}
			}
			for _, key := range st.keys(t) {
				if _, c := compress.SplitKey(key); c.Name() != cname {
					t.Errorf("stored %s with codec %s, want %s", key, c.Name(), cname)
				}
			}
			dest := t.TempDir()
			for name, data := range files {
				to := filepath.Join(dest, "RECOVERYXLOG")
				res, err := restoreTo(t, st, name, to, RestoreOptions{})
				if err != nil {
					t.Fatalf("Restore(%s): %v", name, err)
				}
				if res.Size != int64(len(data)) || res.FromSpool || res.FromPartial {
					t.Errorf("Restore(%s) = %+v", name, res)
				}
				checkFile(t, to, data)
				a, err := st.store(t).Stat(ctx, res.Key)
				if err != nil {
					t.Fatal(err)
				}
				if a.Metadata[MetaSize] != fmt.Sprint(len(data)) || len(a.Metadata[MetaSHA256]) != 64 {
					t.Errorf("%s metadata = %v", res.Key, a.Metadata)
				}
			}
			onlyFiles(t, dest, "RECOVERYXLOG")
		})
	}
}

func TestArchiveDuplicateAndConflict(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	dir := t.TempDir()
	name := "000000010000000000000007"
	path := filepath.Join(dir, name)
	orig := segContent(t, name, testSegSize, 7)
	os.WriteFile(path, orig, 0o600)
	if _, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, "zstd"))); err != nil {
		t.Fatal(err)
	}
	before := st.keys(t)

	// The same content again, even with another codec: accepted, nothing
	// new stored (the crash-between-upload-and-.done case).
	for _, c := range []string{"zstd", "lz4", "none"} {
		res, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, c)))
		if err != nil || !res.AlreadyStored {
			t.Fatalf("duplicate push with %s = %+v, %v", c, res, err)
		}
	}

	// Different content: refused whatever the codec, object untouched.
	other := segContent(t, name, testSegSize, 8)
	os.WriteFile(path, other, 0o600)
	for _, c := range []string{"zstd", "gzip"} {
		_, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, c)))
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("conflicting push with %s: %v, want ErrConflict", c, err)
		}
		if !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("conflict message should name the file on one line: %q", err)
		}
	}
	if after := st.keys(t); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("keys changed: %v, then %v", before, after)
	}
	to := filepath.Join(t.TempDir(), "x")
	if _, err := restoreTo(t, st, name, to, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, to, orig)
}

func TestArchiveComparesObjectsWithoutChecksum(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	name := "000000010000000000000009"
	data := segContent(t, name, testSegSize, 9)
	// As another tool would store it: no gbc metadata.
	if err := st.store(t).Put(ctx, testLayout.WALKey(name, ""), cloud.BytesBody(data), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	os.WriteFile(path, data, 0o600)
	if res, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, "zstd"))); err != nil || !res.AlreadyStored {
		t.Fatalf("identical push over an object without checksum = %+v, %v", res, err)
	}
	os.WriteFile(path, segContent(t, name, testSegSize, 10), 0o600)
	if _, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, "zstd"))); !errors.Is(err, ErrConflict) {
		t.Fatalf("different push over an object without checksum: %v", err)
	}
}

func TestArchiveRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	dir := t.TempDir()
	short := filepath.Join(dir, "00000001000000000000000A")
	os.WriteFile(short, make([]byte, 12345), 0o600)
	if _, err := Archive(ctx, st.open, testLayout, short, archiveOpts(codec(t, "zstd"))); err == nil || !strings.Contains(err.Error(), "not a WAL segment size") {
		t.Fatalf("truncated segment: %v", err)
	}
	bad := filepath.Join(dir, "RECOVERYXLOG")
	os.WriteFile(bad, make([]byte, testSegSize), 0o600)
	if _, err := Archive(ctx, st.open, testLayout, bad, archiveOpts(codec(t, "zstd"))); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := Archive(ctx, st.open, testLayout, filepath.Join(dir, "00000001000000000000000B"), archiveOpts(codec(t, "zstd"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if keys := st.keys(t); len(keys) != 0 {
		t.Fatalf("stored %v", keys)
	}
}

// TestArchiveLargeSegment exercises the on-the-fly compression used for
// segments too large to buffer, including a rewind as a retry does.
func TestArchiveLargeSegment(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	name := "000000010000000000000011"
	path := filepath.Join(t.TempDir(), name)
	data := segContent(t, name, 4<<20, 11)
	os.WriteFile(path, data, 0o600)
	store, _ := st.open(ctx)
	p := pusher{store: flakyPut{Store: store}, layout: testLayout, codec: codec(t, "zstd"), log: orNop(nil), bufLimit: 1 << 20}
	if _, err := p.push(ctx, path, mustName(t, name)); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(t.TempDir(), "x")
	if _, err := restoreTo(t, st, name, to, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	checkFile(t, to, data)
}

// flakyPut fails every Put once after reading part of the body, then
// rewinds it as the store's retry wrapper does.
type flakyPut struct{ cloud.Store }

func (f flakyPut) Put(ctx context.Context, key string, r cloud.Body, opts cloud.PutOptions) error {
	if _, err := io.CopyN(io.Discard, r, 1000); err != nil {
		return err
	}
	if err := r.Rewind(); err != nil {
		return fmt.Errorf("rewind: %v", err)
	}
	return f.Store.Put(ctx, key, r, opts)
}

func TestRestoreMissing(t *testing.T) {
	st := newTestStore(t)
	dest := t.TempDir()
	for _, name := range []string{"000000010000000000000001", "00000005.history", "000000010000000000000001.partial"} {
		_, err := restoreTo(t, st, name, filepath.Join(dest, "RECOVERYXLOG"), RestoreOptions{})
		if !errors.Is(err, ErrNotArchived) {
			t.Fatalf("Restore(%s) = %v, want ErrNotArchived", name, err)
		}
	}
	onlyFiles(t, dest)
}

func TestRestoreMissingBucketIsNotAbsence(t *testing.T) {
	missing := &testStore{url: "file://" + filepath.Join(t.TempDir(), "nope")}
	dest := t.TempDir()
	_, err := restoreTo(t, missing, "000000010000000000000001", filepath.Join(dest, "RECOVERYXLOG"), RestoreOptions{})
	if err == nil || errors.Is(err, ErrNotArchived) {
		t.Fatalf("restore from a missing store root = %v, want an error other than ErrNotArchived", err)
	}
	onlyFiles(t, dest)
}

func TestRestorePartial(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	src := t.TempDir()
	partial := segContent(t, "00000001000000000000000C", testSegSize, 12)
	os.WriteFile(filepath.Join(src, "00000001000000000000000C.partial"), partial, 0o600)
	if _, err := Archive(ctx, st.open, testLayout, filepath.Join(src, "00000001000000000000000C.partial"), archiveOpts(codec(t, "zstd"))); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	to := filepath.Join(dest, "RECOVERYXLOG")
	res, err := restoreTo(t, st, "00000001000000000000000C", to, RestoreOptions{})
	if err != nil || !res.FromPartial {
		t.Fatalf("Restore with a .partial = %+v, %v", res, err)
	}
	checkFile(t, to, partial)
	os.Remove(to)
	if _, err := restoreTo(t, st, "00000001000000000000000C", to, RestoreOptions{NoPartial: true}); !errors.Is(err, ErrNotArchived) {
		t.Fatalf("Restore with NoPartial = %v", err)
	}
	onlyFiles(t, dest)
}

func TestRestoreDetectsDamage(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	name := "00000001000000000000000D"
	good := segContent(t, name, testSegSize, 13)
	path := filepath.Join(t.TempDir(), name)
	os.WriteFile(path, good, 0o600)
	if _, err := Archive(ctx, st.open, testLayout, path, archiveOpts(codec(t, "zstd"))); err != nil {
		t.Fatal(err)
	}
	// Replace the object by other content under the original metadata.
	key := testLayout.WALKey(name, "zst")
	a, err := st.store(t).Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, _ := codec(t, "zstd").NewWriter(&buf, 0)
	zw.Write(segContent(t, name, testSegSize, 14))
	zw.Close()
	st.store(t).Delete(ctx, key)
	if err := st.store(t).Put(ctx, key, cloud.BytesBody(buf.Bytes()), cloud.PutOptions{Metadata: a.Metadata}); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	_, err = restoreTo(t, st, name, filepath.Join(dest, "RECOVERYXLOG"), RestoreOptions{})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Restore of a damaged object = %v, want ErrChecksum", err)
	}
	onlyFiles(t, dest)
}

// startInProcess is a StartPusher that runs PushAhead in a goroutine, as
// gbc-wal-archive runs it in a detached process; the names it stored come
// out of the channel.
func startInProcess(t *testing.T, st *testStore, dir string, opts ArchiveOptions) (func(Name) error, <-chan []string) {
	out := make(chan []string, 1)
	return func(after Name) error {
		go func() {
			got, err := PushAhead(context.Background(), st.open, testLayout, dir, after, PushAheadOptions{
				Codec: opts.Codec, Jobs: opts.MaxParallel - 1, Target: opts.Target, Idle: 100 * time.Millisecond,
			})
			if err != nil {
				t.Errorf("PushAhead: %v", err)
			}
			sort.Strings(got)
			out <- got
		}()
		return nil
	}, out
}

func TestLookAhead(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	dir := pgWAL(t)
	names := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003",
		"000000010000000000000004", "000000010000000000000005"}
	data := map[string][]byte{}
	for i, n := range names {
		data[n] = writeSegment(t, dir, n, testSegSize, uint64(i))
	}
	// A history file and an unrelated file are not pushed ahead.
	os.WriteFile(filepath.Join(dir, "archive_status", "00000002.history.ready"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "00000002.history"), []byte("1\t0/1\tx\n"), 0o600)

	opts := archiveOpts(codec(t, "zstd"))
	opts.MaxParallel = 4
	var stored <-chan []string
	opts.StartPusher, stored = startInProcess(t, st, dir, opts)
	res, err := Archive(ctx, st.open, testLayout, filepath.Join(dir, names[0]), opts)
	if err != nil || !res.StartedPusher {
		t.Fatalf("first call = %+v, %v; want a pusher started", res, err)
	}
	if got := <-stored; strings.Join(got, ",") != strings.Join(names[1:], ",") {
		t.Fatalf("pushed ahead %v, want %v", got, names[1:])
	}
	if got := len(st.keys(t)); got != len(names) {
		t.Fatalf("store holds %d objects, want %d", got, len(names))
	}
	for _, n := range names[1:] {
		if _, err := os.Stat(filepath.Join(dir, markerDir, n)); err != nil {
			t.Fatalf("no marker for %s: %v", n, err)
		}
	}

	// PostgreSQL's call for a segment pushed ahead: answered without the store.
	res, err = Archive(ctx, noOpen(t), testLayout, filepath.Join(dir, names[1]), opts)
	if err != nil || !res.FromMarker {
		t.Fatalf("call for a segment pushed ahead = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, markerDir, names[1])); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker not consumed: %v", err)
	}

	// A segment changed on disk since it was pushed is not vouched for:
	// the usual push finds the conflict.
	os.WriteFile(filepath.Join(dir, names[2]), segContent(t, names[2], testSegSize, 99), 0o600)
	if _, err := Archive(ctx, st.open, testLayout, filepath.Join(dir, names[2]), opts); !errors.Is(err, ErrConflict) {
		t.Fatalf("changed segment: %v, want ErrConflict", err)
	}

	// A marker written for another store is not trusted.
	other := opts
	other.Target = "another store"
	other.MaxParallel = 1
	opens := st.opens.Load()
	res, err = Archive(ctx, st.open, testLayout, filepath.Join(dir, names[3]), other)
	if err != nil || res.FromMarker || !res.AlreadyStored || st.opens.Load() != opens+1 {
		t.Fatalf("marker of another store = %+v, %v", res, err)
	}
	for _, n := range names[:4] {
		to := filepath.Join(t.TempDir(), "x")
		if _, err := restoreTo(t, st, n, to, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		checkFile(t, to, data[n])
	}
}

// twoReady writes the first two segments of timeline 1 into dir, .ready.
func twoReady(t *testing.T, dir string) (Name, Name) {
	t.Helper()
	n0, n1 := mustName(t, "000000010000000000000001"), mustName(t, "000000010000000000000002")
	writeSegment(t, dir, n0.String(), testSegSize, 1)
	writeSegment(t, dir, n1.String(), testSegSize, 2)
	return n0, n1
}

// holdPusher plays a running pusher on dir: it holds the lock and records
// state, until the returned function is called.
func holdPusher(t *testing.T, dir string, state pusherState) (release func()) {
	t.Helper()
	md := filepath.Join(dir, markerDir)
	os.MkdirAll(md, 0o700)
	lock, err := os.Create(filepath.Join(md, pusherLockFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := lockFile(lock); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(state)
	if err := os.WriteFile(filepath.Join(md, pusherStateFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() { lock.Close() }
}

// A call whose segment a running pusher covers waits for its marker; one
// it does not cover, or whose pusher stops without a marker, pushes itself.
func TestArchiveWaitsForPusher(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	dir := pgWAL(t)
	n0, n1 := twoReady(t, dir)
	opts := archiveOpts(codec(t, "zstd"))
	la := lookAhead{dir: dir, identity: markerIdentity(opts.Target, testLayout), log: orNop(nil)}

	release := holdPusher(t, dir, pusherState{After: n0.String(), Identity: la.identity})
	const delay = 200 * time.Millisecond
	go func() {
		time.Sleep(delay)
		fp, size, err := fingerprintFile(filepath.Join(dir, n1.String()))
		if err == nil {
			err = la.mark(n1, pushed{fingerprint: fp, size: size})
		}
		if err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	res, err := Archive(ctx, noOpen(t), testLayout, filepath.Join(dir, n1.String()), opts)
	if err != nil || !res.FromMarker || time.Since(start) < delay {
		t.Fatalf("call covered by a running pusher = %+v, %v after %s; want it answered by the marker after waiting", res, err, time.Since(start))
	}

	// Not covered (the pusher works after n1): no waiting, a push here.
	release()
	release = holdPusher(t, dir, pusherState{After: n1.String(), Identity: la.identity})
	start = time.Now()
	res, err = Archive(ctx, st.open, testLayout, filepath.Join(dir, n1.String()), opts)
	if err != nil || res.FromMarker || time.Since(start) > pusherWait/2 {
		t.Fatalf("call not covered by the pusher = %+v, %v after %s", res, err, time.Since(start))
	}

	// Covered, but the pusher stops without storing it: a push here.
	release()
	release = holdPusher(t, dir, pusherState{After: n0.String(), Identity: la.identity})
	time.AfterFunc(delay, release)
	res, err = Archive(ctx, st.open, testLayout, filepath.Join(dir, n1.String()), opts)
	if err != nil || res.FromMarker || !res.AlreadyStored {
		t.Fatalf("call after the pusher stopped = %+v, %v", res, err)
	}
}

func TestLookAheadStaleMarkers(t *testing.T) {
	dir := pgWAL(t)
	la := lookAhead{dir: dir, identity: "x", log: orNop(nil)}
	n1, n2 := mustName(t, "000000010000000000000001"), mustName(t, "000000010000000000000002")
	writeSegment(t, dir, n1.String(), testSegSize, 1)
	fp, size, _ := fingerprintFile(filepath.Join(dir, n1.String()))
	done := pushed{fingerprint: fp, size: size}
	if err := la.mark(n1, done); err != nil {
		t.Fatal(err)
	}
	if err := la.mark(n2, pushed{fingerprint: fp, size: 1}); err != nil { // its segment is gone
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, markerDir, ".leftover123"), nil, 0o600)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(dir, markerDir, ".leftover123"), old, old)
	la.clean()
	onlyFiles(t, filepath.Join(dir, markerDir), n1.String())

	// Too old to be trusted.
	la.now = func() time.Time { return time.Now().Add(markerMaxAge + time.Minute) }
	if la.check(n1) == markerTrusted {
		t.Fatal("an expired marker was trusted")
	}
	la.now = nil
	if err := la.mark(n1, done); err != nil {
		t.Fatal(err)
	}
	if la.check(n1) != markerTrusted {
		t.Fatal("a fresh marker was not trusted")
	}
}

// archiveSeries stores count segments from the first, returning their content.
func archiveSeries(t *testing.T, st *testStore, first string, count int) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	data := map[string][]byte{}
	n := mustName(t, first)
	for i := range count {
		path := filepath.Join(dir, n.String())
		data[n.String()] = segContent(t, n.String(), testSegSize, uint64(100+i))
		os.WriteFile(path, data[n.String()], 0o600)
		if _, err := Archive(context.Background(), st.open, testLayout, path, archiveOpts(codec(t, "zstd"))); err != nil {
			t.Fatal(err)
		}
		n, _ = n.Next(testSegSize)
	}
	return data
}

func TestPrefetch(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	data := archiveSeries(t, st, "0000000100000000000000FE", 6)
	dir := pgWAL(t)
	dest := filepath.Join(dir, "RECOVERYXLOG")
	first := mustName(t, "0000000100000000000000FE")

	if _, err := restoreTo(t, st, first.String(), dest, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if !ShouldPrefetch(dest, first, testSegSize, 3, "test", testLayout) {
		t.Fatal("ShouldPrefetch = false with an empty spool")
	}
	popts := PrefetchOptions{Count: 3, Jobs: 2, Target: "test"}
	got, err := Prefetch(ctx, st.open, testLayout, dest, first, testSegSize, popts)
	if err != nil || len(got) != 3 {
		t.Fatalf("Prefetch = %v, %v", got, err)
	}
	if ShouldPrefetch(dest, first, testSegSize, 3, "test", testLayout) {
		t.Fatal("ShouldPrefetch = true with a full spool")
	}

	// The next call is served from the spool, without the store.
	n := first
	for range 2 {
		n, _ = n.Next(testSegSize)
		res, err := Restore(ctx, noOpen(t), testLayout, n, dest, RestoreOptions{Target: "test"})
		if err != nil || !res.FromSpool {
			t.Fatalf("Restore(%s) = %+v, %v", n, res, err)
		}
		checkFile(t, dest, data[n.String()])
	}
	// A damaged spool file is not used: the store serves the segment.
	n, _ = n.Next(testSegSize)
	entries, _ := os.ReadDir(SpoolDir(dest))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.String()+".") {
			os.WriteFile(filepath.Join(SpoolDir(dest), e.Name()), walContent(testSegSize, 1), 0o600)
		}
	}
	res, err := restoreTo(t, st, n.String(), dest, RestoreOptions{})
	if err != nil || res.FromSpool {
		t.Fatalf("Restore of a damaged spool file = %+v, %v", res, err)
	}
	checkFile(t, dest, data[n.String()])

	// Prefetching stops at the end of the archive.
	got, err = Prefetch(ctx, st.open, testLayout, dest, n, testSegSize, PrefetchOptions{Count: 5, Jobs: 1, Target: "test"})
	if err != nil || len(got) != 2 {
		t.Fatalf("Prefetch at the end of the archive = %v, %v", got, err)
	}
	// A restore for another store ignores (and empties) the spool.
	n, _ = n.Next(testSegSize)
	res, err = Restore(ctx, st.open, testLayout, n, dest, RestoreOptions{Target: "another"})
	if err != nil || res.FromSpool {
		t.Fatalf("Restore for another store = %+v, %v", res, err)
	}
	// Segments older than the one asked for are removed from the spool.
	Prefetch(ctx, st.open, testLayout, dest, first, testSegSize, PrefetchOptions{Count: 5, Jobs: 2, Target: "test"})
	last := mustName(t, "000000010000000000000103")
	if _, err := restoreTo(t, st, last.String(), dest, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range mustReadDir(t, SpoolDir(dest)) {
		if n, _, ok := spoolEntry(e.Name()); ok {
			t.Errorf("spool still holds %s after %s was asked for", n, last)
		}
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestPrefetchLock(t *testing.T) {
	st := newTestStore(t)
	archiveSeries(t, st, "000000010000000000000001", 3)
	dest := filepath.Join(pgWAL(t), "RECOVERYXLOG")
	sp := newSpool(dest, "test", testLayout, nil)
	os.MkdirAll(sp.dir, 0o700)
	lock, _ := os.Create(filepath.Join(sp.dir, spoolLock))
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		t.Fatal(err)
	}
	first := mustName(t, "000000010000000000000001")
	if ShouldPrefetch(dest, first, testSegSize, 2, "test", testLayout) {
		t.Error("ShouldPrefetch = true while a prefetcher holds the lock")
	}
	got, err := Prefetch(context.Background(), noOpen(t), testLayout, dest, first, testSegSize, PrefetchOptions{Count: 2, Jobs: 2, Target: "test"})
	if err != nil || len(got) != 0 {
		t.Fatalf("Prefetch while locked = %v, %v", got, err)
	}
}

func TestCheckArchive(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	store := st.store(t)
	if f, err := CheckArchive(ctx, store, testLayout, 0); err != nil || f != nil {
		t.Fatalf("empty archive: %v, %v", f, err)
	}
	archiveSeries(t, st, "000000020000000000000001", 1)
	if f, err := CheckArchive(ctx, store, testLayout, 0); !errors.Is(err, ErrArchiveInUse) || f.TLI != 2 {
		t.Fatalf("archive with timeline 2: %+v, %v", f, err)
	}
	if f, err := CheckArchive(ctx, store, testLayout, 2); !errors.Is(err, ErrArchiveInUse) {
		t.Fatalf("--timeline 2 with timeline 2: %+v, %v", f, err)
	}
	if f, err := CheckArchive(ctx, store, testLayout, 3); err != nil || f != nil {
		t.Fatalf("--timeline 3 with timeline 2: %+v, %v", f, err)
	}
	if f, err := CheckArchive(ctx, store, catalog.Layout{Server: "other"}, 0); err != nil || f != nil {
		t.Fatalf("another server: %+v, %v", f, err)
	}
	store.Put(ctx, testLayout.WALRoot()+"junk.txt", cloud.BytesBody([]byte("x")), cloud.PutOptions{})
	if f, err := CheckArchive(ctx, store, testLayout, 3); !errors.Is(err, ErrArchiveInUse) || f.Name != "" {
		t.Fatalf("foreign object: %+v, %v", f, err)
	}
}

// The pusher stops at its first failure and leaves no marker for what it
// could not store: the calls then push (and fail) themselves.
func TestPushAheadStopsOnFailure(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	dir := pgWAL(t)
	n0, n1 := twoReady(t, dir)
	// Another cluster's n1 is already in the store.
	other := pgWAL(t)
	writeSegment(t, other, n1.String(), testSegSize, 3)
	opts := archiveOpts(codec(t, "zstd"))
	if _, err := Archive(ctx, st.open, testLayout, filepath.Join(other, n1.String()), opts); err != nil {
		t.Fatal(err)
	}
	stored, err := PushAhead(ctx, st.open, testLayout, dir, n0, PushAheadOptions{Codec: opts.Codec, Jobs: 2, Target: opts.Target, Idle: 50 * time.Millisecond})
	if !errors.Is(err, ErrConflict) || len(stored) != 0 {
		t.Fatalf("PushAhead over a conflicting segment = %v, %v; want ErrConflict and nothing stored", stored, err)
	}
	if _, err := os.Stat(filepath.Join(dir, markerDir, n1.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a marker was left for a segment the pusher could not store: %v", err)
	}
	if _, err := Archive(ctx, st.open, testLayout, filepath.Join(dir, n1.String()), opts); !errors.Is(err, ErrConflict) {
		t.Fatalf("the call after the pusher failed = %v, want ErrConflict", err)
	}
}
