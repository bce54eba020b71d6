package harness

import (
	"context"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
	// Every store provider, for the tests that open stores themselves.
	_ "github.com/gbc-backup/gbc/cloud/providers"
)

// Options returns the cloud.Options that reach this store's server.
func (s Store) Options() cloud.Options {
	return cloud.Options{EndpointURL: s.EndpointURL}
}

// Open applies Env to this process (Setenv: not in parallel tests) and
// opens the store with gbc's own blob layer, closed when the test ends.
func (s Store) Open(t testing.TB) cloud.Store {
	t.Helper()
	return s.OpenWith(t, s.Options())
}

// OpenWith is Open with explicit options (EndpointURL included).
func (s Store) OpenWith(t testing.TB, opts cloud.Options) cloud.Store {
	t.Helper()
	s.Setenv(t)
	st, err := cloud.Open(context.Background(), s.URL, opts)
	if err != nil {
		t.Fatalf("harness: open %s store %s: %v", s.Name, s.URL, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Logf("harness: close %s: %v", s.URL, err)
		}
	})
	return st
}
