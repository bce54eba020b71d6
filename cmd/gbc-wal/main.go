// Command gbc-wal is the lean front of the two commands PostgreSQL starts
// for every WAL segment, gbc-wal-archive (archive_command) and
// gbc-wal-restore (restore_command), installed as those two names. It is
// the same code as the full gbc binary's commands with one difference: it
// links the file:// store alone, none of the cloud SDKs.
//
// Why: a start of the full binary costs 7 to 9.5 ms of CPU on 2 cores
// before it does anything, nearly all of it the package initialisers of
// the S3, GCS and Azure SDKs and of gocloud (issue 11); PostgreSQL pays it
// once per 16 MiB of WAL, hundreds of times a minute on a busy server,
// twice on a standby that also archives. This binary starts in about
// 2.5 ms, and serves in-process the calls that need no cloud store: the
// look-ahead marker hits of gbc-wal-archive (a segment the background
// pusher has stored already), the spool hits of gbc-wal-restore (a
// segment the prefetcher has downloaded already), --help and --version,
// and everything on file:// stores.
//
// Any other call needs a provider this binary does not link: it execs the
// full gbc binary found next to it (the same directory, as make install
// and the release archives put them), with the same arguments and
// environment. exec(2) keeps the process id, open files, the exit status
// and signal delivery as they are, so to PostgreSQL (and to kill) the call
// is one process, as before; it costs the front's start on top of the full
// binary's, paid only on calls that talk to a remote store anyway.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/walarchive"
	"github.com/gbc-backup/gbc/cmd/internal/walrestore"
)

func main() {
	os.Exit(cli.RunFront("gbc-wal", []*cli.Command{walarchive.Command(), walrestore.Command()}, os.Args, execFull))
}

// fullName is the full binary's file name, looked for next to this one.
const fullName = "gbc"

// execFull replaces this process by the full gbc binary next to this
// one's executable (symbolic links resolved, so that a gbc-wal-archive
// link anywhere finds the gbc installed with its target).
func execFull(argv []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	full := filepath.Join(filepath.Dir(self), fullName)
	if err := syscall.Exec(full, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", full, err)
	}
	return nil // not reached: exec does not return on success
}
