// Package storetest is the contract every cloud.Store must meet, as one
// test suite that runs against any provider: in-process fakes in cloud's
// unit tests, real servers (MinIO, Azurite, fake-gcs-server) end to end.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
	"golang.org/x/sync/errgroup"
)

// Options size the heavier subtests.
type Options struct {
	// LargeSize is the size of the object streamed from a non-seekable
	// reader of unknown length (the parallel multipart test), e.g.
	// 200<<20. It also sizes the large aborted upload (up to 40 MiB). 0
	// skips both.
	LargeSize int64
	// ManyKeys is the number of keys of the pagination test; above 1,000
	// it crosses S3's and GCS's page size, e.g. 1100. 0 skips it.
	ManyKeys int
}

// Run runs the contract suite against s. Everything happens below a prefix
// unique to this run, which is deleted at the end, so that several runs
// can share a bucket.
func Run(t *testing.T, s cloud.Store, opts Options) {
	t.Helper()
	prefix := fmt.Sprintf("storetest-%s-%08x", time.Now().UTC().Format("20060102T150405"), rand.Uint32())
	st := cloud.WithPrefix(s, prefix)
	// Not t.Cleanup: callers rightly close s when Run returns.
	defer cleanup(t, st)
	t.Logf("store test prefix %s", prefix)

	t.Run("PutGetStat", func(t *testing.T) { testPutGetStat(t, st) })
	t.Run("EmptyObject", func(t *testing.T) { testEmpty(t, st) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, st) })
	t.Run("Metadata", func(t *testing.T) { testMetadata(t, st) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, st) })
	t.Run("Range", func(t *testing.T) { testRange(t, st) })
	t.Run("RangeOneVersion", func(t *testing.T) { testRangeOneVersion(t, st) })
	t.Run("IfNotExists", func(t *testing.T) { testIfNotExists(t, st) })
	t.Run("IfNotExistsRace", func(t *testing.T) { testIfNotExistsRace(t, st) })
	t.Run("List", func(t *testing.T) { testList(t, st) })
	t.Run("BatchDelete", func(t *testing.T) { testBatchDelete(t, st) })
	t.Run("InvalidKeys", func(t *testing.T) { testInvalidKeys(t, st) })
	t.Run("FailingReader", func(t *testing.T) { testFailingReader(t, st, 1<<10) })
	t.Run("SectionBody", func(t *testing.T) { testSectionBody(t, st) })
	t.Run("CancelAtEOF", func(t *testing.T) { testCancel(t, st, 64<<10, true) })
	t.Run("CancelMidway", func(t *testing.T) { testCancel(t, st, 64<<10, false) })
	t.Run("ManyKeys", func(t *testing.T) {
		if opts.ManyKeys <= 0 {
			t.Skip("storetest.Options.ManyKeys is 0")
		}
		testManyKeys(t, st, opts.ManyKeys)
	})
	t.Run("Large", func(t *testing.T) {
		if opts.LargeSize <= 0 {
			t.Skip("storetest.Options.LargeSize is 0")
		}
		testLarge(t, st, opts.LargeSize)
	})
	t.Run("LargeFailingReader", func(t *testing.T) {
		if opts.LargeSize <= 0 {
			t.Skip("storetest.Options.LargeSize is 0")
		}
		testFailingReader(t, st, min(opts.LargeSize, 40<<20))
	})
	t.Run("LargeCancel", func(t *testing.T) {
		if opts.LargeSize <= 0 {
			t.Skip("storetest.Options.LargeSize is 0")
		}
		testCancel(t, st, min(opts.LargeSize, 40<<20), false)
	})
	// Last: it checks what every earlier subtest left behind.
	t.Run("SweepStale", func(t *testing.T) { testSweepStale(t, st) })
}

// cleanup deletes everything the run left, in bounded batches.
func cleanup(t *testing.T, st cloud.Store) {
	// t.Context() is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var batch []string
	flush := func() error {
		err := st.Delete(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := st.List(ctx, "", func(a cloud.Attrs) error {
		batch = append(batch, a.Key)
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func put(t *testing.T, st cloud.Store, key, content string, opts cloud.PutOptions) {
	t.Helper()
	if err := st.Put(t.Context(), key, cloud.BytesBody([]byte(content)), opts); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, st cloud.Store, key string) string {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): reading: %v", key, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Get(%q): close: %v", key, err)
	}
	return string(b)
}

func stat(t *testing.T, st cloud.Store, key string) cloud.Attrs {
	t.Helper()
	a, err := st.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return a
}

func list(t *testing.T, st cloud.Store, prefix string) []cloud.Attrs {
	t.Helper()
	var out []cloud.Attrs
	if err := st.List(t.Context(), prefix, func(a cloud.Attrs) error {
		out = append(out, a)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func keys(as []cloud.Attrs) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Key
	}
	return out
}

// wantGone checks that key is not there: Stat says ErrNotFound and List
// does not show it.
func wantGone(t *testing.T, st cloud.Store, key string) {
	t.Helper()
	if _, err := st.Stat(t.Context(), key); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Stat(%q) after failed Put: err = %v, want ErrNotFound", key, err)
	}
	if got := keys(list(t, st, key)); slices.Contains(got, key) {
		t.Errorf("List(%q) after failed Put shows the key: %q", key, got)
	}
}

func testPutGetStat(t *testing.T, st cloud.Store) {
	const key, content = "pgs/dir/obj.txt", "hello, world\n"
	before := time.Now()
	put(t, st, key, content, cloud.PutOptions{Metadata: map[string]string{"kind": "greeting"}, SizeHint: int64(len(content))})
	if got := get(t, st, key); got != content {
		t.Errorf("Get = %q, want %q", got, content)
	}
	a := stat(t, st, key)
	if a.Key != key || a.Size != int64(len(content)) {
		t.Errorf("Stat = key %q size %d, want %q %d", a.Key, a.Size, key, len(content))
	}
	if a.Metadata["kind"] != "greeting" {
		t.Errorf("Stat metadata = %v, want kind=greeting", a.Metadata)
	}
	// Clocks of emulators and hosts differ a little; an hour is plenty to
	// catch a zero or garbage time.
	if d := a.ModTime.Sub(before); d < -time.Hour || d > time.Hour {
		t.Errorf("Stat ModTime = %v, not near now (%v)", a.ModTime, before)
	}
	// A "directory" is not an object.
	if _, err := st.Stat(t.Context(), "pgs/dir"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Stat of a key prefix: err = %v, want ErrNotFound", err)
	}
	if _, err := st.Get(t.Context(), "pgs/dir"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get of a key prefix: err = %v, want ErrNotFound", err)
	}
}

func testEmpty(t *testing.T, st cloud.Store) {
	const key = "empty/zero"
	put(t, st, key, "", cloud.PutOptions{})
	if got := get(t, st, key); got != "" {
		t.Errorf("Get = %q, want empty", got)
	}
	a := stat(t, st, key)
	if a.Size != 0 {
		t.Errorf("Stat size = %d, want 0", a.Size)
	}
	if a.Metadata == nil || len(a.Metadata) != 0 {
		t.Errorf("Stat metadata = %#v, want empty non-nil map", a.Metadata)
	}
	if l := list(t, st, "empty/"); len(l) != 1 || l[0].Key != key || l[0].Size != 0 {
		t.Errorf("List = %+v, want one empty object", l)
	}
}

func testOverwrite(t *testing.T, st cloud.Store) {
	const key = "overwrite/obj"
	put(t, st, key, "first version", cloud.PutOptions{Metadata: map[string]string{"v": "1", "old": "x"}})
	put(t, st, key, "second", cloud.PutOptions{Metadata: map[string]string{"v": "2"}})
	if got := get(t, st, key); got != "second" {
		t.Errorf("Get after overwrite = %q", got)
	}
	a := stat(t, st, key)
	if a.Size != int64(len("second")) || a.Metadata["v"] != "2" || a.Metadata["old"] != "" {
		t.Errorf("Stat after overwrite = size %d metadata %v, want 6, v=2 only", a.Size, a.Metadata)
	}
}

func testMetadata(t *testing.T, st cloud.Store) {
	const key = "meta/obj"
	md := map[string]string{
		"sha256":   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"size":     "16777216",
		"1leading": "digit first: Azure needs escaping",
		"punct":    "a b/c=d+e&f?g%h:i;j,k'l\"m~",
		"unicode":  "Grüße, 日本",
		"empty":    "",
		"spaces":   "  padded  ",
	}
	put(t, st, key, "x", cloud.PutOptions{Metadata: md})
	got := stat(t, st, key).Metadata
	for k, v := range md {
		if got[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(md) {
		t.Errorf("metadata = %v, want exactly %v", got, md)
	}
	// Listings carry no metadata, by contract.
	for _, a := range list(t, st, "meta/") {
		if a.Metadata != nil {
			t.Errorf("List returned metadata %v", a.Metadata)
		}
	}
	// Keys outside [a-z0-9] are refused before anything is stored.
	for _, bad := range []string{"Upper", "with-dash", "under_score", ""} {
		err := st.Put(t.Context(), "meta/bad", cloud.BytesBody([]byte("x")), cloud.PutOptions{Metadata: map[string]string{bad: "v"}})
		if err == nil {
			t.Errorf("Put with metadata key %q succeeded, want an error", bad)
		}
	}
	wantGone(t, st, "meta/bad")
}

func testNotFound(t *testing.T, st cloud.Store) {
	ctx := t.Context()
	const key = "notfound/missing"
	if _, err := st.Get(ctx, key); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	} else if !strings.Contains(err.Error(), key) {
		t.Errorf("Get missing: error %q does not name the key", err)
	} else if errors.Is(err, cloud.ErrTransient) || errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrNoBucket) {
		t.Errorf("Get missing: error %q has another classification too", err)
	}
	if _, err := st.Stat(ctx, key); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Stat missing: err = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Errorf("Delete missing: %v, want nil", err)
	}
	if err := st.Delete(ctx); err != nil {
		t.Errorf("Delete of no keys: %v, want nil", err)
	}
	if l := list(t, st, "notfound/"); len(l) != 0 {
		t.Errorf("List of an empty prefix = %v", keys(l))
	}
}

func getRange(t *testing.T, st cloud.Store, key string, offset, length int64) string {
	t.Helper()
	rc, err := st.GetRange(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetRange(%q, %d, %d): reading: %v", key, offset, length, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("GetRange(%q, %d, %d): close: %v", key, offset, length, err)
	}
	return string(b)
}

// testRange reads ranges as pread(2) would: cut at the end of the object,
// empty from the end on, ErrNotFound for a missing key whatever the range.
func testRange(t *testing.T, st cloud.Store) {
	const key, content = "range/obj", "0123456789abcdefghijklmnopqrstuvwxyz"
	n := int64(len(content))
	put(t, st, key, content, cloud.PutOptions{})
	for _, tc := range []struct {
		offset, length int64
		want           string
	}{
		{0, -1, content},
		{0, n, content},
		{0, 5, "01234"},              // the start
		{10, 6, "abcdef"},            // the middle
		{30, -1, "uvwxyz"},           // the end
		{n - 1, 1, "z"},              // the last byte
		{30, 100, "uvwxyz"},          // cut at the end
		{0, n + 1, content},          // cut at the end
		{n, -1, ""},                  // at the end
		{n, 10, ""},                  // at the end
		{n + 100, -1, ""},            // past the end
		{n + 100, 5, ""},             // past the end
		{7, 0, ""},                   // zero length
		{0, 0, ""},                   // zero length
		{n + 5, 0, ""},               // zero length past the end
		{1, n - 2, content[1 : n-1]}, // all but the ends
	} {
		if got := getRange(t, st, key, tc.offset, tc.length); got != tc.want {
			t.Errorf("GetRange(%d, %d) = %q, want %q", tc.offset, tc.length, got, tc.want)
		}
	}

	const empty = "range/empty"
	put(t, st, empty, "", cloud.PutOptions{})
	for _, r := range [][2]int64{{0, -1}, {0, 10}, {0, 0}, {5, -1}, {5, 5}} {
		if got := getRange(t, st, empty, r[0], r[1]); got != "" {
			t.Errorf("GetRange(empty, %d, %d) = %q, want empty", r[0], r[1], got)
		}
	}

	for _, r := range [][2]int64{{0, -1}, {5, 10}, {0, 0}, {100, -1}} {
		rc, err := st.GetRange(t.Context(), "range/missing", r[0], r[1])
		if err == nil {
			rc.Close()
			t.Errorf("GetRange(missing, %d, %d) succeeded, want ErrNotFound", r[0], r[1])
			continue
		}
		if !errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrNoBucket) || errors.Is(err, cloud.ErrTransient) {
			t.Errorf("GetRange(missing, %d, %d): err = %v, want ErrNotFound only", r[0], r[1], err)
		} else if !strings.Contains(err.Error(), "range/missing") {
			t.Errorf("GetRange(missing): error %q does not name the key", err)
		}
	}

	rc, err := st.GetRange(t.Context(), key, -1, 5)
	if err == nil {
		rc.Close()
		t.Error("GetRange with a negative offset succeeded")
	} else if errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrTransient) {
		t.Errorf("GetRange with a negative offset: err %v is classified, want a plain error", err)
	}
}

// testRangeOneVersion overwrites an object while a range of it is being
// read: the stream goes on with the version it opened, or fails, but never
// mixes the two.
func testRangeOneVersion(t *testing.T, st cloud.Store) {
	const key, size = "range/versions", 4 << 20
	old := bytes.Repeat([]byte("o"), size)
	if err := st.Put(t.Context(), key, cloud.BytesBody(old), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := st.GetRange(t.Context(), key, 1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), key, cloud.BytesBody(bytes.Repeat([]byte("n"), size)), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	got := append(head, rest...)
	if err != nil {
		t.Logf("reading on after an overwrite failed (allowed): %v", err)
	} else if len(got) != size-1 {
		t.Errorf("read %d bytes, want %d", len(got), size-1)
	}
	if i := bytes.IndexByte(got, 'n'); i >= 0 {
		t.Errorf("the stream mixed versions: new bytes from offset %d", i+1)
	}
}

func testIfNotExists(t *testing.T, st cloud.Store) {
	ctx := t.Context()
	const key = "ifnotexists/obj"
	put(t, st, key, "original", cloud.PutOptions{IfNotExists: true, Metadata: map[string]string{"v": "1"}})
	err := st.Put(ctx, key, cloud.BytesBody([]byte("intruder")), cloud.PutOptions{IfNotExists: true, Metadata: map[string]string{"v": "2"}})
	if !errors.Is(err, cloud.ErrExists) {
		t.Fatalf("second Put with IfNotExists: err = %v, want ErrExists", err)
	}
	if got := get(t, st, key); got != "original" {
		t.Errorf("after refused Put, content = %q, want original", got)
	}
	if a := stat(t, st, key); a.Metadata["v"] != "1" {
		t.Errorf("after refused Put, metadata = %v, want v=1", a.Metadata)
	}
	// Without the flag, Put replaces.
	put(t, st, key, "replaced", cloud.PutOptions{})
	if got := get(t, st, key); got != "replaced" {
		t.Errorf("after plain Put, content = %q", got)
	}
}

// testIfNotExistsRace has several writers race for one key: exactly one
// wins, and the stored object is the winner's, whole, with its metadata.
func testIfNotExistsRace(t *testing.T, st cloud.Store) {
	const key, writers = "race/obj", 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
	)
	for i := range writers {
		wg.Go(func() {
			content := strings.Repeat(fmt.Sprintf("writer %d ", i), 1000)
			err := st.Put(t.Context(), key, cloud.BytesBody([]byte(content)), cloud.PutOptions{IfNotExists: true, Metadata: map[string]string{"writer": fmt.Sprint(i)}})
			switch {
			case err == nil:
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			case !errors.Is(err, cloud.ErrExists):
				t.Errorf("writer %d: err = %v, want nil or ErrExists", i, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners = %v, want exactly one", winners)
	}
	w := winners[0]
	if got, want := get(t, st, key), strings.Repeat(fmt.Sprintf("writer %d ", w), 1000); got != want {
		t.Errorf("stored content is not the winner's (%d)", w)
	}
	if got := stat(t, st, key).Metadata["writer"]; got != fmt.Sprint(w) {
		t.Errorf("stored metadata writer = %q, want %d", got, w)
	}
}

func testList(t *testing.T, st cloud.Store) {
	// Chosen around "/" (0x2f): "-" and "." sort before it, "0" after, so
	// a provider that walks "directories" naively gets the order wrong.
	all := []string{"list/a-", "list/a.b", "list/a/x", "list/a/y/z", "list/a0", "list/b"}
	for i, k := range slices.Backward(all) {
		put(t, st, k, strings.Repeat("x", i), cloud.PutOptions{Metadata: map[string]string{"m": "v"}})
	}
	got := list(t, st, "list/")
	if !slices.Equal(keys(got), all) {
		t.Errorf("List(list/) = %q, want %q", keys(got), all)
	}
	for i, a := range got {
		if a.Size != int64(i) {
			t.Errorf("List: %s size %d, want %d", a.Key, a.Size, i)
		}
		if a.ModTime.IsZero() {
			t.Errorf("List: %s has no ModTime", a.Key)
		}
	}
	for prefix, want := range map[string][]string{
		"list/a/":  {"list/a/x", "list/a/y/z"},
		"list/a":   {"list/a-", "list/a.b", "list/a/x", "list/a/y/z", "list/a0"},
		"list/a/y": {"list/a/y/z"},
		"list/b":   {"list/b"},
		"list/c":   nil,
		"lis":      all,
	} {
		if got := keys(list(t, st, prefix)); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	// An error from the callback stops the walk and comes back unchanged.
	stop := errors.New("stop here")
	n := 0
	err := st.List(t.Context(), "list/", func(cloud.Attrs) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("List with failing callback: err = %v after %d calls, want the callback's error after 2", err, n)
	}
}

func testBatchDelete(t *testing.T, st cloud.Store) {
	var ks []string
	for i := range 25 {
		k := fmt.Sprintf("batch/%02d/obj", i)
		put(t, st, k, "x", cloud.PutOptions{})
		ks = append(ks, k)
	}
	keep := "batch/keep"
	put(t, st, keep, "kept", cloud.PutOptions{})
	if err := st.Delete(t.Context(), append(ks, "batch/missing1", "batch/nodir/missing2")...); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := keys(list(t, st, "batch/")); !slices.Equal(got, []string{keep}) {
		t.Errorf("after Delete, List = %q, want only %q", got, keep)
	}
	if _, err := st.Stat(t.Context(), ks[3]); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Stat of deleted key: err = %v, want ErrNotFound", err)
	}
	if got := get(t, st, keep); got != "kept" {
		t.Errorf("untouched key = %q", got)
	}
}

func testInvalidKeys(t *testing.T, st cloud.Store) {
	for _, k := range []string{"", "/abs", "trailing/", "a//b", "../up", "a/../b", "a/./b", ".hidden", "dir/.hidden", "ctl\x01", "back\\slash", "a#b", "a?b", "a%20b", `a"b`, "x__0x41__y"} {
		err := st.Put(t.Context(), k, cloud.BytesBody([]byte("x")), cloud.PutOptions{})
		if err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
			continue
		}
		if errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrTransient) {
			t.Errorf("Put(%q): err %v is classified, want a plain error", k, err)
		}
	}
}

// prng is a fast deterministic stream of n bytes that hides everything
// but Read, so the store sees a reader of unknown size that cannot seek.
type prng struct {
	c *rand.ChaCha8
	n int64
}

func newPRNG(seed byte, n int64) *prng {
	var s [32]byte
	s[0] = seed
	return &prng{c: rand.NewChaCha8(s), n: n}
}

func (p *prng) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	n, _ := p.c.Read(b)
	p.n -= int64(n)
	return n, nil
}

func testLarge(t *testing.T, st cloud.Store, size int64) {
	const key = "large/object.bin"
	want := sha256.New()
	start := time.Now()
	// Of unknown length, read once: the providers' multipart paths.
	src := cloud.OneShotBody(io.TeeReader(newPRNG(1, size), want))
	if err := st.Put(t.Context(), key, src, cloud.PutOptions{}); err != nil {
		t.Fatalf("Put %d bytes: %v", size, err)
	}
	t.Logf("put %d MiB in %v", size>>20, time.Since(start).Round(time.Millisecond))
	if a := stat(t, st, key); a.Size != size {
		t.Errorf("Stat size = %d, want %d", a.Size, size)
	}
	start = time.Now()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	got := sha256.New()
	n, err := io.Copy(got, rc)
	if err != nil {
		t.Fatalf("reading back: %v after %d bytes", err, n)
	}
	t.Logf("got %d MiB in %v", n>>20, time.Since(start).Round(time.Millisecond))
	if n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Errorf("read back %d bytes with sha256 %x, want %d bytes with %x", n, got.Sum(nil), size, want.Sum(nil))
	}
	// One block from the middle, as a restore fetches it.
	off, length := size/2+12345, min(size/4, 1<<20)
	again := newPRNG(1, size)
	if _, err := io.CopyN(io.Discard, again, off); err != nil {
		t.Fatal(err)
	}
	wantBlock := make([]byte, length)
	if _, err := io.ReadFull(again, wantBlock); err != nil {
		t.Fatal(err)
	}
	if block := getRange(t, st, key, off, length); block != string(wantBlock) {
		t.Errorf("GetRange(%d, %d) of the large object: %d bytes, not the stored ones", off, length, len(block))
	}
	if err := st.Delete(t.Context(), key); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

var errSource = errors.New("storetest: source failed on purpose")

// failingReader yields n bytes, then fails.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, errSource
	}
	return n, err
}

func testFailingReader(t *testing.T, st cloud.Store, size int64) {
	key := fmt.Sprintf("fail/%d", size)
	err := st.Put(t.Context(), key, cloud.OneShotBody(failingReader{newPRNG(2, size)}), cloud.PutOptions{})
	if !errors.Is(err, errSource) {
		t.Fatalf("Put with failing reader: err = %v, want the reader's error", err)
	}
	wantGone(t, st, key)
}

// testSectionBody stores a byte range of a "file", and refuses to store a
// range that the file ends before: a shorter object would pass for whole.
func testSectionBody(t *testing.T, st cloud.Store) {
	file := bytes.NewReader([]byte(strings.Repeat("0123456789", 100)))
	const key = "section/ok"
	if err := st.Put(t.Context(), key, cloud.SectionBody(file, 105, 500), cloud.PutOptions{}); err != nil {
		t.Fatalf("Put of a section: %v", err)
	}
	if got, want := get(t, st, key), strings.Repeat("5678901234", 50); got != want {
		t.Errorf("stored section %q..., want %q...", got[:min(len(got), 20)], want[:20])
	}
	const short = "section/short"
	err := st.Put(t.Context(), short, cloud.SectionBody(file, 900, 200), cloud.PutOptions{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Put of a section past the end of its file: err = %v, want io.ErrUnexpectedEOF", err)
	}
	wantGone(t, st, short)
}

// cancellingReader cancels the Put's context after n bytes; then it either
// ends (atEOF: the cancellation races with the commit) or keeps going.
type cancellingReader struct {
	r      io.Reader
	cancel context.CancelFunc
	atEOF  bool
}

func (c *cancellingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err == io.EOF {
		c.cancel()
		if !c.atEOF {
			// Keep producing: the store must notice by itself.
			c.r = newPRNG(4, 1<<40)
			return n, nil
		}
	}
	return n, err
}

func testCancel(t *testing.T, st cloud.Store, size int64, atEOF bool) {
	key := fmt.Sprintf("cancel/%d-%v", size, atEOF)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- st.Put(ctx, key, cloud.OneShotBody(&cancellingReader{r: newPRNG(3, size), cancel: cancel, atEOF: atEOF}), cloud.PutOptions{})
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Put with a cancelled context succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("Put did not return within a minute of its context's cancellation")
	}
	wantGone(t, st, key)
}

func testManyKeys(t *testing.T, st cloud.Store, n int) {
	ctx := t.Context()
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("many/%06d", i)
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, k := range want {
		g.Go(func() error { return st.Put(gctx, k, cloud.BytesBody([]byte(k)), cloud.PutOptions{}) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Put: %v", err)
	}
	t.Logf("put %d keys in %v", n, time.Since(start).Round(time.Millisecond))

	got := keys(list(t, st, "many/"))
	if !slices.Equal(got, want) {
		// Say how it differs rather than printing thousands of keys.
		seen := map[string]int{}
		for _, k := range got {
			seen[k]++
		}
		dups, missing := 0, 0
		for _, k := range want {
			switch seen[k] {
			case 0:
				missing++
			case 1:
			default:
				dups++
			}
		}
		t.Fatalf("List returned %d keys (%d missing, %d duplicated, sorted: %v), want %d in order",
			len(got), missing, dups, slices.IsSorted(got), n)
	}

	start = time.Now()
	if err := st.Delete(ctx, append(want, "many/missing")...); err != nil {
		t.Fatalf("Delete of %d keys: %v", n, err)
	}
	t.Logf("deleted %d keys in %v", n, time.Since(start).Round(time.Millisecond))
	if l := list(t, st, "many/"); len(l) != 0 {
		t.Errorf("after Delete, %d keys remain", len(l))
	}
}

// testSweepStale checks a provider's StaleSweeper, when it has one: the
// failed and cancelled Puts of the subtests before left no leftovers, and
// a sweep that would remove everything it finds removes no object.
func testSweepStale(t *testing.T, st cloud.Store) {
	ctx := t.Context()
	put(t, st, "sweep/object", "stays", cloud.PutOptions{})
	var shown []string
	res, err := cloud.SweepStale(ctx, st, "", cloud.SweepOptions{Stale: func(key string, _ time.Time) bool {
		shown = append(shown, key)
		return true
	}})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the provider has no StaleSweeper")
	}
	if err != nil {
		t.Fatalf("SweepStale: %v", err)
	}
	if res.Count != 0 || len(shown) != 0 {
		t.Errorf("failed and cancelled Puts left %d %s (%d bytes): %v", res.Count, res.What, res.Bytes, shown)
	}
	if got := get(t, st, "sweep/object"); got != "stays" {
		t.Errorf("object after a sweep: %q", got)
	}
}
