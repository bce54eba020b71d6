// Package walarchive is gbc-wal-archive, PostgreSQL's archive_command: it
// stores one WAL file (and, ahead of time, the next .ready segments) in the
// store, and succeeds only once it is stored in full.
package walarchive

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/wal"
)

const description = `Stores the WAL file WAL_PATH (a segment, .partial, .backup or .history file)
under SERVER_NAME/wals/ in the store, compressed, with the checksum and size of
its content in the object's metadata. It exits 0 only once the object is
stored in full. Set it as PostgreSQL's archive_command, which runs it in the
data directory with %p (the file's path) and PostgreSQL's environment: give
the provider's credentials to the server's environment (for instance with
systemd's Environment= or EnvironmentFile=), never on the command line.

Pushing a file that is already stored with identical content (after a crash
between the upload and PostgreSQL's bookkeeping) succeeds without sending it
again. Different content under the same name is refused (exit 4) and the
stored object is left untouched: another cluster is probably archiving to the
same store and server name.

Look-ahead: while storing the segment it was asked for, gbc-wal-archive also
stores, in parallel, up to --max-parallel - 1 segments that PostgreSQL has
already marked ready in pg_wal/archive_status, and records each (checksum and
size) in pg_wal/.gbc-archived. When PostgreSQL then asks for one of them, the
file is hashed again and, if it still matches, the call returns at once
without contacting the store. --max-parallel 1 turns this off.

Examples:
  archive_command = 'gbc-wal-archive s3://bucket/pg main %p'
  archive_command = 'gbc-wal-archive --endpoint-url http://127.0.0.1:9000 s3://bucket/pg main %p'
  archive_command = 'gbc-wal-archive --compression lz4 --max-parallel 8 gs://bucket/pg main %p'
  GBC_MAX_PARALLEL=1 gbc-wal-archive file:///var/lib/gbc main pg_wal/000000010000000000000003

Exit codes: 0 stored (or already stored, identical); 1 failed (PostgreSQL
retries later); 2 bad option, argument, WAL file name or store URL; 3 the
store cannot be used (credentials, permission, missing bucket); 4 different
content is already archived under this name; 6 the local disk is full.`

// Command returns gbc-wal-archive.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "gbc-wal-archive",
		Usage:       "archive one WAL file (PostgreSQL's archive_command)",
		ArgsUsage:   "STORE_URL SERVER_NAME WAL_PATH",
		Description: description,
		MinArgs:     3,
		MaxArgs:     3,
		Flags: append(append(cli.StoreFlags(), cli.CompressionFlags()...),
			cli.Int("max-parallel", "WAL files pushed at once: the one asked for and up to N-1 ready ones after it (1: no look-ahead)", 4)),
		Action: run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server, path := e.Args[0], e.Args[1], e.Args[2]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	if _, err := wal.ParseName(filepath.Base(path)); err != nil {
		return cli.Usagef("WAL_PATH %q: %v", path, err)
	}
	codec, level, err := e.Codec()
	if err != nil {
		return err
	}
	opts := wal.ArchiveOptions{
		Codec:       codec,
		Level:       level,
		MaxParallel: max(1, e.Int("max-parallel")),
		Target:      wal.StoreTarget(storeURL, e.String("endpoint-url")),
		Log:         e.Log,
	}
	open := func(ctx context.Context) (cloud.Store, error) { return e.OpenStore(ctx, storeURL) }
	_, err = wal.Archive(ctx, open, catalog.Layout{Server: server}, path, opts)
	if errors.Is(err, wal.ErrConflict) {
		return cli.Exit(cli.ExitConflict, err)
	}
	return err
}
