package harness

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Store is one fresh, empty object store for a test: a new bucket (or
// container, or directory) on one provider.
type Store struct {
	// Name is the provider: "file", "s3", "gcs" or "azure".
	Name string
	// URL is the gbc store URL, e.g. s3://bucket/e2e, gs://bucket/e2e,
	// azblob://container/e2e or file:///tmp/gbc-e2e-123/store.
	URL string
	// Bucket is the bucket or container name; for file, the directory.
	Bucket string
	// EndpointURL points the client at the local server; "" for file.
	EndpointURL string
	// Env holds the KEY=VALUE credentials a child process needs (AWS_*,
	// AZURE_STORAGE_*, STORAGE_EMULATOR_HOST). Give it to RunGBC, and to
	// PGOptions.Env so that archive_command and restore_command get it.
	Env []string
	// Args are the flags every gbc command needs for this store, e.g.
	// ["--endpoint-url", EndpointURL]. They go before the positional
	// arguments.
	Args []string
}

// Providers lists the store names Stores returns, in order.
var Providers = []string{"file", "s3", "gcs", "azure"}

// Stores returns one fresh, empty store per provider, in the order of
// Providers, on the servers shared by this test binary (started, in
// parallel, on first use).
//
//	for _, st := range harness.Stores(t) {
//		t.Run(st.Name, func(t *testing.T) { ... })
//	}
func Stores(t testing.TB) []Store {
	t.Helper()
	needMain(t)
	// Start the three servers at once: Azurite alone takes seconds.
	var wg sync.WaitGroup
	for _, f := range []func() error{
		func() error { _, err := sharedMinIO(); return err },
		func() error { _, err := sharedFakeGCS(); return err },
		func() error { _, err := sharedAzurite(); return err },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f() }() // errors are reported by the Shared* calls below
	}
	wg.Wait()
	stores := make([]Store, 0, len(Providers))
	for _, name := range Providers {
		stores = append(stores, NewStore(t, name))
	}
	return stores
}

// startForTest starts a server in a temporary directory of the test's own
// and kills it when the test ends, showing the end of its log if the test
// failed.
func startForTest[T any](t testing.TB, pattern, what string, start func(dir string) (T, error), procOf func(T) *proc) T {
	t.Helper()
	s, err := start(tempDir(t, pattern))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p := procOf(s)
		if t.Failed() {
			t.Logf("last lines of the %s log:\n%s", what, p.LogTail(50))
		}
		p.kill()
	})
	return s
}

func startShared[T any](pattern string, start func(dir string) (T, error)) (T, error) {
	dir, err := sharedTempDir(pattern)
	if err != nil {
		var zero T
		return zero, err
	}
	reg.addDir(dir)
	return start(dir)
}

// NewStore returns one fresh, empty store of the named provider ("file",
// "s3", "gcs" or "azure") on the shared servers.
func NewStore(t testing.TB, provider string) Store {
	t.Helper()
	switch provider {
	case "file":
		dir := filepath.Join(tempDir(t, "gbc-file-"), "store")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("harness: %v", err)
		}
		ChownToPG(t, dir)
		return Store{Name: "file", URL: "file://" + dir, Bucket: dir}
	case "s3":
		s := SharedMinIO(t)
		b := s.NewBucket(t)
		return Store{Name: "s3", URL: "s3://" + b + "/e2e", Bucket: b, EndpointURL: s.Endpoint,
			Env: s.Env(), Args: []string{"--endpoint-url", s.Endpoint}}
	case "gcs":
		s := SharedFakeGCS(t)
		b := s.NewBucket(t)
		return Store{Name: "gcs", URL: "gs://" + b + "/e2e", Bucket: b, EndpointURL: s.Endpoint,
			Env: s.Env(), Args: []string{"--endpoint-url", s.Endpoint}}
	case "azure":
		s := SharedAzurite(t)
		c := s.NewContainer(t)
		return Store{Name: "azure", URL: "azblob://" + c + "/e2e", Bucket: c, EndpointURL: s.Endpoint,
			Env: s.Env(), Args: []string{"--endpoint-url", s.Endpoint}}
	}
	t.Fatalf("harness: unknown store provider %q (want one of %s)", provider, strings.Join(Providers, ", "))
	return Store{}
}

// Setenv applies Env to this process with t.Setenv (restored when the test
// ends), for in-process clients such as cloud.Open. Like t.Setenv, it
// cannot be used in parallel tests.
func (s Store) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// WithURL returns a copy of the store pointing at another URL on the same
// server, with the same credentials: e.g. a bucket that does not exist.
func (s Store) WithURL(url string) Store {
	s.URL = url
	return s
}

// WithEnv returns a copy of the store whose Env has the given KEY=VALUE
// pairs set (replacing earlier values), e.g. wrong credentials.
func (s Store) WithEnv(kv ...string) Store {
	env := make([]string, 0, len(s.Env)+len(kv))
	env = append(env, s.Env...)
	s.Env = append(env, kv...)
	return s
}

// Argv builds a gbc command line for this store:
// cmd, flags, the store's Args, the URL, then pos.
//
//	harness.RunGBC(t, st.Env, st.Argv("gbc-wal-archive", nil, "main", path)...)
func (s Store) Argv(cmd string, flags []string, pos ...string) []string {
	argv := []string{cmd}
	argv = append(argv, flags...)
	argv = append(argv, s.Args...)
	argv = append(argv, s.URL)
	return append(argv, pos...)
}

// CommandLine is Argv quoted for a shell, as PostgreSQL's archive_command
// and restore_command want it. %p and %f are left for PostgreSQL.
//
//	archive := st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, "main", "%p")
func (s Store) CommandLine(cmd string, flags []string, pos ...string) string {
	argv := s.Argv(cmd, flags, pos...)
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// ShellQuote quotes s for a POSIX shell, leaving it bare when it is safe
// (so that %p and %f stay visible to PostgreSQL).
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:%=,+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
