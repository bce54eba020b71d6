package harness

import (
	"syscall"
	"testing"
)

// PrivateStore is a store on a server of its own, started for this test
// only, which the test may pause (SIGSTOP): the server keeps its
// connections and listening socket open but never answers, the stall a
// hung process, a black-holed route or a stuck proxy gives a client.
type PrivateStore struct {
	Store
	p *proc
}

// StartPrivateStore starts a server of the named provider ("s3", "gcs" or
// "azure") for this test only and returns one fresh bucket on it. The
// server is resumed and killed when the test ends.
func StartPrivateStore(t testing.TB, provider string) *PrivateStore {
	t.Helper()
	var ps PrivateStore
	switch provider {
	case "s3":
		s := StartMinIO(t)
		b := s.NewBucket(t)
		ps = PrivateStore{Store: Store{Name: "s3", URL: "s3://" + b + "/e2e", Bucket: b, EndpointURL: s.Endpoint,
			Env: s.Env(), Args: []string{"--endpoint-url", s.Endpoint}}, p: s.p}
	case "gcs":
		s := StartFakeGCS(t)
		b := s.NewBucket(t)
		ps = PrivateStore{Store: Store{Name: "gcs", URL: "gs://" + b + "/e2e", Bucket: b, EndpointURL: s.Endpoint,
			Env: s.Env(), Args: []string{"--endpoint-url", s.Endpoint}}, p: s.p}
	case "azure":
		s := StartAzurite(t)
		c := s.NewContainer(t)
		ps = PrivateStore{Store: Store{Name: "azure", URL: "azblob://" + c + "/e2e", Bucket: c, EndpointURL: s.Endpoint,
			Env: s.Env(), Args: []string{"--endpoint-url", s.Endpoint}}, p: s.p}
	default:
		t.Fatalf("harness: no private server for provider %q (want s3, gcs or azure)", provider)
	}
	// Registered after the start's own cleanup, so it runs first: a
	// stopped process must be resumed before it can be killed cleanly.
	t.Cleanup(func() { _ = ps.p.Signal(syscall.SIGCONT) })
	return &ps
}

// Pause stops the server's process (SIGSTOP).
func (s *PrivateStore) Pause(t testing.TB) {
	t.Helper()
	if err := s.p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *PrivateStore) Resume(t testing.TB) {
	t.Helper()
	if err := s.p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
