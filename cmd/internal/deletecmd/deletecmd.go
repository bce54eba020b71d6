// Package deletecmd is gbc-backup-delete: delete one backup, or what a
// retention policy makes obsolete, and the WAL no remaining backup needs.
package deletecmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/render"
	"github.com/gbc-backup/gbc/retention"
	"github.com/gbc-backup/gbc/retention/prune"
	"github.com/gbc-backup/gbc/snapshot"
)

// minOrphanAge is the smallest --orphan-age accepted. It decides for the
// STARTED records of releases that do not stop on a lost heartbeat (a slow
// store or a paused machine must not pass such a live backup for a dead
// one and have the WAL it needs deleted), and for the uploads of Puts that
// may still be running: a large part on a slow link, an archive call.
const minOrphanAge = time.Hour

const description = `Deletes backups and the archived WAL that no remaining backup needs, in an
order that leaves the store consistent if it stops at any point: a backup's
record first (so it no longer exists for list and restore), then its parts,
and WAL only once the backups are gone.

Give exactly one of:
  --backup-id ID           one backup: an id, a name, latest or oldest; refused
                           when incremental or differential backups are built
                           on it (the refusal names them all), unless
                           --with-dependents deletes them too
  --retention-policy P     what P makes obsolete, in barman's syntax:
                           "REDUNDANCY n" keeps the newest n full backups;
                           "RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS" keeps what is
                           needed to recover to any point of the window (the
                           newest full backup ending before it, and everything
                           after it; a month is 31 days)

Always:
  - A policy counts full backups only, as pgBackRest's repo-retention-full
    does: an incremental or differential backup is kept or deleted with the
    full backup of its chain. One whose chain is broken (a parent missing or
    FAILED) cannot be restored, and a policy deletes it.
  - A backup is deleted only after every backup built on it, so that a run
    stopped at any point never leaves an incremental without its parent.
  - Backups with a keep annotation (gbc-backup-keep) are never deleted, and do
    not count toward REDUNDANCY or --minimum-redundancy; nor are the backups
    a kept one is built on (its chain down to the full) or built on it.
  - --minimum-redundancy N keeps at least N DONE full backups; deleting one by
    id below that is refused. Incremental and differential backups do not
    count: none is a copy of the data without its full backup.
  - FAILED backups and objects under base/<id>/ without a record are cleaned up
    once older than --orphan-age. A STARTED backup is dead, and cleaned up,
    once its heartbeat has stopped for three of the intervals its record
    declares (15 minutes for gbc-backup's 5), or after --orphan-age for a
    record without one (older releases); until then its WAL stays.
  - What killed uploads leave outside the objects under the server's prefix
    (incomplete S3 multipart uploads, file:// temporary files) is removed when
    it belongs to a backup deleted now, or is older than --orphan-age and not
    under a backup in progress. GCS and Azure expire theirs by themselves.
  - WAL before the begin WAL of the oldest remaining backup is deleted on
    every timeline, except timeline history files, the begin..end WAL of
    standalone-kept backups (and of those built on them), and everything
    after a full-kept backup or a backup in progress. A backup that stays only
    because a kept backup is built on it keeps no WAL of its own. A backup's
    .backup file goes with it.
  - A snapshot backup's provider snapshots are deleted before its record, with
    the provider's standard credentials (AWS ec2:DeleteSnapshot, GCP
    compute.snapshots.delete, Azure snapshots/delete); snapshots already gone
    are fine. When one cannot be deleted, the backup's record is kept and the
    command fails once the rest is done: run it again to finish.

--dry-run prints exactly what would be deleted (backups, dependents included,
WAL ranges per timeline, object counts and bytes) and deletes nothing; each
backup's reason says why (stable strings, e.g. "built on a deleted backup ID",
"needed by a kept backup ID"). --format json gives
the same report as one JSON object, whose fields later releases only add to:
server, dry_run, policy, target, minimum_redundancy, orphan_age; deleted,
retained and skipped (lists of backups: id, name, status, keep, type,
parent_id, timeline, begin_time, end_time, begin_wal, end_wal, reason,
objects, bytes, snapshots as {provider, id, disk}); wal
(floor, off, ranges of {timeline, first, last, objects, bytes}, objects,
bytes, kept_objects, kept_bytes); stale (what, count, bytes: the leftovers of
killed uploads removed, not counted in objects; what is empty on GCS and
Azure); notes; objects and bytes (all deleted).

Examples:
  gbc-backup-delete --retention-policy "RECOVERY WINDOW OF 14 DAYS" s3://bucket/pg main
  gbc-backup-delete --dry-run --retention-policy "REDUNDANCY 3" --minimum-redundancy 2 s3://bucket/pg main
  gbc-backup-delete --backup-id 20261124T214842Z file:///var/lib/gbc main
  gbc-backup-delete --dry-run --backup-id 20261124T214842Z --with-dependents s3://bucket/pg main`

// Command returns gbc-backup-delete.
func Command() *cli.Command {
	return &cli.Command{
		Name:        "gbc-backup-delete",
		Usage:       "delete backups by id or retention policy, and the WAL they no longer need",
		ArgsUsage:   "STORE_URL SERVER_NAME",
		Description: description,
		MinArgs:     2,
		MaxArgs:     2,
		Flags: append(append(cli.StoreFlags(),
			cli.String("backup-id", "delete this backup: an id, a name, latest or oldest", ""),
			cli.Bool("with-dependents", "with --backup-id: also delete the incremental and differential backups built on it"),
			cli.String("retention-policy", `delete what this policy makes obsolete: "REDUNDANCY n" or "RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS"`, ""),
			cli.Int("minimum-redundancy", "never leave fewer DONE full backups (without keep annotation) than this", 0),
			&ucli.DurationFlag{Name: "orphan-age", Usage: "clean FAILED backups, dead STARTED ones and objects without a record once older than this", Value: 24 * time.Hour, EnvVars: []string{"GBC_ORPHAN_AGE"}},
			cli.Bool("dry-run", "print what would be deleted, and delete nothing"),
			render.FormatFlag(),
		), cli.SnapshotAPIFlags()...),
		Action: run,
	}
}

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server := e.Args[0], e.Args[1]
	if err := cli.CheckServerName(server); err != nil {
		return err
	}
	format := e.String("format")
	if err := render.CheckFormat(format); err != nil {
		return err
	}
	opt := prune.Options{
		Target:         e.String("backup-id"),
		WithDependents: e.Bool("with-dependents"),
		MinRedundancy:  e.Int("minimum-redundancy"),
		OrphanAge:      e.Duration("orphan-age"),
		DryRun:         e.Bool("dry-run"),
		Logf:           e.Log.Debugf,
	}
	policy := e.String("retention-policy")
	switch {
	case (policy == "") == (opt.Target == ""):
		return cli.Usagef("give exactly one of --backup-id and --retention-policy")
	case opt.WithDependents && opt.Target == "":
		return cli.Usagef("--with-dependents goes with --backup-id: a policy deletes a full backup's dependents with it anyway")
	case opt.MinRedundancy < 0:
		return cli.Usagef("--minimum-redundancy %d: must be 0 or more", opt.MinRedundancy)
	case opt.OrphanAge < minOrphanAge:
		return cli.Usagef("--orphan-age %s: must be at least %s, so that a running backup is never taken for a dead one", opt.OrphanAge, minOrphanAge)
	}
	if policy != "" {
		p, err := retention.ParsePolicy(policy)
		if err != nil {
			return cli.Exit(cli.ExitUsage, err)
		}
		opt.Policy = &p
	}
	// A record holds where each snapshot is (region, project, resource
	// group), never an endpoint: that comes from the options.
	endpoint, poll := e.SnapshotAPI()
	if endpoint != "" {
		if err := snapshot.CheckEndpoint(endpoint); err != nil {
			return cli.Usagef("--snapshot-endpoint-url: %v", err)
		}
	}
	opt.SnapshotOpener = snapshot.OpenWith(snapshot.Config{Endpoint: endpoint, PollInterval: poll})

	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	rep, runErr := prune.Run(ctx, s, catalog.Layout{Server: server}, opt)
	switch {
	case errors.Is(runErr, retention.ErrRefused):
		return cli.Exit(cli.ExitConflict, runErr)
	case errors.Is(runErr, retention.ErrUnknownBackup):
		return cli.Exit(cli.ExitNotFound, runErr)
	case runErr != nil && rep.Objects == 0 && len(rep.Deleted) == 0:
		return runErr
	}
	// Part of the work may be done before an error: report it, then fail.
	var werr error
	if format == "json" {
		werr = writeJSON(e.Stdout, rep)
	} else {
		werr = writeText(e.Stdout, rep, opt.DryRun || e.Log.Verbose())
	}
	for _, n := range rep.Notes {
		e.Log.Infof("%s", n)
	}
	if runErr != nil {
		return runErr
	}
	return werr
}

func writeJSON(w io.Writer, rep *prune.Report) error {
	// Empty lists print as [] rather than null, so that monitoring can
	// iterate without a null check.
	if rep.Deleted == nil {
		rep.Deleted = []prune.Backup{}
	}
	if rep.Retained == nil {
		rep.Retained = []prune.Backup{}
	}
	if rep.WAL.Ranges == nil {
		rep.WAL.Ranges = []retention.WALRange{}
	}
	return render.JSON(w, rep)
}

func writeText(w io.Writer, rep *prune.Report, retained bool) error {
	verb := "Deleted"
	if rep.DryRun {
		verb = "Would delete"
	}
	what := rep.Policy
	if what == "" {
		what = "--backup-id " + rep.Target
	}
	fmt.Fprintf(w, "Server %s, %s, minimum redundancy %d, orphan age %s", rep.Server, what, rep.MinimumRedundancy, rep.OrphanAge)
	if rep.DryRun {
		fmt.Fprint(w, " (dry run: nothing is deleted)")
	}
	fmt.Fprintln(w)

	table := func(title string, bs []prune.Backup) {
		if len(bs) == 0 {
			return
		}
		fmt.Fprintf(w, "%s:\n", title)
		tw := render.Table(w)
		fmt.Fprintln(tw, "  ID\tNAME\tSTATUS\tKEEP\tBEGIN WAL\tEND WAL\tOBJECTS\tSIZE\tREASON")
		for _, b := range bs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", b.ID, render.Dash(b.Name), b.Status, render.Dash(b.Keep),
				render.Dash(b.BeginWAL), render.Dash(b.EndWAL), b.Objects, render.Bytes(b.Bytes), b.Reason)
		}
		tw.Flush()
	}
	if len(rep.Deleted) == 0 {
		fmt.Fprintf(w, "%s no backup.\n", verb)
	}
	table(verb+" backups", rep.Deleted)
	snapshots(w, verb+" provider snapshots", rep.Deleted)
	table("Not deleted", rep.Skipped)
	if retained {
		table("Retained backups", rep.Retained)
	}

	walVerb := "WAL deleted"
	if rep.DryRun {
		walVerb = "WAL to delete"
	}
	switch {
	case rep.WAL.Off != "":
		fmt.Fprintf(w, "%s: none, because %s.\n", walVerb, rep.WAL.Off)
	case len(rep.WAL.Ranges) == 0:
		fmt.Fprintf(w, "%s: none (none before %s outside kept ranges).\n", walVerb, rep.WAL.Floor)
	default:
		fmt.Fprintf(w, "%s (before %s, outside kept ranges):\n", walVerb, rep.WAL.Floor)
		tw := render.Table(w)
		fmt.Fprintln(tw, "  TIMELINE\tFIRST\tLAST\tOBJECTS\tSIZE")
		for _, r := range rep.WAL.Ranges {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%s\n", r.Timeline, r.First, r.Last, r.Objects, render.Bytes(r.Bytes))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "WAL kept: %d objects, %s.\n", rep.WAL.KeptObjects, render.Bytes(rep.WAL.KeptBytes))
	if rep.Stale.What != "" {
		staleVerb := "removed"
		if rep.DryRun {
			staleVerb = "to remove"
		}
		fmt.Fprintf(w, "Stale %s %s: %d, %s.\n", rep.Stale.What, staleVerb, rep.Stale.Count, render.Bytes(rep.Stale.Bytes))
	}
	total := "Total deleted"
	if rep.DryRun {
		total = "Total to delete"
	}
	_, err := fmt.Fprintf(w, "%s: %d objects, %s (%d backup(s), %d WAL objects).\n",
		total, rep.Objects, render.Bytes(rep.Bytes), len(rep.Deleted), rep.WAL.Objects)
	return err
}

// snapshots lists the provider snapshots of bs, one line each, so that an
// operator can find them in the provider's console.
func snapshots(w io.Writer, title string, bs []prune.Backup) {
	tw := render.Table(w)
	for _, b := range bs {
		for _, s := range b.Snapshots {
			if title != "" {
				fmt.Fprintf(w, "%s:\n", title)
				fmt.Fprintln(tw, "  BACKUP\tPROVIDER\tDISK\tSNAPSHOT")
				title = ""
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", b.ID, s.Provider, render.Dash(s.Disk), s.ID)
		}
	}
	tw.Flush()
}
