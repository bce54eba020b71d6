// Command gbc is the multi-call binary behind every gbc-* command: it runs
// the command named by the link it was started through (gbc-wal-archive,
// gbc-backup, ...) or by its first argument (gbc wal-archive ...).
//
// One binary instead of one per command: the three cloud SDKs make every
// binary about the same size, so separate binaries would multiply the
// release size without making any of them start faster. Measured (issue
// 11): a binary of gbc-wal-archive and gbc-wal-restore alone, with every
// provider, starts in the same CPU time as this one (about 8 ms on 2
// cores); what a start costs is the SDKs' package initialisers and the
// pages they touch: gocloud.dev's blob alone costs 2.5 ms, each provider's
// SDK 1.5 to 2.3 ms more, while a binary with zstd and urfave/cli and no
// SDK starts in 2 ms. A faster WAL front needs the providers out of its
// binary, not the other commands. That is cmd/gbc-wal, which links file://
// alone and execs this binary for every other store; the make build and
// install targets make gbc-wal-archive and gbc-wal-restore point to it.
package main

import (
	"os"

	// Every store provider: s3://, gs:// and azblob:// (file:// is built
	// into package cloud).
	_ "github.com/gbc-backup/gbc/cloud/providers"

	"github.com/gbc-backup/gbc/cmd/internal/backupcmd"
	"github.com/gbc-backup/gbc/cmd/internal/checkwalarchive"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/deletecmd"
	"github.com/gbc-backup/gbc/cmd/internal/keepcmd"
	"github.com/gbc-backup/gbc/cmd/internal/listcmd"
	"github.com/gbc-backup/gbc/cmd/internal/restorecmd"
	"github.com/gbc-backup/gbc/cmd/internal/showcmd"
	"github.com/gbc-backup/gbc/cmd/internal/statuscmd"
	"github.com/gbc-backup/gbc/cmd/internal/verifycmd"
	"github.com/gbc-backup/gbc/cmd/internal/walarchive"
	"github.com/gbc-backup/gbc/cmd/internal/walreceivecmd"
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
		walreceivecmd.Command(),
		checkwalarchive.Command(),
		statuscmd.Command(),
		verifycmd.Command(),
	}
}
