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
