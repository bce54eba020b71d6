// Package walrestore is gbc-wal-restore, PostgreSQL's restore_command: it
// writes one archived WAL file to the path PostgreSQL gives, verified, and
// prefetches the next segments in a detached background process.
package walrestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/wal"
)

const description = `Writes the archived WAL file WAL_NAME (a segment or a TLI.history file) of
SERVER_NAME to DEST_PATH, whatever codec it was stored with. The content is
checked against the checksum and size recorded when it was archived, written
to a temporary file beside DEST_PATH, synced and renamed: DEST_PATH is a
verified full copy or does not exist. Set it as PostgreSQL's restore_command,
which runs it in the data directory with %f (the file's name) and %p (where
to put it), and PostgreSQL's environment (credentials included).

When a segment is not archived but WAL_NAME.partial is (the last segment of a
timeline, kept at a promotion), that file is restored instead; --no-partial
turns this off, as for barman-cloud-wal-restore.

Prefetch: after restoring a segment, a detached background process downloads
the next --prefetch segments of the same timeline in parallel into
pg_wal/.gbc-prefetch (its messages go to pg_wal/.gbc-prefetch/.log). Later
calls take their segment from there after verifying its checksum, without a
round trip to the store. Stale files are removed. --prefetch 0 turns it off.

Examples:
  restore_command = 'gbc-wal-restore s3://bucket/pg main %f %p'
  restore_command = 'gbc-wal-restore --endpoint-url http://127.0.0.1:9000 s3://bucket/pg main %f %p'
  restore_command = 'gbc-wal-restore --prefetch 16 azblob://container/pg main %f %p'
  gbc-wal-restore file:///var/lib/gbc main 00000002.history ./00000002.history

Exit codes: 0 restored; 1 the file is not in the store (PostgreSQL takes this
as the end of the archive); 126 any other failure, including a bad option or
store URL, missing credentials, an unreachable store after retries, a
checksum mismatch or a full disk: PostgreSQL then stops recovery instead of
taking the failure for the end of the archive and promoting too early. On a
standby (standby.signal in the current directory, which is the data
directory under PostgreSQL) they exit with their usual code instead (2 bad
usage, 3 store unusable or unreachable, 4 checksum mismatch, 6 disk full),
because a standby keeps retrying and must not shut down on a passing outage.`

// Flags a prefetcher child gets; hidden from --help.
const (
	flagWorker      = "prefetch-worker"
	flagSegmentSize = "prefetch-segment-size"
)

// prefetchJobs bounds parallel downloads of one prefetcher: enough to hide
// round trips, few enough that decompression and fsync do not starve the
// recovering server of its cores.
const prefetchJobs = 4

// workerTimeout bounds a detached prefetcher's life: it is not waited for
// by anyone, so it must never linger.
const workerTimeout = 10 * time.Minute

// Command returns gbc-wal-restore.
func Command() *cli.Command {
	worker := cli.Bool(flagWorker, "run as the detached prefetcher (internal)")
	worker.Hidden = true
	segSize := cli.Int(flagSegmentSize, "segment size for the prefetcher (internal)", 0)
	segSize.Hidden = true
	prefetch := cli.Int("prefetch", "segments to download ahead in the background after a segment (0: none)", 8)
	prefetch.Action = func(_ *ucli.Context, n int) error {
		if n < 0 {
			return cli.Usagef("--prefetch %d: give 0 (no prefetch) or more", n)
		}
		return nil
	}
	return &cli.Command{
		Name:        "gbc-wal-restore",
		Usage:       "restore one WAL file (PostgreSQL's restore_command)",
		ArgsUsage:   "STORE_URL SERVER_NAME WAL_NAME DEST_PATH",
		Description: description,
		MinArgs:     4,
		MaxArgs:     4,
		Flags: append(cli.StoreFlags(),
			cli.Bool("no-partial", "do not restore WAL_NAME.partial when segment WAL_NAME is not archived"),
			prefetch, worker, segSize),
		Action:   run,
		ExitCode: ExitCode,
		// A restore_command that cannot fetch a file must stop recovery
		// (126) within a minute, not hang it without a word.
		RetryTimeout: time.Minute,
	}
}

// ExitCode keeps 1 for "not in the store" alone. PostgreSQL treats any
// status up to 125 as "no such file", which during archive recovery means
// the end of the archive: recovery ends and the server promotes. So every
// other failure, even a usage error in restore_command, exits 126, which
// makes PostgreSQL stop recovery and say why. A standby is different: it
// retries restore_command (and streaming) until it succeeds, and a status
// above 125 would shut it down over a passing outage.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return cli.ExitOK
	case errors.Is(err, wal.ErrNotArchived):
		return cli.ExitFailure
	case !onStandby():
		return cli.ExitAbortRecovery
	// On a standby, the usual codes, with the two failures CodeOf leaves
	// generic given their own, so that 1 keeps meaning "absent".
	case errors.Is(err, wal.ErrChecksum), errors.Is(err, wal.ErrWrongFile):
		return cli.ExitConflict
	case errors.Is(err, cloud.ErrTransient):
		return cli.ExitStore
	}
	return cli.CodeOf(err)
}

// onStandby tells whether the current directory holds standby.signal:
// PostgreSQL runs restore_command in the data directory.
func onStandby() bool {
	_, err := os.Stat("standby.signal")
	return err == nil
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server, walName, dest := e.Args[0], e.Args[1], e.Args[2], e.Args[3]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	name, err := wal.ParseName(walName)
	if err != nil {
		return cli.Usagef("WAL_NAME: %v", err)
	}
	if name.Kind == wal.Partial || name.Kind == wal.Backup {
		// PostgreSQL asks only for segments and history files; the others
		// are restored under their own name by hand, which is allowed.
		e.Log.Debugf("%s is a %s: restoring it as it is", name, name.Kind)
	}
	layout := catalog.Layout{Server: server}
	target := wal.StoreTarget(storeURL, e.String("endpoint-url"))
	open := func(ctx context.Context) (cloud.Store, error) { return e.OpenStore(ctx, storeURL) }
	count := e.Int("prefetch")

	if e.Bool(flagWorker) {
		if !e.Serves(storeURL) {
			return cli.NotServed(storeURL)
		}
		cli.Background()
		return prefetch(ctx, e, open, layout, name, dest, target, count)
	}
	cli.ShortLived()
	ctx, cancel := e.Bound(ctx)
	defer cancel()

	res, err := wal.Restore(ctx, open, layout, name, dest, wal.RestoreOptions{
		NoPartial: e.Bool("no-partial"),
		Target:    target,
		Log:       e.Log.Slog(),
	})
	if err != nil {
		return err
	}
	if res.FromPartial {
		e.Log.Infof("%s is not archived: restored %s.partial in its place", name, name)
	}
	if name.Kind == wal.Segment && !res.FromPartial && wal.ShouldPrefetch(dest, name, res.Size, count, target, layout) {
		// The restore is done and verified: a failure to start the helper
		// only costs speed.
		if err := spawnPrefetcher(e, dest, res.Size); err != nil {
			e.Log.Debugf("prefetch not started: %v", err)
		}
	}
	return nil
}

// prefetch is the detached child's work.
func prefetch(ctx context.Context, e *cli.Env, open wal.Opener, layout catalog.Layout, from wal.Name, dest, target string, count int) error {
	ctx, cancel := context.WithTimeout(ctx, workerTimeout)
	defer cancel()
	fetched, err := wal.Prefetch(ctx, open, layout, dest, from, int64(e.Int(flagSegmentSize)), wal.PrefetchOptions{
		Count:  count,
		Jobs:   min(count, prefetchJobs),
		Target: target,
		Log:    e.Log.Slog(),
	})
	e.Log.Infof("%s: prefetched %d segments after %s", time.Now().Format(time.RFC3339), len(fetched), from)
	return err
}

// spawnPrefetcher starts this program again as a detached prefetcher for
// the segments after the one just restored, logging into the spool. It
// takes the spool's lock itself, so a second one exits at once.
func spawnPrefetcher(e *cli.Env, dest string, segSize int64) error {
	return cli.SpawnDetached(e, filepath.Join(wal.SpoolDir(dest), wal.SpoolLog),
		"--"+flagWorker, "--"+flagSegmentSize+"="+strconv.FormatInt(segSize, 10))
}
