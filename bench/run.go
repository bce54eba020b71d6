package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Options choose what a run measures and where it writes.
type Options struct {
	// Scale is smoke, quick or full.
	Scale string
	// Set overrides parameters of the scale by their JSON names
	// (pgbench_scale=50, backlog_segments=60, ...).
	Set map[string]int
	// Tools are the families to measure: gbc, barman-cloud, pgbackrest
	// (pgbackrest brings its async variant). Empty: all three.
	Tools []string
	// Scenarios limits the run to these ids (wal-archive,
	// wal-archive-backlog, wal-archive-call, wal-cost, backup, many-files; backup
	// brings restore and wal-replay). Empty: every scenario.
	Scenarios []string
	// GBCDir is the directory of the gbc build; empty: gbc from PATH.
	GBCDir string
	// ResultsDir receives DATE-SCALE.md and .json; empty: not written.
	ResultsDir string
	// WorkDir is where the run's temporary directory goes (os.TempDir()
	// by default). The PostgreSQL user must be able to enter it.
	WorkDir string
	// PGUser runs PostgreSQL and the tools when the harness runs as root
	// (default postgres; created as a system user when missing).
	PGUser string
	// PGBinDir is PostgreSQL's bindir; empty: `pg_config --bindir`, else
	// the postgres program in PATH.
	PGBinDir string
	// Keep leaves the working directory (data directories, logs) behind.
	Keep bool
	// Log receives progress lines (default os.Stderr).
	Log     io.Writer
	Verbose bool
}

func (o Options) pgUser() string {
	if o.PGUser != "" {
		return o.PGUser
	}
	return "postgres"
}

// AllTools are the families a run measures by default.
func AllTools() []string { return []string{"gbc", "barman-cloud", "pgbackrest"} }

// scenarioIDs are the values of Options.Scenarios, in run order.
func scenarioIDs() []string {
	return []string{"wal-archive", "wal-archive-backlog", "wal-archive-call", "wal-cost", "backup", "many-files"}
}

// Run measures every selected scenario for every selected tool and returns
// the report, also written to o.ResultsDir. A tool failing in a scenario is
// recorded in its row and the run goes on; the error returned is for what
// stops the whole run (no PostgreSQL, no MinIO, an interrupt).
func Run(ctx context.Context, o Options) (*Report, error) {
	p, err := scaleParams(o.Scale)
	if err != nil {
		return nil, err
	}
	if p, err = p.with(o.Set); err != nil {
		return nil, err
	}
	families := o.Tools
	if len(families) == 0 {
		families = AllTools()
	}
	tools, err := toolsFor(families)
	if err != nil {
		return nil, err
	}
	for _, id := range o.Scenarios {
		if !slices.Contains(scenarioIDs(), id) {
			return nil, fmt.Errorf("bench: unknown scenario %q (want one of %s)", id, strings.Join(scenarioIDs(), ", "))
		}
	}
	w := o.Log
	if w == nil {
		w = os.Stderr
	}
	log := &logger{w: w, start: time.Now(), verbose: o.Verbose}
	needGBC := slices.ContainsFunc(tools, func(t tool) bool { return t.family() == "gbc" })
	e, err := newEnv(o, log, needGBC)
	if err != nil {
		return nil, err
	}
	defer e.close(o.Keep)

	now := time.Now().UTC()
	rep := &Report{
		Date:     now.Format(time.RFC3339),
		Scale:    o.Scale,
		Params:   p,
		Host:     hostInfo(),
		Versions: map[string]string{"PostgreSQL": e.pg.Version},
	}
	for _, t := range tools {
		if _, ok := rep.Versions[t.family()]; !ok {
			rep.Versions[t.family()] = t.version(e)
		}
	}
	log.printf("scale %s: %s", o.Scale, p.describe())
	log.printf("work directory %s; load average %s", e.dir, rep.Host.LoadBefore)
	if err := e.startMinIO(ctx); err != nil {
		return nil, err
	}
	if slices.ContainsFunc(tools, func(t tool) bool { return t.family() == "pgbackrest" }) {
		if err := writePgbackrestConfig(e); err != nil {
			return nil, err
		}
	}
	b := &bench{e: e, p: p, tools: tools}
	want := func(id string) bool { return len(o.Scenarios) == 0 || slices.Contains(o.Scenarios, id) }
	add := func(s *Scenario, err error) error {
		if err != nil {
			s.Error = err.Error()
			log.printf("%s: %v", s.ID, err)
		}
		rep.Scenarios = append(rep.Scenarios, s)
		return ctx.Err()
	}
	steps := []struct {
		id  string
		run func() error
	}{
		{"wal-archive", func() error { return add(b.walArchive(ctx), nil) }},
		{"wal-archive-backlog", func() error { return add(b.walArchiveBacklog(ctx), nil) }},
		{"wal-archive-call", func() error { return add(b.walArchiveCall(ctx)) }},
		{"wal-cost", func() error { return add(b.walCost(ctx)) }},
		{"backup", func() error {
			ss, err := b.backupRestoreReplay(ctx)
			for i, s := range ss {
				var serr error
				if i == len(ss)-1 {
					serr = err // the error belongs to the step that stopped
				}
				if aerr := add(s, serr); aerr != nil {
					return aerr
				}
			}
			return nil
		}},
		{"many-files", func() error { return add(b.manyFiles(ctx)) }},
	}
	for _, st := range steps {
		if !want(st.id) {
			continue
		}
		if err := st.run(); err != nil {
			return rep, err
		}
	}
	rep.Host.LoadAfter = loadAvg()
	rep.compare()
	rep.Notes = append(rep.Notes,
		"The machine is shared: figures carry the noise of whatever else ran (see the load averages). Ratios within one run are the point, not absolute figures.",
		"Peak RSS is the larger of getrusage's maxrss (the largest single process of the command's tree) and the peak of the summed RSS of its process group, sampled every 50 ms.")
	if o.ResultsDir != "" {
		md, err := rep.write(o.ResultsDir, now.Format("2006-01-02T1504Z")+"-"+o.Scale)
		if err != nil {
			return rep, err
		}
		log.printf("wrote %s and its .json", md)
	}
	return rep, nil
}

// Failures lists every row and scenario error of the report, for a caller
// that wants a run to be all green.
func (r *Report) Failures() []string {
	var out []string
	for _, s := range r.Scenarios {
		if s.Error != "" {
			out = append(out, s.ID+": "+s.Error)
		}
		for _, row := range s.Rows {
			if row.Error != "" {
				out = append(out, s.ID+" "+row.Tool+": "+row.Error)
			}
		}
	}
	return out
}

func hostInfo() Host {
	h := Host{CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err == nil {
		h.Kernel = utsString(u.Release[:])
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil {
		h.MemoryBytes = int64(si.Totalram) * int64(si.Unit)
	}
	return h
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
