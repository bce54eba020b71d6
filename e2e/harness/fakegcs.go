package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
)

// GCSServer is a running fake-gcs-server (in-memory backend).
type GCSServer struct {
	Endpoint string // http://127.0.0.1:PORT
	Host     string // 127.0.0.1:PORT, the value of STORAGE_EMULATOR_HOST

	p *proc
}

// StartFakeGCS starts a fake-gcs-server for this test only; it is killed
// when the test ends. Prefer SharedFakeGCS.
func StartFakeGCS(t testing.TB) *GCSServer {
	t.Helper()
	return startForTest(t, "gbc-gcs-", "fake-gcs-server", startFakeGCS, func(s *GCSServer) *proc { return s.p })
}

// SharedFakeGCS returns the fake-gcs-server shared by every test of this
// test binary, starting it on first use. Main stops it.
func SharedFakeGCS(t testing.TB) *GCSServer {
	t.Helper()
	needMain(t)
	s, err := sharedFakeGCS()
	if err != nil {
		t.Fatalf("harness: shared fake-gcs-server: %v", err)
	}
	return s
}

func sharedFakeGCS() (*GCSServer, error) {
	return reg.gcs.get(func() (*GCSServer, error) { return startShared("gbc-gcs-", startFakeGCS) })
}

func startFakeGCS(dir string) (*GCSServer, error) {
	return withPortRetry(func() (*GCSServer, error) { return startFakeGCSOnce(dir) })
}

func startFakeGCSOnce(dir string) (*GCSServer, error) {
	bin, err := lookTool("fake-gcs-server")
	if err != nil {
		return nil, err
	}
	port, err := pgrun.FreePort()
	if err != nil {
		return nil, err
	}
	host := "127.0.0.1:" + strconv.Itoa(port)
	s := &GCSServer{Endpoint: "http://" + host, Host: host}
	start := time.Now()
	// Without -public-host, XML-API reads (what the Go client uses) fail
	// with "object doesn't exist".
	s.p, err = startProc(pgrun.ProcessSpec{
		Name: "fake-gcs-server",
		Path: bin,
		Args: []string{"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port),
			"-backend", "memory", "-external-url", s.Endpoint, "-public-host", host, "-log-level", "warn"},
		Env:     os.Environ(),
		Dir:     dir,
		LogPath: filepath.Join(dir, "fake-gcs-server.log"),
	})
	if err != nil {
		return nil, err
	}
	err = pgrun.WaitFor(context.Background(), s.p.Process, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, s.Endpoint+"/storage/v1/b?project=test")
	})
	if err != nil {
		s.p.kill()
		return nil, fmt.Errorf("harness: fake-gcs-server: %w", err)
	}
	logStart("fake-gcs-server", s.Endpoint, start)
	return s, nil
}

// Env returns the environment that points Google's client libraries at
// this server.
func (s *GCSServer) Env() []string {
	return []string{
		"STORAGE_EMULATOR_HOST=" + s.Host,
		"GOOGLE_CLOUD_PROJECT=test",
	}
}

// NewBucket creates a fresh, empty bucket through the JSON API and returns
// its name.
func (s *GCSServer) NewBucket(t testing.TB) string {
	t.Helper()
	name := UniqueName(t)
	body, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/storage/v1/b?project=test", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("harness: create GCS bucket %s on %s: %v", name, s.Endpoint, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		t.Fatalf("harness: create GCS bucket %s on %s: HTTP %d: %s", name, s.Endpoint, resp.StatusCode, msg)
	}
	return name
}
