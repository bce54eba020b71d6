// Package keepcmd is gbc-backup-keep: add, release or show the keep
// annotation of a backup.
package keepcmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

const description = `A kept backup is never deleted by gbc-backup-delete (by policy or by id), and
does not count toward REDUNDANCY or --minimum-redundancy. Give exactly one of:

  --target full         keep the backup and all WAL after it: point-in-time
                        recovery from it stays possible to any later point
  --target standalone   keep the backup and only the WAL from its begin to its
                        end: enough to restore it as it was, e.g. for archives
  --release             remove the annotation: retention applies again
  --status              print the annotation (full, standalone or none)

Only DONE backups can be kept. BACKUP_ID is an id, a name, latest or oldest.

Examples:
  gbc-backup-keep --target standalone s3://bucket/pg main 20261124T214842Z
  gbc-backup-keep --status s3://bucket/pg main latest
  gbc-backup-keep --release s3://bucket/pg main before-upgrade`

// Command returns gbc-backup-keep.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "gbc-backup-keep",
		Usage:       "keep a backup (and its WAL) out of retention, release it, or show its keep",
		ArgsUsage:   "STORE_URL SERVER_NAME BACKUP_ID",
		Description: description,
		MinArgs:     3,
		MaxArgs:     3,
		Flags: append(cli.StoreFlags(),
			cli.String("target", "keep the backup: full (with all later WAL) or standalone (with its own WAL only)", ""),
			cli.Bool("release", "remove the keep annotation"),
			cli.Bool("status", "print the keep annotation: full, standalone or none"),
		),
		Action: run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server, ref := e.Args[0], e.Args[1], e.Args[2]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	target, release, status := e.String("target"), e.Bool("release"), e.Bool("status")
	n := 0
	for _, set := range []bool{target != "", release, status} {
		if set {
			n++
		}
	}
	if n != 1 {
		return cli.Usagef("give exactly one of --target, --release and --status")
	}
	if target != "" && target != catalog.KeepFull && target != catalog.KeepStandalone {
		return cli.Usagef("--target %q: use %s or %s", target, catalog.KeepFull, catalog.KeepStandalone)
	}

	// Monitoring waits on this: a stalled store must end it with an
	// error within --retry-timeout, never hang it.
	ctx, cancel := e.Bound(ctx)
	defer cancel()
	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	l := catalog.Layout{Server: server}
	b, err := catalog.Find(ctx, s, l, ref, nil)
	if err != nil {
		return err
	}
	if status {
		keep := b.Keep
		if keep == "" {
			keep = "none"
		}
		_, err := fmt.Fprintf(e.Stdout, "%s\n", keep)
		return err
	}
	old := b.Keep
	b, err = catalog.SetKeep(ctx, s, l, b.ID, target)
	switch {
	case errors.Is(err, catalog.ErrNotDone), errors.Is(err, catalog.ErrDeletedMeanwhile):
		return cli.Exit(cli.ExitConflict, err)
	case err != nil:
		return err
	}
	switch {
	case release && old == "":
		e.Log.Infof("backup %s had no keep annotation", b.ID)
	case release:
		e.Log.Infof("backup %s: keep %s released; retention applies to it again", b.ID, old)
	case old == target:
		e.Log.Infof("backup %s is already kept (%s)", b.ID, target)
	default:
		e.Log.Infof("backup %s is now kept (%s)", b.ID, target)
	}
	return nil
}
