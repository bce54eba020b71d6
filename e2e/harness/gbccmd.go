package harness

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// GBCCommand prepares a gbc command as RunGBC runs it (args[0] a command
// name or a path, env added, the gbc build first in PATH), in a process
// group of its own, for tests that start it, signal it and wait
// themselves. It is killed when the test ends.
func GBCCommand(t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	if len(args) == 0 {
		t.Fatal("harness: GBCCommand needs a command name")
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		path = Bin(t, path)
	}
	cmd := exec.Command(path, args[1:]...)
	cmd.Env = append(append(os.Environ(), "PATH="+gbcPath()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	return cmd
}
