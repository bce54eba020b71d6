package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/gbc-backup/gbc/pgrun"
)

// Azurite's well-known development account (documented by Microsoft; not a
// secret).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzureServer is a running Azurite blob service.
type AzureServer struct {
	Endpoint         string // http://127.0.0.1:PORT/devstoreaccount1
	ConnectionString string // for devstoreaccount1
	Dir              string // Azurite's workspace

	p *proc
}

// StartAzurite starts an Azurite blob server for this test only; it is
// killed when the test ends. It takes several seconds: prefer
// SharedAzurite.
func StartAzurite(t testing.TB) *AzureServer {
	t.Helper()
	return startForTest(t, "gbc-azurite-", "Azurite", startAzurite, func(s *AzureServer) *proc { return s.p })
}

// SharedAzurite returns the Azurite server shared by every test of this
// test binary, starting it on first use. Main stops it.
func SharedAzurite(t testing.TB) *AzureServer {
	t.Helper()
	needMain(t)
	s, err := sharedAzurite()
	if err != nil {
		t.Fatalf("harness: shared Azurite: %v", err)
	}
	return s
}

func sharedAzurite() (*AzureServer, error) {
	return reg.azurite.get(func() (*AzureServer, error) { return startShared("gbc-azurite-", startAzurite) })
}

func startAzurite(dir string) (*AzureServer, error) {
	return withPortRetry(func() (*AzureServer, error) { return startAzuriteOnce(dir) })
}

func startAzuriteOnce(dir string) (*AzureServer, error) {
	bin, err := lookTool("azurite-blob")
	if err != nil {
		return nil, err
	}
	port, err := pgrun.FreePort()
	if err != nil {
		return nil, err
	}
	ws := filepath.Join(dir, "data")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	s := &AzureServer{
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount),
		Dir:      dir,
	}
	s.ConnectionString = fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		AzuriteAccount, AzuriteKey, s.Endpoint)
	start := time.Now()
	// azurite-blob is a node script: exec'ing it makes node this very
	// process (env execs node in place), so the PID killed is node's own.
	s.p, err = startProc(pgrun.ProcessSpec{
		Name: "azurite-blob",
		Path: bin,
		Args: []string{"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port), "--location", ws,
			"--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"},
		Env:     os.Environ(),
		Dir:     dir,
		LogPath: filepath.Join(dir, "azurite.log"),
	})
	if err != nil {
		return nil, err
	}
	// Any HTTP answer means it listens; without credentials Azurite
	// answers 403 (or 400).
	err = pgrun.WaitFor(context.Background(), s.p.Process, 90*time.Second, func(ctx context.Context) error {
		_, err := httpStatus(ctx, s.Endpoint+"?comp=list")
		return err
	})
	if err != nil {
		s.p.kill()
		return nil, fmt.Errorf("harness: Azurite: %w", err)
	}
	logStart("Azurite", s.Endpoint, start)
	return s, nil
}

// Env returns the credentials environment for a child process: the
// connection string, and the account name and key for clients that use
// those instead.
func (s *AzureServer) Env() []string {
	return []string{
		"AZURE_STORAGE_CONNECTION_STRING=" + s.ConnectionString,
		"AZURE_STORAGE_ACCOUNT=" + AzuriteAccount,
		"AZURE_STORAGE_KEY=" + AzuriteKey,
	}
}

// Client returns an azblob client for this server, independent of gbc's
// own blob layer.
func (s *AzureServer) Client() (*azblob.Client, error) {
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString, nil)
	if err != nil {
		return nil, fmt.Errorf("harness: azblob client for %s: %w", s.Endpoint, err)
	}
	return c, nil
}

// NewContainer creates a fresh, empty container and returns its name.
func (s *AzureServer) NewContainer(t testing.TB) string {
	t.Helper()
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	name := UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("harness: create Azure container %s on %s: %v", name, s.Endpoint, err)
	}
	return name
}
