// Command gbc is the multi-call binary behind every gbc-* command: it runs
// the command named by the link it was started through (gbc-wal-archive,
// gbc-backup, ...) or by its first argument (gbc wal-archive ...).
//
// One binary instead of one per command: the three cloud SDKs make every
// binary about the same size, so separate binaries would multiply the
// release size without making any of them start faster.
package main

import (
	"os"

	"github.com/gbc-backup/gbc/cmd/internal/backupcmd"
	"github.com/gbc-backup/gbc/cmd/internal/checkwalarchive"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/deletecmd"
	"github.com/gbc-backup/gbc/cmd/internal/keepcmd"
	"github.com/gbc-backup/gbc/cmd/internal/listcmd"
	"github.com/gbc-backup/gbc/cmd/internal/restorecmd"
	"github.com/gbc-backup/gbc/cmd/internal/showcmd"
	"github.com/gbc-backup/gbc/cmd/internal/walarchive"
	"github.com/gbc-backup/gbc/cmd/internal/walrestore"
)

func main() {
	os.Exit(cli.Run(commands(), os.Args))
}

// commands lists every gbc-* command. Each lives in its own package under
// cmd/internal and returns its *cli.Command.
func commands() []*cli.Command {
	return []*cli.Command{
		backupcmd.Command(),
		restorecmd.Command(),
		listcmd.Command(),
		showcmd.Command(),
		deletecmd.Command(),
		keepcmd.Command(),
		walarchive.Command(),
		walrestore.Command(),
		checkwalarchive.Command(),
	}
}
