package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// copyGBC copies the multi-call gbc binary (and its WAL front gbc-wal)
// into dst and recreates their gbc-* links: the checkout may sit under a home directory the PostgreSQL user
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
	if err := linkCommands(to, dst); err != nil {
		return err
	}
	// The WAL front, when the build has one (make build does), serves
	// gbc-wal-archive and gbc-wal-restore, as it does once installed.
	front := filepath.Join(filepath.Dir(src), "gbc-wal")
	if _, err := os.Stat(front); err != nil {
		return nil
	}
	to = filepath.Join(dst, "gbc-wal")
	if err := copyFile(front, to, 0o755); err != nil {
		return err
	}
	return linkCommands(to, dst)
}

// linkCommands links the commands that the multi-call binary bin lists to
// it, in dst.
func linkCommands(bin, dst string) error {
	out, err := exec.Command(bin, "--list-commands").Output()
	if err != nil {
		return fmt.Errorf("bench: %s --list-commands: %w", bin, err)
	}
	for _, name := range strings.Fields(string(out)) {
		if !strings.HasPrefix(name, "gbc-") || strings.Contains(name, "/") {
			continue
		}
		link := filepath.Join(dst, name)
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Base(bin), link); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}
