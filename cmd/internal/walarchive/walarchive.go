// Package walarchive is gbc-wal-archive, PostgreSQL's archive_command: it
// stores one WAL file (and, ahead of time, the next .ready segments) in the
// store, and succeeds only once it is stored in full.
package walarchive

import (
	"context"
	"errors"
	"path/filepath"
	"time"

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

Push-ahead: when more segments than the one asked for are marked ready in
pg_wal/archive_status (the archiver is behind), gbc-wal-archive starts one
detached background pusher. It keeps one store connection, stores the ready
segments after this one, --max-parallel - 1 at a time, as they appear, and
records each (checksum, fingerprint and size) in pg_wal/.gbc-archived; it
exits once no new segment came for a few seconds (its messages go to
pg_wal/.gbc-archived/.log). When PostgreSQL then asks for one of them, the
file is fingerprinted again and, if it still matches, the call returns at
once without contacting the store; if the pusher is still storing it, the
call waits for it. If the pusher fails, the calls store their segments
themselves and report the error. --max-parallel 1 turns this off.

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
	pusher := cli.Bool(flagPusher, "run as the background pusher (internal)")
	pusher.Hidden = true
	after := cli.String(flagAfter, "the pusher stores the ready segments after this one (internal)", "")
	after.Hidden = true
	return &cli.Command{
		Name:        "gbc-wal-archive",
		Usage:       "archive one WAL file (PostgreSQL's archive_command)",
		ArgsUsage:   "STORE_URL SERVER_NAME WAL_PATH",
		Description: description,
		MinArgs:     3,
		MaxArgs:     3,
		Flags: append(append(cli.StoreFlags(), cli.CompressionFlags()...),
			cli.Int("max-parallel", "segments pushed at once: the one asked for and N-1 ready ones after it by the background pusher (1: no push-ahead)", 4),
			pusher, after),
		Action:       run,
		RetryTimeout: time.Minute,
	}
}

// Flags the background pusher gets; hidden from --help.
const (
	flagPusher = "push-ahead-worker"
	flagAfter  = "push-ahead-after"
)

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
		Log:         e.Log.Slog(),
	}
	open := func(ctx context.Context) (cloud.Store, error) { return e.OpenStore(ctx, storeURL) }
	layout := catalog.Layout{Server: server}
	if e.Bool(flagPusher) {
		if !e.Serves(storeURL) {
			return cli.NotServed(storeURL)
		}
		cli.Background()
		return pushAhead(ctx, e, open, layout, path, opts)
	}
	cli.ShortLived()
	// PostgreSQL waits for archive_command: a call that hangs on a stalled
	// store holds up every later segment while pg_wal fills the disk. One
	// that gives up is simply run again by the archiver.
	ctx, cancel := e.Bound(ctx)
	defer cancel()
	// A front that does not serve this store (see cli.Serves) answers a
	// pushed-ahead segment from its marker, and leaves the rest, the
	// pusher included, to the full binary.
	if opts.MaxParallel > 1 && e.Serves(storeURL) {
		opts.StartPusher = func(after wal.Name) error {
			return cli.SpawnDetached(e, filepath.Join(wal.MarkerDir(filepath.Dir(path)), wal.PusherLog),
				"--"+flagPusher, "--"+flagAfter+"="+after.String())
		}
	}
	_, err = wal.Archive(ctx, open, layout, path, opts)
	if errors.Is(err, wal.ErrConflict) {
		return cli.Exit(cli.ExitConflict, err)
	}
	return err
}

// pushAhead is the detached pusher's work.
func pushAhead(ctx context.Context, e *cli.Env, open wal.Opener, layout catalog.Layout, path string, opts wal.ArchiveOptions) error {
	after, err := wal.ParseName(e.String(flagAfter))
	if err != nil {
		return cli.Usagef("--%s: %v", flagAfter, err)
	}
	start := time.Now()
	stored, err := wal.PushAhead(ctx, open, layout, filepath.Dir(path), after, wal.PushAheadOptions{
		Codec:  opts.Codec,
		Level:  opts.Level,
		Jobs:   opts.MaxParallel - 1,
		Target: opts.Target,
		Log:    e.Log.Slog(),
	})
	e.Log.Infof("%s: pushed %d segments ahead after %s in %s", start.Format(time.RFC3339), len(stored), after, time.Since(start).Round(time.Millisecond))
	return err
}
