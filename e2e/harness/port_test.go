package harness

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/pgrun"
)

// TestPortTakenDetected: a real server that cannot bind its port is
// reported as pgrun.ErrPortInUse, the case withPortRetry retries.
func TestPortTakenDetected(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	bin := LookTool(t, "fake-gcs-server")
	dir := t.TempDir()
	p, err := startProc(pgrun.ProcessSpec{
		Name: "fake-gcs-server", Path: bin, Env: os.Environ(), Dir: dir,
		Args:    []string{"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port), "-backend", "memory"},
		LogPath: filepath.Join(dir, "log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.kill()
	err = pgrun.WaitFor(context.Background(), p.Process, 30*time.Second, func(ctx context.Context) error {
		return errors.New("never ready") // the listener is not a GCS server
	})
	if !errors.Is(err, pgrun.ErrPortInUse) {
		t.Fatalf("WaitFor = %v, want ErrPortInUse", err)
	}
}

// TestPostgresPortRetry: a first start whose port was taken moves to
// another port, and is not fooled by the cluster already serving it.
func TestPostgresPortRetry(t *testing.T) {
	a := StartPostgres(t, PGOptions{})
	b := StartPostgres(t, PGOptions{})
	b.Stop(t)
	b.Port, b.started = a.Port, false
	b.Start(t)
	if b.Port == a.Port {
		t.Fatalf("b still on a's port %d", a.Port)
	}
	if got := b.QueryString(t, "SHOW data_directory"); got != b.DataDir {
		t.Fatalf("b answers for %s, want %s", got, b.DataDir)
	}
	if got := a.QueryString(t, "SHOW data_directory"); got != a.DataDir {
		t.Fatalf("a answers for %s, want %s", got, a.DataDir)
	}
}
