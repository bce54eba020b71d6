// Package keepcmd is gbc-backup-keep: add, release or show the keep
// annotation of a backup.
package keepcmd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/retention"
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

Incremental and differential backups: the annotation is written on the one
backup named, and gbc-backup-delete derives the rest from it, so that
--release frees everything it held:
  - a kept incremental or differential backup also holds the backups it is
    built on, down to its full backup: restoring it needs them. They keep their
    data, not their WAL (the kept backup's own WAL is enough to restore it).
  - a kept backup also holds every backup built on it, as barman does for a
    kept full backup: they are kept the same way (full or standalone).
  - a backup whose chain is broken (a parent missing or FAILED) cannot be
    restored, and keeping it is refused.
A backup held by another one's keep shows "none" with --status, and a note
names the kept backup to release.

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
	lin, linErr := lineage(ctx, s, l, b.ID)
	if status {
		keep := b.Keep
		if keep == "" {
			keep = "none"
		}
		// The chain is a note only: --status answers even if the
		// listing fails.
		switch {
		case linErr != nil:
			e.Log.Debugf("chain of backup %s not checked: %v", b.ID, linErr)
		case b.Keep == "" && len(lin.KeptBy) > 0:
			e.Log.Infof("backup %s has no keep annotation, but stays with kept backup %s", b.ID, strings.Join(lin.KeptBy, ", "))
		}
		_, err := fmt.Fprintf(e.Stdout, "%s\n", keep)
		return err
	}
	if linErr != nil {
		return linErr
	}
	if target != "" && lin.Broken != "" {
		return cli.Exitf(cli.ExitConflict, "refused to keep backup %s: it cannot be restored (%s); keep a backup whose chain down to a full backup is complete", b.ID, lin.Broken)
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
	case release && old == "" && len(lin.KeptBy) > 0:
		e.Log.Infof("backup %s had no keep annotation; it stays with kept backup %s: release that one to free it", b.ID, strings.Join(lin.KeptBy, ", "))
	case release && old == "":
		e.Log.Infof("backup %s had no keep annotation", b.ID)
	case release:
		e.Log.Infof("backup %s: keep %s released; retention applies to it again%s", b.ID, old, chainNote(lin, "and to"))
	case old == target:
		e.Log.Infof("backup %s is already kept (%s)%s", b.ID, target, chainNote(lin, "with"))
	default:
		e.Log.Infof("backup %s is now kept (%s)%s", b.ID, target, chainNote(lin, "with"))
	}
	return nil
}

// lineage tells how backup id relates to the others of the catalog.
func lineage(ctx context.Context, s cloud.Store, l catalog.Layout, id string) (retention.Lineage, error) {
	all, err := catalog.Summaries(ctx, s, l)
	if err != nil {
		return retention.Lineage{}, fmt.Errorf("list the backups of server %s to follow the chain of backup %s: %w", l.Server, id, err)
	}
	entries := make([]retention.Entry, 0, len(all))
	for _, b := range all {
		if b.Status == catalog.StatusUnreadable {
			entries = append(entries, retention.Entry{ID: b.ID, RecordErr: errors.New(b.Error)})
			continue
		}
		entries = append(entries, retention.Entry{ID: b.ID, Record: b})
	}
	return retention.LineageOf(entries, id), nil
}

// chainNote names what a keep holds besides the backup itself, joined to
// the sentence by how ("with", "and to").
func chainNote(lin retention.Lineage, how string) string {
	var parts []string
	if n := len(lin.BuiltOn); n > 0 {
		parts = append(parts, fmt.Sprintf("the %d backup(s) it is built on (%s)", n, strings.Join(lin.BuiltOn, ", ")))
	}
	if n := len(lin.Dependents); n > 0 {
		parts = append(parts, fmt.Sprintf("the %d backup(s) built on it (%s)", n, strings.Join(lin.Dependents, ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	note := ", " + how + " " + strings.Join(parts, " and ")
	if how != "with" {
		note += ", unless another keep holds them"
	}
	return note
}
