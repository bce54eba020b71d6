package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/pgrun"
	"github.com/gbc-backup/gbc/restore"
	"github.com/gbc-backup/gbc/wal"
)

// DrillOptions describe one restore drill.
type DrillOptions struct {
	Store  cloud.Store
	Server string
	// Backup is an id, a name or latest ("" is latest): with a target,
	// latest is the newest backup that ended before it.
	Backup string
	// Target is where recovery stops; the zero Target replays the whole
	// archive. Its Action must be "" or promote: the drill queries the
	// promoted copy.
	Target restore.Target
	// ScratchDir is where the drill's own temporary directory is made
	// ("": the system's temporary directory). It is removed at the end.
	ScratchDir string
	// PGBinDir is --pg-bindir ("": pg_config, then PATH).
	PGBinDir string
	// OSUser runs PostgreSQL when this process is root (default
	// postgres); it must exist.
	OSUser string
	// Superuser is the role the checks connect as (default postgres).
	Superuser string
	// SQL are queries that must each succeed; Amcheck adds pg_amcheck.
	SQL     []string
	Amcheck bool
	// Settings are more server settings (they win over the drill's own).
	Settings map[string]string
	Jobs     int
	// WALRestore, StoreArgs and StoreURL make restore_command, as for
	// restore.Request.
	WALRestore string
	StoreArgs  []string
	StoreURL   string
	// RecoveryTimeout bounds the wait for the end of recovery.
	RecoveryTimeout time.Duration
	// Record stores the outcome at catalog.Layout.DrillKey.
	Record     bool
	Host       string
	GBCVersion string
	// Logf, when set, is told each phase as it starts.
	Logf func(format string, args ...any)
}

// DrillReport is what a drill measured. Times are seconds, so that the
// JSON form reads without units.
type DrillReport struct {
	OK       bool      `json:"ok"`
	Server   string    `json:"server"`
	BackupID string    `json:"backup_id"`
	Started  time.Time `json:"started"`
	// RTOSeconds runs from the start of the restore to the first query
	// answered by the recovered server.
	RTOSeconds          float64 `json:"rto_seconds"`
	Phases              Phases  `json:"phases"`
	WALSegmentsReplayed int     `json:"wal_segments_replayed"`
	// RecoveredTo is the time of the last transaction replayed (nil:
	// none was, or it is unknown); RecoveredLSN where replay ended.
	RecoveredTo  *time.Time `json:"recovered_to"`
	RecoveredLSN string     `json:"recovered_lsn,omitempty"`
	// NewestWAL is the archive's newest segment when recovery ended, and
	// DataLossSeconds how much older RecoveredTo is than the time it was
	// archived: what a recovery now would lose.
	NewestWAL       string       `json:"newest_wal,omitempty"`
	NewestWALTime   *time.Time   `json:"newest_wal_time,omitempty"`
	DataLossSeconds *float64     `json:"data_loss_seconds,omitempty"`
	PGVersion       string       `json:"pg_version,omitempty"`
	Checks          []DrillCheck `json:"checks"`
	// Error is the first failure, "" when OK.
	Error string `json:"error,omitempty"`
	// Recorded is the key the outcome was stored at, RecordError why it
	// could not be.
	Recorded    string `json:"recorded,omitempty"`
	RecordError string `json:"record_error,omitempty"`
}

// Phases of the recovery time, in seconds.
type Phases struct {
	DownloadWrite float64 `json:"download_write_seconds"`
	Sync          float64 `json:"sync_seconds"`
	// WALReplay runs from the server's start to the end of recovery.
	WALReplay  float64 `json:"wal_replay_seconds"`
	FirstQuery float64 `json:"first_query_seconds"`
}

// DrillCheck is the outcome of one check on the recovered server.
type DrillCheck struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Skipped bool    `json:"skipped,omitempty"`
	Detail  string  `json:"detail,omitempty"`
	Seconds float64 `json:"seconds"`
}

// ErrDrillSetup classifies what stops a drill before it restores anything
// (no PostgreSQL, one of another major version, no such OS user): the
// drill's setup is wrong, not the backup.
var ErrDrillSetup = errors.New("the drill cannot run")

func setupErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDrillSetup, fmt.Sprintf(format, args...))
}

// Drill restores a backup into a scratch directory, starts PostgreSQL on
// it, waits for the end of recovery, runs the checks, and measures the
// recovery time. Whatever happens (a failure, a cancelled context) the
// server is stopped and the scratch directory removed before it returns.
//
// A failure of the backup (it does not restore, the server does not
// recover, a check fails) is a report with OK false, recorded in the
// store when asked. An error means the drill could not be carried out: a
// setup error (ErrDrillSetup), an unknown backup, a store that cannot be
// used, or a cancelled context.
func Drill(ctx context.Context, o DrillOptions) (*DrillReport, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.Superuser == "" {
		o.Superuser = pgrun.Superuser
	}
	if o.OSUser == "" {
		o.OSUser = "postgres"
	}
	switch o.Target.Action {
	case "":
		if o.Target.Kind() != "" {
			o.Target.Action = "promote"
		}
	case "promote":
	default:
		return nil, setupErr("--target-action %s: a drill promotes the recovered copy to query it; leave --target-action out", o.Target.Action)
	}
	inst, err := pgrun.Find(o.PGBinDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDrillSetup, err)
	}
	u, err := serverUser(o.OSUser)
	if err != nil {
		return nil, err
	}
	layout := catalog.Layout{Server: o.Server}
	b, err := pickBackup(ctx, o, layout)
	if err != nil {
		return nil, err
	}
	if major := b.PGVersion / 10000; major != 0 && major != inst.Major {
		return nil, setupErr("backup %s is of PostgreSQL %d, but the PostgreSQL found (%s, in %s) is %d: give --pg-bindir of a PostgreSQL %d installation",
			b.ID, major, inst.Version, inst.BinDir, inst.Major, major)
	}
	if u.Switches() {
		// restore_command runs gbc-wal-restore as the server's user.
		if err := runsAs(u, o.WALRestore); err != nil {
			return nil, err
		}
	}
	// Processes that restore_command leaves behind (gbc-wal-restore's
	// detached prefetcher) become this process's children, so that the
	// drill can stop them too.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	scratch, err := os.MkdirTemp(o.ScratchDir, "gbc-drill-")
	if err != nil {
		return nil, setupErr("scratch directory: %v", err)
	}
	defer func() {
		killOrphans()
		if err := os.RemoveAll(scratch); err != nil {
			logf("could not remove the scratch directory %s: %v", scratch, err)
		}
	}()
	if err := u.Chown(scratch); err != nil {
		return nil, setupErr("%v", err)
	}

	rep := &DrillReport{Server: o.Server, BackupID: b.ID, Started: time.Now().UTC(), Checks: []DrillCheck{}, PGVersion: inst.Version}
	d := &drill{o: o, inst: inst, user: u, scratch: scratch, rep: rep, logf: logf, backup: b}
	runErr := d.run(ctx)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("drill interrupted (the server was stopped and %s removed): %w", scratch, ctx.Err())
	}
	if runErr != nil {
		if errors.Is(runErr, cloud.ErrPermission) || errors.Is(runErr, cloud.ErrNoBucket) || errors.Is(runErr, restore.ErrInvalid) {
			return nil, runErr
		}
		rep.Error = runErr.Error()
	}
	rep.OK = runErr == nil
	for _, c := range rep.Checks {
		if !c.OK && !c.Skipped {
			rep.OK = false
			if rep.Error == "" {
				rep.Error = fmt.Sprintf("check %s failed: %s", c.Name, c.Detail)
			}
		}
	}
	if o.Record {
		d.record(context.WithoutCancel(ctx))
	}
	return rep, nil
}

// serverUser is who runs PostgreSQL: this process's user, or as root the
// named one, which must exist (a drill does not create accounts).
func serverUser(name string) (*pgrun.User, error) {
	if os.Geteuid() == 0 {
		if _, err := user.Lookup(name); err != nil {
			return nil, setupErr("running as root, PostgreSQL must run as an unprivileged OS user, and %q does not exist: give --os-user, or run gbc-verify as the database's OS user", name)
		}
	}
	u, err := pgrun.ServerUser(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDrillSetup, err)
	}
	return u, nil
}

// runsAs checks that u can run the restore_command program, before
// anything is restored: as root, gbc may sit where the server's user cannot
// reach it.
func runsAs(u *pgrun.User, program string) error {
	prog := program
	if fields := strings.Fields(program); len(fields) > 0 {
		prog = strings.Trim(fields[0], "'")
	}
	cmd := exec.Command(prog, "--version")
	u.Apply(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return setupErr("the OS user %s, who runs PostgreSQL and so restore_command, cannot run %s (%v: %s): install gbc where %s can run it",
			u.Name, prog, err, strings.TrimSpace(string(out)), u.Name)
	}
	return nil
}

// pickBackup finds the backup as restore would: latest is the newest DONE
// backup that suits the target and whose chain is complete.
func pickBackup(ctx context.Context, o DrillOptions, l catalog.Layout) (*catalog.Backup, error) {
	ref := o.Backup
	if ref == "" || ref == catalog.RefLatest {
		ref = catalog.RefAuto
	}
	var sums []*catalog.Backup
	if ref == catalog.RefAuto {
		var err error
		if sums, err = catalog.Summaries(ctx, o.Store, l); err != nil {
			return nil, err
		}
	}
	return catalog.Find(ctx, o.Store, l, ref, func(b *catalog.Backup) bool {
		if !o.Target.Before(b) {
			return false
		}
		_, err := restore.Chain(b, sums)
		return err == nil
	})
}

type drill struct {
	o       DrillOptions
	inst    *pgrun.Install
	user    *pgrun.User
	scratch string
	backup  *catalog.Backup
	rep     *DrillReport
	logf    func(string, ...any)
}

func (d *drill) run(ctx context.Context) error {
	o, rep := d.o, d.rep
	data := filepath.Join(d.scratch, "data")
	// Every tablespace into the scratch directory: restoring one to its
	// recorded location could write over a live server's files.
	relocate := map[string]string{}
	for _, ts := range d.backup.Tablespaces {
		relocate[ts.OID] = filepath.Join(d.scratch, "tblspc", ts.OID)
	}
	if len(relocate) > 0 {
		dir := filepath.Join(d.scratch, "tblspc")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if err := d.user.Chown(dir); err != nil {
			return err
		}
	}
	start := time.Now()
	d.logf("restoring backup %s into %s", d.backup.ID, data)
	res, err := restore.Restore(ctx, restore.Request{
		Store: o.Store, Server: o.Server, Backup: d.backup.ID, Dest: data,
		Target: o.Target, DisableArchiving: true,
		WALRestore: o.WALRestore, StoreArgs: o.StoreArgs, StoreURL: o.StoreURL,
		Relocate: relocate, Jobs: o.Jobs,
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if res.Files != nil {
		rep.Phases.DownloadWrite = res.Files.Write.Seconds()
		rep.Phases.Sync = res.Files.Sync.Seconds()
	}
	if v, err := os.ReadFile(filepath.Join(data, "PG_VERSION")); err == nil {
		if major, err := strconv.Atoi(strings.TrimSpace(string(v))); err == nil && major != d.inst.Major {
			return fmt.Errorf("the restored data directory is of PostgreSQL %d, the server found is %d: give --pg-bindir of a PostgreSQL %d installation", major, d.inst.Major, major)
		}
	}
	settings, err := d.serverFiles(data)
	if err != nil {
		return err
	}
	settings["restore_command"] = res.Recovery.RestoreCommand()
	for k, v := range o.Settings {
		settings[k] = v
	}
	sock := filepath.Join(d.scratch, "s")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return err
	}
	if err := d.user.Chown(sock); err != nil {
		return err
	}
	logPath := filepath.Join(d.scratch, "postgresql.log")
	d.logf("starting PostgreSQL %d on %s, recovering", d.inst.Major, data)
	replayStart := time.Now()
	srv, err := pgrun.Launch(pgrun.Config{
		Install: d.inst, User: d.user, DataDir: data, SocketDir: sock, LogPath: logPath,
		Settings: settings, Superuser: o.Superuser, Chown: true,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(time.Minute); err != nil {
			d.logf("%v", err)
		}
	}()
	timeout := o.RecoveryTimeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	werr := srv.WaitRecovered(ctx, timeout)
	rep.WALSegmentsReplayed, rep.RecoveredTo = readLog(logPath)
	if werr != nil {
		return fmt.Errorf("recovery did not complete: %w", werr)
	}
	rep.Phases.WALReplay = time.Since(replayStart).Seconds()
	qStart := time.Now()
	if _, err := srv.Query(ctx, "SELECT 1"); err != nil {
		return fmt.Errorf("first query: %w", err)
	}
	rep.Phases.FirstQuery = time.Since(qStart).Seconds()
	rep.RTOSeconds = time.Since(start).Seconds()
	d.logf("recovered in %.1fs", rep.RTOSeconds)

	// pg_last_xact_replay_timestamp() keeps its value after promotion
	// (until the server restarts); the log says it too.
	if v, err := srv.Query(ctx, "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())::text"); err == nil && v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			t := time.Unix(0, int64(f*1e9)).UTC()
			rep.RecoveredTo = &t
		}
	}
	if v, err := srv.Query(ctx, "SELECT pg_last_wal_replay_lsn()::text"); err == nil {
		rep.RecoveredLSN = v
	}
	d.newestWAL(ctx)

	for _, q := range o.SQL {
		rep.Checks = append(rep.Checks, d.sql(ctx, srv, q))
	}
	if o.Amcheck {
		rep.Checks = append(rep.Checks, d.amcheck(ctx, srv))
	}
	return nil
}

// serverFiles writes the drill's own pg_hba.conf and pg_ident.conf, makes
// sure a postgresql.conf exists (a server configured from /etc has none
// in its data directory), and returns the settings that make the restored
// server a private, throwaway copy.
func (d *drill) serverFiles(data string) (map[string]string, error) {
	hba := filepath.Join(d.scratch, "pg_hba.conf")
	ident := filepath.Join(d.scratch, "pg_ident.conf")
	// Trust on the socket only: it is in a 0700 directory of the drill.
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ident, nil, 0o644); err != nil {
		return nil, err
	}
	conf := filepath.Join(data, "postgresql.conf")
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(conf, []byte("# written by gbc-verify --drill: the backup had none\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return map[string]string{
		"archive_mode":              "off",
		"hba_file":                  hba,
		"ident_file":                ident,
		"logging_collector":         "off",
		"log_destination":           "stderr",
		"lc_messages":               "C",
		"ssl":                       "off",
		"huge_pages":                "try",
		"unix_socket_group":         "",
		"unix_socket_permissions":   "0700",
		"synchronous_standby_names": "",
		"cluster_name":              "gbc-drill",
	}, nil
}

// restoredRE matches PostgreSQL's line for each file restore_command
// brought (LOG level, always logged); lc_messages = C keeps it in English.
var (
	restoredRE = regexp.MustCompile(`restored log file "([0-9A-F]{24})" from archive`)
	lastXactRE = regexp.MustCompile(`last completed transaction was at log time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d(?::?\d\d)?)`)
)

// readLog counts the segments replayed and finds the last replayed
// transaction's time in the server log.
func readLog(logPath string) (int, *time.Time) {
	f, err := os.Open(logPath)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	seen := map[string]bool{}
	var last *time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := restoredRE.FindStringSubmatch(line); m != nil {
			seen[m[1]] = true
		}
		if m := lastXactRE.FindStringSubmatch(line); m != nil {
			for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05.999999-0700"} {
				if t, err := time.Parse(layout, m[1]); err == nil {
					t = t.UTC()
					last = &t
					break
				}
			}
		}
	}
	return len(seen), last
}

// newestWAL finds the archive's newest segment and the data loss window
// it implies.
func (d *drill) newestWAL(ctx context.Context) {
	a, err := listArchive(ctx, d.o.Store, catalog.Layout{Server: d.o.Server}, d.backup.WALSegmentSize)
	if err != nil {
		d.logf("could not list the WAL archive: %v", err)
		return
	}
	var tli uint32
	for t, s := range a.segs {
		if len(s.nos) > 0 && t > tli {
			tli = t
		}
	}
	s := a.segs[tli]
	if s == nil {
		return
	}
	i := len(s.nos) - 1
	name := wal.SegmentFromSegNo(tli, s.nos[i], a.size).String()
	mod := s.mods[i].UTC()
	d.rep.NewestWAL, d.rep.NewestWALTime = name, &mod
	if r := d.rep.RecoveredTo; r != nil {
		loss := max(mod.Sub(*r).Seconds(), 0)
		d.rep.DataLossSeconds = &loss
	}
}

func (d *drill) sql(ctx context.Context, srv *pgrun.Server, q string) DrillCheck {
	c := DrillCheck{Name: "sql: " + oneLine(q)}
	start := time.Now()
	defer func() { c.Seconds = time.Since(start).Seconds() }()
	conn, err := pgx.Connect(ctx, srv.ConnString())
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tag, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	c.OK, c.Detail = true, tag.String()
	return c
}

// amcheck runs pg_amcheck on every database, installing the amcheck
// extension where it is missing (the copy is thrown away).
func (d *drill) amcheck(ctx context.Context, srv *pgrun.Server) DrillCheck {
	c := DrillCheck{Name: "amcheck"}
	start := time.Now()
	defer func() { c.Seconds = time.Since(start).Seconds() }()
	prog, err := d.inst.Program("pg_amcheck")
	if err != nil {
		c.OK, c.Skipped, c.Detail = true, true, "pg_amcheck is not installed: not checked"
		return c
	}
	if n, err := srv.Query(ctx, "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'"); err != nil || n == "0" {
		c.OK, c.Skipped, c.Detail = true, true, "the amcheck extension is not installed with this PostgreSQL (contrib): not checked"
		return c
	}
	cmd := exec.CommandContext(ctx, prog, "--all", "--install-missing", "--no-password",
		"-h", filepath.Join(d.scratch, "s"), "-p", strconv.Itoa(srv.Port()), "-U", d.o.Superuser)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.Detail = fmt.Sprintf("%v: %s", err, lastLines(string(out), 5))
		return c
	}
	c.OK, c.Detail = true, "no corruption found"
	return c
}

// record stores the outcome in the store, best effort.
func (d *drill) record(ctx context.Context) {
	rep := d.rep
	dr := &catalog.Drill{
		Server: rep.Server, BackupID: rep.BackupID, OK: rep.OK, Time: rep.Started,
		RTOSeconds: rep.RTOSeconds, RecoveredTo: rep.RecoveredTo, DataLossSeconds: rep.DataLossSeconds,
		WALSegmentsReplayed: rep.WALSegmentsReplayed, Error: rep.Error,
		Host: d.o.Host, GBCVersion: d.o.GBCVersion,
	}
	l := catalog.Layout{Server: d.o.Server}
	if err := catalog.SaveDrill(ctx, d.o.Store, l, dr); err != nil {
		rep.RecordError = err.Error()
		return
	}
	rep.Recorded = l.DrillKey(dr.Time)
}

// killOrphans stops what restore_command left behind and was handed to
// this process as its subreaper (a detached prefetcher), and reaps it.
func killOrphans() {
	me := os.Getpid()
	var pids []int
	for _, p := range pgrun.ProcTable() {
		if p.PPID == me {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
			pids = append(pids, p.PID)
		}
	}
	for _, pid := range pids {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
