package walrestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/wal"
)

// TestExitCode pins the contract with PostgreSQL: 1 only for a file that
// is not archived; anything else stops recovery (126), except on a
// standby, which retries and gets the usual codes.
func TestExitCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("restore 000000010000000000000003: %w", err) }
	tests := []struct {
		err              error
		primary, standby int
	}{
		{wrap(wal.ErrNotArchived), 1, 1},
		{wrap(cloud.ErrTransient), 126, 3},
		{wrap(cloud.ErrPermission), 126, 3},
		{wrap(errors.Join(cloud.ErrNotFound, cloud.ErrNoBucket)), 126, 3},
		{wrap(wal.ErrChecksum), 126, 4},
		{wrap(wal.ErrWrongFile), 126, 4},
		{wrap(syscall.ENOSPC), 126, 6},
		{cli.Usagef("bad option"), 126, 2},
	}
	t.Chdir(t.TempDir())
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.primary {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.primary)
		}
	}
	if err := os.WriteFile(filepath.Join(".", "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if got := ExitCode(tt.err); got != tt.standby {
			t.Errorf("on a standby, ExitCode(%v) = %d, want %d", tt.err, got, tt.standby)
		}
	}
	if ExitCode(nil) != 0 {
		t.Error("ExitCode(nil) != 0")
	}
}

// A negative --prefetch is refused before anything is fetched: a usage
// error on a standby, and, as every failure outside one, a stop of
// recovery rather than an "absent" that would end it early.
func TestPrefetchRefusesNegative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	argv := []string{"gbc-wal-restore", "--prefetch", "-1", "file://" + dir + "/store", "main", "000000010000000000000001", "pg_wal/RECOVERYXLOG"}
	if code := cli.Run([]*cli.Command{Command()}, argv); code != cli.ExitAbortRecovery {
		t.Errorf("--prefetch -1 outside a standby: exit %d, want %d", code, cli.ExitAbortRecovery)
	}
	if err := os.WriteFile("standby.signal", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := cli.Run([]*cli.Command{Command()}, argv); code != cli.ExitUsage {
		t.Errorf("--prefetch -1 on a standby: exit %d, want %d", code, cli.ExitUsage)
	}
	argv[2] = "0"
	if err := os.Mkdir(filepath.Join(dir, "store"), 0o750); err != nil {
		t.Fatal(err)
	}
	if code := cli.Run([]*cli.Command{Command()}, argv); code != cli.ExitFailure {
		t.Errorf("--prefetch 0 (off) of a segment not archived: exit %d, want %d", code, cli.ExitFailure)
	}
}
