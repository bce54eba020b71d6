//go:build !linux

package backupcmd

import (
	"os"
	"testing"
)

// openTerminal opens a pseudo-terminal on Linux only (terminal_linux_test.go).
func openTerminal(t *testing.T) *os.File {
	t.Skip("pseudo-terminals are opened on Linux only")
	return nil
}
