// Package checkwalarchive is gbc-check-wal-archive: it refuses a store area
// that already holds another cluster's WAL, before a new cluster archives
// there.
package checkwalarchive

import (
	"context"
	"errors"
	"math"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/wal"
)

const description = `Checks that SERVER_NAME's WAL area in the store is safe for a new cluster
to archive into: it exits 0 when the area is empty, or holds only WAL of
timelines below --timeline N, and 4 otherwise, naming the first file found.
Run it before pointing archive_command at a store, so that two clusters
never mix their WAL under one name. --timeline is for a cluster that
continues an archived one on a new timeline (after a point-in-time restore):
give the first timeline it will write.

Examples:
  gbc-check-wal-archive s3://bucket/pg main
  gbc-check-wal-archive --timeline 3 s3://bucket/pg main
  gbc-check-wal-archive --endpoint-url http://127.0.0.1:10000/devstoreaccount1 azblob://container/pg main

Exit codes: 0 safe to use; 2 bad option, argument or store URL; 3 the store
cannot be used (credentials, permission, missing bucket); 4 the area holds
WAL (or other objects) that a new cluster could collide with; 1 any other
failure.`

// Command returns gbc-check-wal-archive.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "gbc-check-wal-archive",
		Usage:       "check that a server's WAL area is empty before archiving into it",
		ArgsUsage:   "STORE_URL SERVER_NAME",
		Description: description,
		MinArgs:     2,
		MaxArgs:     2,
		Flags: append(cli.StoreFlags(),
			cli.Int("timeline", "accept WAL of timelines below N (0: accept none)", 0)),
		Action: run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server := e.Args[0], e.Args[1]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	tli := e.Int("timeline")
	if tli < 0 || tli > math.MaxUint32 {
		return cli.Usagef("--timeline %d: give a timeline from 1 to %d, or 0", tli, uint32(math.MaxUint32))
	}
	store, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer store.Close()
	found, err := wal.CheckArchive(ctx, store, catalog.Layout{Server: server}, uint32(tli))
	if errors.Is(err, wal.ErrArchiveInUse) {
		return cli.Exit(cli.ExitConflict, err)
	}
	if err != nil {
		return err
	}
	if found == nil {
		if tli > 0 {
			e.Log.Infof("server %q holds no WAL of timeline %d or later: safe to archive into", server, tli)
		} else {
			e.Log.Infof("server %q holds no WAL: safe to archive into", server)
		}
	}
	return nil
}
