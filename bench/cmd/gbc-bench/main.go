// Command gbc-bench measures gbc side by side with barman-cloud and
// pgBackRest (`make bench`, through scripts/bench.sh): it prints a Markdown
// table and writes it, with a JSON file, under --results.
//
//	gbc-bench [--scale smoke|quick|full] [--tools gbc,barman-cloud,pgbackrest]
//	          [--scenarios wal-archive,wal-archive-call,backup,many-files]
//	          [--set NAME=N ...] [--results DIR] [--pg-bindir DIR] [--keep] [-v]
//
// It needs PostgreSQL 15 (pg_config or postgres in PATH, or --pg-bindir), MinIO and the gbc build in
// PATH, and the peers it measures installed. Run as root, it runs
// PostgreSQL and the tools as the postgres user.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/gbc-backup/gbc/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("gbc-bench", flag.ContinueOnError)
	scale := fs.String("scale", "quick", "smoke (seconds, checks the harness), quick (a few minutes) or full (the issue's sizes, about 20 minutes)")
	tools := fs.String("tools", strings.Join(bench.AllTools(), ","), "comma-separated tools to measure")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios (wal-archive, wal-archive-call, backup, many-files); default all")
	results := fs.String("results", "bench/results", "directory for DATE-SCALE.md and .json (empty: do not write)")
	workDir := fs.String("workdir", "", "parent of the run's temporary directory (default $TMPDIR or /tmp)")
	pgUser := fs.String("pg-user", "postgres", "user that runs PostgreSQL and the tools when started as root")
	pgBinDir := fs.String("pg-bindir", "", "PostgreSQL's bindir (default: pg_config --bindir, else postgres in PATH)")
	var set setFlag
	fs.Var(&set, "set", "override a parameter of the scale, NAME=N (repeatable): archive_seconds, archive_clients, backlog_segments, latency_calls, pgbench_scale, replay_segments, many_files")
	keep := fs.Bool("keep", false, "keep the run's directory (data directories, logs)")
	verbose := fs.Bool("v", false, "log every command")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gbc-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, bench.Options{
		Scale:      *scale,
		Set:        set.m,
		Tools:      split(*tools),
		Scenarios:  split(*scenarios),
		ResultsDir: *results,
		WorkDir:    *workDir,
		PGUser:     *pgUser,
		PGBinDir:   *pgBinDir,
		Keep:       *keep,
		Verbose:    *verbose,
	})
	if rep != nil {
		fmt.Print(rep.Markdown())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gbc-bench: %v\n", err)
		return 1
	}
	if f := rep.Failures(); len(f) > 0 {
		fmt.Fprintf(os.Stderr, "gbc-bench: %d failures (see the table)\n", len(f))
		return 1
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// setFlag collects NAME=N pairs.
type setFlag struct{ m map[string]int }

func (f *setFlag) String() string { return fmt.Sprint(f.m) }

func (f *setFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(v)
	if !ok || err != nil {
		return fmt.Errorf("want NAME=N, got %q", s)
	}
	if f.m == nil {
		f.m = map[string]int{}
	}
	f.m[k] = n
	return nil
}
