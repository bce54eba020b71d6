package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// copyGBC copies the multi-call gbc binary into dst and recreates its gbc-*
// links: the checkout may sit under a home directory the PostgreSQL user
// cannot enter, and a concurrent `make build` must not swap the binary in
// the middle of a run.
func copyGBC(srcDir, dst string) error {
	src := ""
	if srcDir != "" {
		src = filepath.Join(srcDir, "gbc")
	} else if p, err := exec.LookPath("gbc"); err == nil {
		src = p
	}
	if src == "" {
		return errors.New("bench: gbc is not in PATH: run `make build` and put ./bin in PATH (make bench does)")
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("bench: no gbc binary: run `make build`: %w", err)
	}
	to := filepath.Join(dst, "gbc")
	if err := copyFile(src, to, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(to, "--list-commands").Output()
	if err != nil {
		return fmt.Errorf("bench: %s --list-commands: %w", to, err)
	}
	for _, name := range strings.Fields(string(out)) {
		if !strings.HasPrefix(name, "gbc-") || strings.Contains(name, "/") {
			continue
		}
		if err := os.Symlink("gbc", filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}
