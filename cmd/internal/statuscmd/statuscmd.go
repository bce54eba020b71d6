// Package statuscmd is gbc-status: one line (or one JSON object) per
// server saying whether it is protected now, with monitoring-plugin exit
// codes, and optionally a Prometheus textfile.
package statuscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/render"
	"github.com/gbc-backup/gbc/metrics"
	"github.com/gbc-backup/gbc/status"
)

// ExitUnknown is gbc-status's exit code for every error, usage errors
// included: the monitoring-plugin convention's UNKNOWN, since 1 and 2 mean
// warning and critical here.
const ExitUnknown = 3

// Defaults of the limits.
const (
	// DefaultMaxBackupAge fits a daily backup with two hours of slack for
	// a slow run.
	DefaultMaxBackupAge = 26 * time.Hour
	// DefaultMaxWALAge is an RPO many teams accept; set archive_timeout
	// below it, or an idle server archives no segment and looks late.
	DefaultMaxWALAge = 15 * time.Minute
)

const description = `Reports, for SERVER_NAME or, without it, for every server in the store (the
fleet view), whether it is protected now:

  - the last DONE backup: id, type, size and age;
  - the number of backups and their stored size;
  - the newest archived WAL segment and its age: the data lost (RPO) if the
    host died now;
  - the WAL gaps on the way recovery follows, from the oldest backup's begin
    WAL to the newest segment;
  - the last restore drill (gbc-verify --drill): its result and RTO;
  - a state: critical when there is no DONE backup, no WAL, a newest segment
    older than --max-wal-age, a gap after the latest backup, or a last backup
    older than twice --max-backup-age; warning when the last backup is older
    than --max-backup-age, for a gap before the latest backup, a FAILED last
    backup attempt or a failed last drill; ok otherwise.

One line per server, or --format json. --metrics-file writes the same facts
as a Prometheus textfile for node_exporter's textfile collector (see the
README for the metrics and sample alert rules).

The age of the newest segment measures the RPO only if the server switches
segments regularly: set archive_timeout (for instance 60s) below
--max-wal-age, or an idle server looks late.

Exit codes follow the monitoring-plugin convention (Nagios, Icinga,
Sensu), not the other gbc commands: 0 ok, 1 warning, 2 critical (the worst
server's state), 3 unknown: any error, a bad option or argument included,
an unreachable store, an unknown server.

Examples:
  gbc-status s3://bucket/pg main
  gbc-status --max-wal-age 5m --format json s3://bucket/pg
  gbc-status --metrics-file /var/lib/node_exporter/textfile/gbc-status.prom file:///var/lib/gbc`

// Command returns gbc-status.
func Command() *cli.Command {
	jobs := cli.Int("jobs", "servers scanned at once", status.DefaultJobs)
	jobs.Action = func(_ *ucli.Context, n int) error {
		if n < 1 {
			return cli.Usagef("--jobs %d: give 1 or more", n)
		}
		return nil
	}
	flags := append(cli.StoreFlags(), render.FormatFlag(),
		cli.Duration("max-backup-age", "warn when the last DONE backup is older than this (critical past twice it; 0: no limit)",
			DefaultMaxBackupAge, 0, "a duration such as 26h or 8d (0: no limit)"),
		cli.Duration("max-wal-age", "critical when the newest archived WAL segment is older than this (0: no limit)",
			DefaultMaxWALAge, 0, "a duration such as 15m or 1h (0: no limit)"),
		cli.String("metrics-file", "also write the facts as a Prometheus textfile (e.g. .../textfile/gbc-status.prom)", ""),
		jobs,
	)
	return &cli.Command{
		Name:        "gbc-status",
		Usage:       "report the backup and WAL health of one server or of every server in a store",
		ArgsUsage:   "STORE_URL [SERVER_NAME]",
		Description: description,
		MinArgs:     1,
		MaxArgs:     2,
		Flags:       flags,
		Action:      run,
		ExitCode:    exitCode,
	}
}

// exitCode keeps the states' codes and makes every error UNKNOWN.
func exitCode(err error) int {
	var st stateExit
	if errors.As(err, &st) {
		return int(st.state)
	}
	return ExitUnknown
}

// stateExit ends gbc-status with a state's code, quietly: the state is
// the report, not an error.
type stateExit struct {
	state status.State
	error
}

func (s stateExit) Unwrap() error { return s.error }

func run(ctx context.Context, e *cli.Env) error {
	storeURL, server := e.Args[0], ""
	if len(e.Args) == 2 {
		server = e.Args[1]
		if err := cli.CheckServerName(server); err != nil {
			return err
		}
	}
	format := e.String("format")
	if err := render.CheckFormat(format); err != nil {
		return err
	}
	lim := status.Limits{MaxBackupAge: e.Duration("max-backup-age"), MaxWALAge: e.Duration("max-wal-age")}
	// Monitoring waits on this: a stalled store must end it within
	// --retry-timeout.
	ctx, cancel := e.Bound(ctx)
	defer cancel()
	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	facts, err := gather(ctx, s, server, e.Int("jobs"))
	if err != nil {
		return err
	}
	now := time.Now()
	doc := Build(facts, lim, now)
	if format == "json" {
		err = render.JSON(e.Stdout, doc)
	} else {
		err = WriteText(e.Stdout, doc)
	}
	if err != nil {
		return err
	}
	if path := e.String("metrics-file"); path != "" {
		f := metrics.File{Path: path}
		if server != "" {
			err = f.Merge(server, Samples(doc))
		} else {
			err = f.Write(Samples(doc))
		}
		if err != nil {
			return fmt.Errorf("--metrics-file: %w", err)
		}
	}
	if doc.State != status.OK {
		return stateExit{state: doc.State, error: cli.Quiet(int(doc.State))}
	}
	return nil
}

func gather(ctx context.Context, s cloud.Store, server string, jobs int) ([]status.Facts, error) {
	if server != "" {
		f, err := status.Gather(ctx, s, server)
		if err != nil {
			return nil, err
		}
		return []status.Facts{f}, nil
	}
	facts, err := status.Fleet(ctx, s, jobs)
	if err == nil && len(facts) == 0 {
		err = errors.New("no server in this store: check STORE_URL (and its prefix)")
	}
	return facts, err
}

// WriteText prints one line per server:
//
//	main ok: backup 20261130T020000Z full 1.2GiB 10h ago (4 backups, 4.8GiB); WAL 000000010000000000000042 2m ago; no WAL gap; drill ok RTO 42s 1d ago
//
// followed, when the server is not ok, by " -- " and the reasons.
func WriteText(w io.Writer, doc Document) error {
	for _, r := range doc.Servers {
		var parts []string
		if b := r.LastBackup; b != nil {
			parts = append(parts, fmt.Sprintf("backup %s %s %s %s ago (%d backups, %s)", b.ID, b.Type, render.Bytes(b.StoredSize),
				status.Duration(seconds(b.AgeSeconds)), r.Backups, render.Bytes(r.StoredSize)))
		} else {
			parts = append(parts, "no backup")
		}
		if wl := r.NewestWAL; wl != nil {
			parts = append(parts, fmt.Sprintf("WAL %s %s ago", wl.Name, status.Duration(seconds(wl.AgeSeconds))))
		} else {
			parts = append(parts, "no WAL")
		}
		switch n := len(r.WALGaps) + r.MoreWALGaps; {
		case r.WALCheckedFrom == "":
			parts = append(parts, "WAL gaps not checked")
		case n == 0:
			parts = append(parts, "no WAL gap")
		default:
			parts = append(parts, fmt.Sprintf("%d WAL gaps", n))
		}
		if d := r.LastDrill; d != nil {
			result := "failed"
			if d.OK {
				result = fmt.Sprintf("ok RTO %s", status.Duration(seconds(d.RTOSeconds)))
			}
			parts = append(parts, fmt.Sprintf("drill %s %s ago", result, status.Duration(seconds(d.AgeSeconds))))
		}
		line := fmt.Sprintf("%s %s: %s", r.Server, r.State, strings.Join(parts, "; "))
		if len(r.Reasons) > 0 {
			line += " -- " + strings.Join(r.Reasons, "; ")
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
