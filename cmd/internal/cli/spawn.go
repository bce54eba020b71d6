package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"

	ucli "github.com/urfave/cli/v2"
)

// SpawnDetached starts this program again, as the same command with the
// same options and arguments plus extra (hidden worker flags), as a
// detached background process whose output goes to logPath (truncated; its
// directory is created if needed).
// PostgreSQL waits for archive_command and restore_command to exit, so work
// meant to outlive one call cannot run in the calling process; the child
// gets its own session (PostgreSQL's signals to our process group do not
// reach it) and no terminal. It inherits the environment, which carries
// the credentials, and the working directory.
func SpawnDetached(e *Env, logPath string, extra ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return fmt.Errorf("create background log directory: %w", err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open background log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(exe, slices.Concat(extra, passedFlags(e.Context, extra), e.Args)...)
	// The multi-call binary dispatches on argv[0]; exe may be "gbc".
	cmd.Args[0] = e.Name
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start background process: %w", err)
	}
	return cmd.Process.Release()
}

// passedFlags renders the options given to this call (on the command line
// or through GBC_* variables) for a child, so that it opens the same store
// the same way; flags named in extra (as --name=...) are left out. It walks
// the command's flags, so a new option (a store flag or any other) is passed
// on without a list to keep.
func passedFlags(c *ucli.Context, extra []string) []string {
	var args []string
	for _, f := range c.App.Flags {
		name := f.Names()[0]
		switch name {
		case "help", "version":
			continue
		}
		if c.IsSet(name) && !given(extra, name) {
			args = append(args, flagArgs(c, f)...)
		}
	}
	return args
}

// flagArgs renders flag f as this call set it, as arguments from which
// another gbc process parses the same value: a value that starts with "-"
// stays one argument (--name=value), a true bool is plain --name, and
// every value of a repeated flag gets its own --name=value.
func flagArgs(c *ucli.Context, f ucli.Flag) []string {
	name := f.Names()[0]
	switch f.(type) {
	case *ucli.BoolFlag:
		if c.Bool(name) {
			return []string{"--" + name}
		}
		return []string{"--" + name + "=false"}
	case *ucli.StringSliceFlag:
		var args []string
		for _, v := range c.StringSlice(name) {
			args = append(args, "--"+name+"="+v)
		}
		return args
	}
	return []string{fmt.Sprintf("--%s=%v", name, c.Value(name))}
}

// given tells whether args holds --name or --name=value.
func given(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || len(a) > len(name)+3 && a[:len(name)+3] == "--"+name+"=" {
			return true
		}
	}
	return false
}
