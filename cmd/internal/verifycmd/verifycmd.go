// Package verifycmd is gbc-verify: prove that a server's backups restore,
// by reading every stored object and the WAL archive, or with --drill by
// restoring one, starting PostgreSQL on it and measuring the recovery.
package verifycmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/cmd/internal/recoveryflags"
	"github.com/gbc-backup/gbc/cmd/internal/render"
	"github.com/gbc-backup/gbc/verify"
)

// ExitProblems is gbc-verify's exit code when it ran to the end and found
// something wrong (a backup that cannot be restored, WAL missing, a drill
// that failed), apart from the codes of cli (2 usage, 3 store, 5 unknown
// server or backup) that mean the check itself could not be done.
const ExitProblems = 7

const description = `Reads every part of each backup (BACKUP_ID: an id, a name, latest, oldest,
or all, the default) and checks that it exists, has the size and SHA-256
its record gives, decompresses, and that every file inside has the size
and checksum of the backup's backup_manifest; the manifest and block map
objects too, and the chain of each incremental backup. Then it lists the
WAL archive: every segment from each backup's begin to its end must be
there, and every segment from the oldest backup to the newest archived
one, along timeline switches, with every timeline history file.
--wal-only and --backups-only narrow the check.

Each problem is one line naming the object and what it means ("backup X
cannot be restored", "PITR between A and B is impossible"). Exit 0 only
when everything holds (one summary line), 7 when problems were found,
2, 3 or 5 when the check could not be done.

With --drill, BACKUP_ID (default latest) is restored into a scratch
directory (--scratch-dir, default the system's temporary directory;
tablespaces go there too), PostgreSQL is started on it (from --pg-bindir,
pg_config or PATH; it must be the backup's major version) on a private
unix socket, with archiving off and restore_command through the store, as
gbc-restore configures it; after recovery (to the end of the archive, or
to --target-*) the --sql queries and --amcheck run. The server is stopped
and the scratch directory removed in every case, also on SIGINT and
SIGTERM (SIGKILL cannot be caught: the server is still stopped, by the
kernel's parent-death signal, but the scratch directory stays). It
reports the measured RTO and its phases, the last replayed transaction's
time and the data loss window against the newest archived WAL, and
records the outcome in the store (<server>/drills/<time>.json; --no-record
not). Exit 0 only if the restore, the recovery and every check passed, 7
otherwise. As root, PostgreSQL runs as --os-user (default postgres),
which must be able to run gbc and read a file:// store.

Examples:
  gbc-verify s3://bucket/pg main
  gbc-verify --wal-only --format json gs://bucket/pg main
  gbc-verify --drill --sql 'SELECT count(*) FROM orders' --amcheck s3://bucket/pg main
  gbc-verify --drill --target-time "2026-11-24 21:48:42+01" s3://bucket/pg main`

// Command returns gbc-verify.
func Command() *cli.Command {
	flags := append(cli.StoreFlags(), cli.JobsFlag(), render.FormatFlag(),
		cli.Bool("wal-only", "check the WAL archive only"),
		cli.Bool("backups-only", "check the backups' objects only, not the WAL archive"),
		cli.Bool("drill", "restore the backup, start PostgreSQL on it, run the checks and measure the recovery time"),
		cli.String("scratch-dir", "--drill: make the drill's temporary directory in this one (default: the system's temporary directory)", ""),
		cli.String("pg-bindir", "--drill: PostgreSQL's programs (default: pg_config --bindir, then PATH)", ""),
		cli.String("os-user", "--drill as root: the OS user PostgreSQL runs as", "postgres"),
		cli.String("pg-user", "--drill: the database superuser the checks connect as", "postgres"),
		&ucli.StringSliceFlag{Name: "sql", Usage: "--drill: a query that must succeed on the recovered server; repeatable", EnvVars: []string{"GBC_SQL"}},
		cli.Bool("amcheck", "--drill: check every index and table with pg_amcheck, when installed"),
		&ucli.StringSliceFlag{Name: "pg-setting", Usage: "--drill: a server setting NAME=VALUE for the recovered server (e.g. shared_buffers=1GB); repeatable", EnvVars: []string{"GBC_PG_SETTING"}},
		cli.Duration("recovery-timeout", "--drill: fail when recovery has not ended after this long (0: no limit)", 0, 0, "a duration such as 30m or 2h (0: no limit)"),
		cli.Bool("no-record", "--drill: do not record the outcome in the store"),
		recoveryflags.WALRestoreFlag(),
	)
	flags = append(flags, recoveryflags.TargetFlags()...)
	return &cli.Command{
		Name:        "gbc-verify",
		Usage:       "check that backups and WAL restore, or run a restore drill",
		ArgsUsage:   "STORE_URL SERVER_NAME [BACKUP_ID|all]",
		Description: description,
		MinArgs:     2,
		MaxArgs:     3,
		Flags:       flags,
		Action:      run,
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
	ref := ""
	if len(e.Args) > 2 {
		ref = e.Args[2]
	}
	if e.Bool("drill") {
		return drill(ctx, e, storeURL, server, ref, format)
	}
	for _, f := range []string{"scratch-dir", "pg-bindir", "sql", "amcheck", "pg-setting", "recovery-timeout", "no-record", "wal-restore-command"} {
		if e.IsSet(f) {
			return cli.Usagef("--%s applies to --drill only", f)
		}
	}
	for _, f := range recoveryflags.TargetFlags() {
		if e.IsSet(f.Names()[0]) {
			return cli.Usagef("--%s applies to --drill only", f.Names()[0])
		}
	}
	if e.Bool("wal-only") && e.Bool("backups-only") {
		return cli.Usagef("give at most one of --wal-only and --backups-only")
	}
	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	o := verify.Options{
		Store: s, Server: server, Backup: ref, Jobs: e.Jobs(),
		Backups: !e.Bool("wal-only"), WAL: !e.Bool("backups-only"),
	}
	var pb *bar
	if format == "text" && !e.Bool("quiet") && term.IsTerminal(int(os.Stderr.Fd())) {
		pb = &bar{w: os.Stderr}
		o.Progress = pb
	}
	rep, err := verify.Check(ctx, o)
	pb.finish()
	if errors.Is(err, verify.ErrNothing) {
		return cli.Exit(cli.ExitNotFound, err)
	}
	if err != nil {
		return err
	}
	if format == "json" {
		if err := render.JSON(e.Stdout, checkJSON(rep)); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintln(e.Stdout, p.String())
		}
	}
	if !rep.OK() {
		return cli.Exit(ExitProblems, errors.New(problemSummary(rep)))
	}
	if format == "text" {
		fmt.Fprintln(e.Stdout, okSummary(rep))
	}
	return nil
}

// checkJSON is gbc-verify --format json: the report with ok.
func checkJSON(rep *verify.Report) any {
	backups := rep.Backups
	if backups == nil {
		backups = []verify.BackupResult{}
	}
	return struct {
		OK             bool                  `json:"ok"`
		Server         string                `json:"server"`
		Backups        []verify.BackupResult `json:"backups"`
		WAL            *verify.WALResult     `json:"wal"`
		Problems       []verify.Problem      `json:"problems"`
		ElapsedSeconds float64               `json:"elapsed_seconds"`
	}{rep.OK(), rep.Server, backups, rep.WAL, rep.Problems, rep.Elapsed.Seconds()}
}

// okSummary is the one line of a check that found nothing wrong.
func okSummary(rep *verify.Report) string {
	var parts []string
	if len(rep.Backups) > 0 {
		var n int
		var files, bytes int64
		for _, b := range rep.Backups {
			n += b.Parts
			files += b.Files
			bytes += b.StoredBytes
		}
		parts = append(parts, fmt.Sprintf("%d backups (%d parts, %d files, %s read)", len(rep.Backups), n, files, render.Bytes(bytes)))
	}
	if w := rep.WAL; w != nil {
		s := fmt.Sprintf("the WAL archive (%d segments needed of %d archived, %d history files", w.Checked, w.Segments, w.Histories)
		if w.Newest != "" {
			s += ", newest " + w.Newest
		}
		parts = append(parts, s+")")
	}
	return fmt.Sprintf("server %s: verified %s in %s: everything holds", rep.Server, strings.Join(parts, " and "), rep.Elapsed.Round(time.Millisecond))
}

// problemSummary is the error line of a check that found problems.
func problemSummary(rep *verify.Report) string {
	var bad []string
	for _, b := range rep.Backups {
		if !b.OK {
			bad = append(bad, b.ID)
		}
	}
	msg := fmt.Sprintf("server %s: %d problems found", rep.Server, len(rep.Problems))
	if len(bad) > 0 {
		msg += fmt.Sprintf("; backups that cannot be restored: %s", strings.Join(bad, ", "))
	}
	gaps := 0
	for _, p := range rep.Problems {
		if p.Kind == verify.KindWALGap || p.Kind == verify.KindHistory {
			gaps++
		}
	}
	if gaps > 0 {
		msg += fmt.Sprintf("; %d WAL archive problems limit point-in-time recovery", gaps)
	}
	return msg
}

// bar shows the bytes read on a terminal.
type bar struct {
	w io.Writer
	b *progressbar.ProgressBar
}

func (p *bar) Start(total int64) {
	p.b = progressbar.NewOptions64(max(total, 1),
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("verifying"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
}

// Add is called from the readers of several parts at once; the bar
// locks itself.
func (p *bar) Add(n int64) {
	if p.b != nil {
		_ = p.b.Add64(n) // a display's error is no check's
	}
}

func (p *bar) finish() {
	if p != nil && p.b != nil {
		_ = p.b.Finish()
	}
}

func drill(ctx context.Context, e *cli.Env, storeURL, server, ref, format string) error {
	if ref == verify.RefAll {
		return cli.Usagef("--drill restores one backup: give an id, a name or latest, not all")
	}
	for _, f := range []string{"wal-only", "backups-only"} {
		if e.Bool(f) {
			return cli.Usagef("--%s does not apply to --drill", f)
		}
	}
	target, err := recoveryflags.Target(e, false)
	if err != nil {
		return err
	}
	settings := map[string]string{}
	for _, kv := range e.StringSlice("pg-setting") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cli.Usagef("--pg-setting %q: use NAME=VALUE, e.g. shared_buffers=1GB", kv)
		}
		settings[strings.TrimSpace(k)] = v
	}
	walRestore, err := recoveryflags.WALRestoreProgram(e.String("wal-restore-command"))
	if err != nil {
		return err
	}
	s, err := e.OpenStore(ctx, storeURL)
	if err != nil {
		return err
	}
	defer s.Close()
	host, _ := os.Hostname()
	rep, err := verify.Drill(ctx, verify.DrillOptions{
		Store: s, Server: server, Backup: ref, Target: target,
		ScratchDir: e.String("scratch-dir"), PGBinDir: e.String("pg-bindir"),
		OSUser: e.String("os-user"), Superuser: e.String("pg-user"),
		SQL: e.StringSlice("sql"), Amcheck: e.Bool("amcheck"), Settings: settings,
		Jobs: e.Jobs(), WALRestore: walRestore, StoreArgs: e.StoreArgs(), StoreURL: storeURL,
		RecoveryTimeout: e.Duration("recovery-timeout"),
		Record:          !e.Bool("no-record"), Host: host, GBCVersion: cli.Version,
		Logf: e.Log.Debugf,
	})
	if errors.Is(err, verify.ErrDrillSetup) {
		return cli.Exit(cli.ExitUsage, err)
	}
	if err != nil {
		return err
	}
	if rep.RecordError != "" {
		e.Log.Warnf("the drill's outcome was not recorded in the store: %s", rep.RecordError)
	}
	if format == "json" {
		if err := render.JSON(e.Stdout, rep); err != nil {
			return err
		}
	} else {
		writeDrill(e.Stdout, rep)
	}
	if !rep.OK {
		return cli.Exit(ExitProblems, fmt.Errorf("drill of backup %s failed: %s", rep.BackupID, rep.Error))
	}
	return nil
}

// writeDrill prints a drill's report for people.
func writeDrill(w io.Writer, r *verify.DrillReport) {
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED"
	}
	sec := func(f float64) string {
		return (time.Duration(f * float64(time.Second))).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "drill of backup %s (server %s): %s\n", r.BackupID, r.Server, verdict)
	if r.RTOSeconds > 0 {
		p := r.Phases
		fmt.Fprintf(w, "  RTO %s: download and write %s, sync %s, WAL replay %s (%d segments), first query %s\n",
			sec(r.RTOSeconds), sec(p.DownloadWrite), sec(p.Sync), sec(p.WALReplay), r.WALSegmentsReplayed, sec(p.FirstQuery))
	}
	rec := "recovered to an unknown time (no transaction was replayed)"
	if r.RecoveredTo != nil {
		rec = "recovered to " + r.RecoveredTo.UTC().Format(time.RFC3339Nano)
	}
	if r.RecoveredLSN != "" {
		rec += " (LSN " + r.RecoveredLSN + ")"
	}
	if r.RTOSeconds > 0 {
		if r.NewestWAL != "" {
			rec += fmt.Sprintf("; newest archived WAL %s, archived %s", r.NewestWAL, r.NewestWALTime.UTC().Format(time.RFC3339))
		}
		if r.DataLossSeconds != nil {
			rec += fmt.Sprintf(": a data loss window of %s", sec(*r.DataLossSeconds))
		}
		fmt.Fprintln(w, "  "+rec)
	}
	for _, c := range r.Checks {
		state := "ok"
		switch {
		case c.Skipped:
			state = "skipped"
		case !c.OK:
			state = "FAILED"
		}
		fmt.Fprintf(w, "  check %s: %s (%s) in %s\n", c.Name, state, c.Detail, sec(c.Seconds))
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", oneLine(r.Error))
	}
	if r.Recorded != "" {
		fmt.Fprintf(w, "  recorded in the store as %s\n", r.Recorded)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
