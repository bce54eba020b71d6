package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/wal"
	"github.com/gbc-backup/gbc/walreceive"
)

// Methods.
const (
	MethodAuto   = ""       // local when the data directory is readable here, else stream
	MethodLocal  = "local"  // pg_backup_start/stop, files read from disk
	MethodStream = "stream" // BASE_BACKUP over the replication protocol
)

// DefaultMaxPartSize is --max-archive-size's default.
const DefaultMaxPartSize = 1 << 30

// MinPartSize is the smallest --max-archive-size: below it a backup would
// be thousands of objects and requests for a few GiB.
const MinPartSize = 1 << 20

// Options of one backup.
type Options struct {
	Store  cloud.Store
	Server string
	// ConnString is a libpq connection string or URI; empty uses the
	// libpq environment (PGHOST, PGPORT, ...).
	ConnString string
	Method     string

	Name string
	Tags map[string]string

	// Type is catalog.TypeFull (or empty), TypeIncr or TypeDiff.
	Type string
	// Parent, for an incr or diff backup, names its parent (an id or a
	// name); empty chooses it (see chooseParent).
	Parent string

	Codec compress.Codec
	Level int
	Jobs  int
	// MaxPartSize bounds each part's tar bytes (--max-archive-size).
	MaxPartSize int64
	// Spread asks for a spread checkpoint at the start instead of an
	// immediate one.
	Spread bool
	// WALTimeout is how long to wait, after the backup ends, for its last
	// WAL segment to show up in the store. 0 skips the check and trusts
	// PostgreSQL's wait for archiving.
	WALTimeout time.Duration

	// GBCVersion goes into the record.
	GBCVersion string
	// Log gets the backup's notices and warnings; nil is silent.
	Log *slog.Logger
	// Events, when set, gets the backup's progress as it goes (see
	// Event); the caller decides how to show it. It is called from one
	// goroutine at a time and should return quickly.
	Events func(Event)

	// now, heartbeatEvery and sessionCheckEvery are for tests.
	now               func() time.Time
	heartbeatEvery    time.Duration
	sessionCheckEvery time.Duration
}

// ErrRefused is wrapped by refusals that protect the user from an unusable
// backup (no WAL archiving, a duplicate name, another cluster's files);
// commands map it to their conflict exit code.
var ErrRefused = errors.New("refused")

// heartbeatEvery is how often a STARTED record is refreshed. Retention
// takes a record silent for catalog.StaleHeartbeats intervals for dead, so
// this bounds how long a crashed backup pins WAL (15 minutes); one small
// PUT every 5 minutes costs nothing.
const heartbeatEvery = 5 * time.Minute

// sessionCheckEvery is how often a local backup checks that its session is
// alive while it copies files.
const sessionCheckEvery = 5 * time.Second

// run is the state of one backup.
type run struct {
	o      Options
	layout catalog.Layout

	mu  sync.Mutex // guards rec between the backup and the heartbeat
	rec *catalog.Backup

	// parent is an incremental backup's parent; blocks keeps the block
	// map being written, in bmapFile.
	parent   *parentBackup
	blocks   *blockSender
	bmapFile *os.File
	// native is a PostgreSQL 17 incremental backup taken by the server.
	native bool

	// stopBeat stops the heartbeat and waits for it; lastBeat (the last
	// successful refresh) and lost (why the heartbeat gave up) are
	// written by the heartbeat and read only once it has stopped.
	stopBeat func()
	lastBeat time.Time
	lost     error
}

// logf and warnf log a notice and a warning to o.Log, formatted only when
// it prints them.
func (o *Options) logf(format string, args ...any) { o.log(slog.LevelInfo, format, args...) }

func (o *Options) warnf(format string, args ...any) { o.log(slog.LevelWarn, format, args...) }

func (o *Options) log(level slog.Level, format string, args ...any) {
	if ctx := context.Background(); o.Log != nil && o.Log.Enabled(ctx, level) {
		o.Log.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}

// Run takes one base backup and returns its DONE record. On failure after
// the STARTED record was written, it writes a FAILED record (when the store
// still answers) and returns the error: a failed or interrupted backup
// never leaves a DONE record.
func Run(ctx context.Context, o Options) (*catalog.Backup, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.heartbeatEvery == 0 {
		o.heartbeatEvery = heartbeatEvery
	}
	if o.sessionCheckEvery == 0 {
		o.sessionCheckEvery = sessionCheckEvery
	}
	if o.Jobs < 1 {
		o.Jobs = 1
	}
	if o.MaxPartSize <= 0 {
		o.MaxPartSize = DefaultMaxPartSize
	}
	if o.MaxPartSize < MinPartSize {
		return nil, fmt.Errorf("--max-archive-size %d is too small: use at least 1 MiB", o.MaxPartSize)
	}
	if o.Codec == nil {
		c, err := compress.Lookup(compress.Default)
		if err != nil {
			return nil, err
		}
		o.Codec = c
	}
	if err := CheckName(o.Name); err != nil {
		return nil, err
	}
	switch o.Type {
	case "", catalog.TypeFull:
		if o.Parent != "" {
			return nil, fmt.Errorf("--parent %s needs --type incr or --type diff", o.Parent)
		}
	case catalog.TypeIncr, catalog.TypeDiff:
	default:
		return nil, fmt.Errorf("unknown --type %q: use full, incr or diff", o.Type)
	}
	r := &run{o: o, layout: catalog.Layout{Server: o.Server}}
	switch o.Method {
	case MethodAuto, MethodLocal:
		src, info, err := r.openLocal(ctx)
		if errors.Is(err, errNotHere) {
			return r.takeStream(ctx)
		}
		if err != nil {
			return nil, err
		}
		return r.take(ctx, src, info)
	case MethodStream:
		return r.takeStream(ctx)
	}
	return nil, fmt.Errorf("unknown --method %q: use local or stream", o.Method)
}

func (r *run) takeStream(ctx context.Context) (*catalog.Backup, error) {
	src, info, err := r.openStream(ctx)
	if err != nil {
		return nil, err
	}
	return r.take(ctx, src, info)
}

// MaxNameLength bounds --name.
const MaxNameLength = 64

// CheckName refuses a name that is not one plain word, or that would be
// taken for something else where a BACKUP_ID is accepted. A name is one
// word so that gbc-backup-list keeps one word per column and a name is
// safe in a shell command line or a path: letters, digits, '.', '_' and
// '-', not starting with '.' or '-' (which would read as a hidden file
// or an option), at most MaxNameLength characters. Names stored by earlier
// releases, which were freer, are still found by lookups, which never
// check them.
func CheckName(name string) error {
	switch {
	case name == "":
		return nil
	case len(name) > MaxNameLength:
		return fmt.Errorf("--name %q is %d characters long: give at most %d", name, len(name), MaxNameLength)
	case !plainName(name):
		return fmt.Errorf("--name %q: give one word of letters, digits, '.', '_' and '-', not starting with '.' or '-', such as nightly-2026-11-24", name)
	case name == catalog.RefLatest || name == catalog.RefOldest || name == catalog.RefAuto:
		return fmt.Errorf("--name %q is a keyword for BACKUP_ID: choose another name", name)
	case catalog.LooksLikeID(name):
		return fmt.Errorf("--name %q looks like a backup id: choose another name", name)
	}
	return nil
}

// plainName tells whether name holds only ASCII letters, digits, '.', '_'
// and '-', and starts with none of '.' and '-'.
func plainName(name string) bool {
	for i, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkNameFree refuses a name another backup of the server has, whatever
// its status: a name must find one backup. The summaries hold every
// record's name and status (STARTED, FAILED and unreadable ones included),
// and cost one LIST and one GET where the full records cost a GET each.
func (r *run) checkNameFree(ctx context.Context) error {
	if r.o.Name == "" {
		return nil
	}
	all, err := catalog.Summaries(ctx, r.o.Store, r.layout)
	if err != nil {
		return err
	}
	for _, b := range all {
		if b.Name == r.o.Name {
			return fmt.Errorf("%w: server %s already has a backup named %q (id %s, %s): choose another name, or delete that backup with gbc-backup-delete",
				ErrRefused, r.o.Server, r.o.Name, b.ID, b.Status)
		}
	}
	return nil
}

// checkArchiving refuses a server that does not archive WAL: without the
// WAL from the backup's start to its end, the backup cannot be restored.
func checkArchiving(mode, command, library string, inRecovery bool, warnf func(string, ...any)) error {
	switch {
	case mode == "off":
		return fmt.Errorf("%w: archive_mode is off: a base backup is unusable without the WAL written during it; set archive_mode = on and archive_command = 'gbc-wal-archive STORE_URL SERVER_NAME %%p', then restart PostgreSQL", ErrRefused)
	case inRecovery && mode != "always":
		warnf("the server is a standby with archive_mode = %s: the primary must archive to this store, or the backup will wait for its last WAL segment", mode)
	}
	if strings.TrimSpace(command) == "" && strings.TrimSpace(library) == "" {
		return fmt.Errorf("%w: archive_mode is %s but archive_command is empty: PostgreSQL archives nothing and the backup would never end; set archive_command = 'gbc-wal-archive STORE_URL SERVER_NAME %%p'", ErrRefused, mode)
	}
	if library == "" && !strings.Contains(command, "gbc-wal-archive") && !strings.Contains(command, "gbc wal-archive") {
		warnf("archive_command %q does not call gbc-wal-archive: make sure it archives to this store, or the backup cannot be restored from it", command)
	}
	return nil
}

// receiverMaxAge is how old a gbc-wal-receive status may be for the
// receiver to count as running: it refreshes it at least every 10 s.
const receiverMaxAge = 2 * time.Minute

// checkWALSource is checkArchiving, except that a server that archives
// nothing (archive_mode off, or no archive_command) is accepted when a
// gbc-wal-receive streams its WAL into this store: its status object there
// is fresh and names this system. The receiver then stores every segment
// the backup needs, its last one as soon as the backup's end switches
// segments, which waitWAL sees as for archive_command.
func (r *run) checkWALSource(ctx context.Context, mode, command, library string, inRecovery bool, systemID string) error {
	err := checkArchiving(mode, command, library, inRecovery, r.o.warnf)
	notArchiving := mode == "off" || (strings.TrimSpace(command) == "" && strings.TrimSpace(library) == "")
	if err == nil || !notArchiving {
		return err
	}
	st, ok, rerr := walreceive.Active(ctx, r.o.Store, r.layout, systemID, receiverMaxAge, time.Now())
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	if !ok {
		return fmt.Errorf("%w; or stream WAL into the store with gbc-wal-receive --slot NAME STORE_URL %s (no running receiver of this server was found in the store)", err, r.o.Server)
	}
	r.o.logf("the server does not archive WAL: it reaches the store through gbc-wal-receive (slot %s, stored up to %s at %s)",
		st.Slot, st.StoredLSN, st.Time.UTC().Format(time.RFC3339))
	return nil
}

// newRecord is the STARTED record of a new backup, id not yet chosen.
func (r *run) newRecord(method string) *catalog.Backup {
	host, _ := os.Hostname()
	return &catalog.Backup{
		Format:           catalog.FormatVersion,
		Name:             r.o.Name,
		Server:           r.o.Server,
		Status:           catalog.StatusStarted,
		Method:           method,
		Compression:      r.o.Codec.Name(),
		CompressionLevel: r.o.Level,
		Tags:             r.o.Tags,
		Type:             catalog.TypeFull,
		Host:             host,
		GBCVersion:       r.o.GBCVersion,
		Parts:            []catalog.Part{},
	}
}

// create chooses the backup id (the start time in UTC) and writes the
// STARTED record there. Create fails if the id is taken, by a backup started
// in the same second: then the next second is tried.
func (r *run) create(ctx context.Context, b *catalog.Backup) error {
	for attempt := 0; ; attempt++ {
		now := r.o.now().UTC().Truncate(time.Second)
		b.ID = now.Format(catalog.IDLayout)
		b.BeginTime = now
		b.Heartbeat = now
		// Whole seconds, rounded up: a reader waits a little longer.
		b.HeartbeatInterval = int64((r.o.heartbeatEvery + time.Second - 1) / time.Second)
		b.Label = "gbc " + b.ID
		err := catalog.Create(ctx, r.o.Store, r.layout, b)
		if err == nil {
			r.rec = b
			return nil
		}
		if !errors.Is(err, cloud.ErrExists) || attempt >= 5 {
			return err
		}
		select {
		case <-time.After(time.Until(now.Add(time.Second))):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// update changes the record under the lock and saves it.
func (r *run) update(ctx context.Context, f func(b *catalog.Backup)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.rec)
	return catalog.Save(ctx, r.o.Store, r.layout, r.rec)
}

// heartbeat refreshes the STARTED record (just written by create) every
// heartbeatEvery until stopped, so that retention tells this live backup
// from one whose process died. A failed refresh is retried sooner. Once
// none has succeeded for catalog.HeartbeatGiveUp intervals, a reader may
// soon take the backup for dead and delete the WAL it needs, so the backup
// must not go on unprotected: the returned context, which the rest of the
// backup runs on, is cancelled, and fail reports why. No refresh is written
// after such a silence either (a machine that was suspended, a process that
// was stopped): it could bring back a record already deleted as dead.
func (r *run) heartbeat(ctx context.Context) context.Context {
	ctx, lose := context.WithCancelCause(ctx)
	bctx, stop := context.WithCancel(ctx)
	every := r.o.heartbeatEvery
	giveUp := catalog.HeartbeatGiveUp * every
	r.lastBeat = time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var lastErr error
		delay := every
		for {
			t := time.NewTimer(delay)
			select {
			case <-bctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			silent := r.sinceBeat()
			if silent < giveUp {
				// Bounded, so that a hung request cannot carry the
				// backup past the point where it must stop.
				wctx, cancel := context.WithTimeout(bctx, min(every/2, giveUp-silent))
				lastErr = r.update(wctx, func(b *catalog.Backup) { b.Heartbeat = r.o.now().UTC() })
				cancel()
				if bctx.Err() != nil {
					return
				}
				if lastErr == nil {
					r.lastBeat, delay = time.Now(), every
					continue
				}
				silent = r.sinceBeat()
			}
			if silent >= giveUp {
				r.lost = heartbeatLost(silent, every, lastErr)
				lose(r.lost)
				return
			}
			delay = min(every/5, giveUp-silent)
			r.o.warnf("refresh the STARTED record (trying again in %s): %v", delay.Round(time.Second), lastErr)
		}
	}()
	r.stopBeat = func() { stop(); <-done }
	return ctx
}

// sinceBeat is the time since the last successful refresh, by the later of
// the monotonic and the wall clock: the monotonic clock stands still while
// the machine is suspended, and the readers on other machines go by wall
// clocks.
func (r *run) sinceBeat() time.Duration {
	now := time.Now()
	return max(now.Sub(r.lastBeat), now.Round(0).Sub(r.lastBeat.Round(0)))
}

func heartbeatLost(silent, every time.Duration, lastErr error) error {
	why := "was the machine suspended, or the process stopped?"
	if lastErr != nil {
		why = "last error: " + lastErr.Error()
	}
	return fmt.Errorf("the STARTED record could not be refreshed for %s (%s): stopping, since gbc-backup-delete takes a backup without a heartbeat for %s for dead and deletes the WAL it needs",
		silent.Round(time.Second), why, catalog.StaleHeartbeats*every)
}

// checkBeat tells whether the backup was protected by its heartbeat
// throughout, so that it may be committed.
func (r *run) checkBeat() error {
	if r.lost != nil {
		return r.lost
	}
	if r.lastBeat.IsZero() {
		return nil // no heartbeat was started (tests)
	}
	if silent, every := r.sinceBeat(), r.o.heartbeatEvery; silent >= catalog.HeartbeatGiveUp*every {
		return fmt.Errorf("%w; not marking it DONE", heartbeatLost(silent, every, nil))
	}
	return nil
}

// fail records the failure: a FAILED record, so that list shows it and
// delete can clean it up. It runs on a context of its own, since the
// backup's may be what was cancelled.
func (r *run) fail(ctx context.Context, cause error) error {
	if r.stopBeat != nil {
		r.stopBeat()
		r.stopBeat = nil
	}
	if r.lost != nil && !errors.Is(cause, r.lost) {
		// The backup was stopped for its lost heartbeat: that is the
		// cause, not the cancellation it saw.
		if errors.Is(cause, context.Canceled) {
			cause = r.lost
		} else {
			cause = fmt.Errorf("%w; then: %v", r.lost, cause)
		}
	}
	if r.rec == nil || r.rec.ID == "" {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := r.update(ctx, func(b *catalog.Backup) {
		b.Status = catalog.StatusFailed
		b.Error = cause.Error()
		b.EndTime = r.o.now().UTC()
	})
	if err != nil {
		r.o.warnf("could not write the FAILED record of backup %s: %v", r.rec.ID, err)
	}
	return fmt.Errorf("backup %s failed: %w", r.rec.ID, cause)
}

// done commits the backup: the DONE record, written last.
func (r *run) done(ctx context.Context) (*catalog.Backup, error) {
	r.stopBeat()
	r.stopBeat = nil
	if err := r.checkBeat(); err != nil {
		return nil, err
	}
	// A backup that stalled longer than gbc-backup-delete's --orphan-age may
	// have been taken for dead and had its record and parts deleted. Writing
	// DONE then would show a backup with missing parts, so the record is
	// read back first and must still be this run's STARTED record.
	if err := r.checkStillOurs(ctx); err != nil {
		return nil, err
	}
	err := r.update(ctx, func(b *catalog.Backup) {
		b.Status = catalog.StatusDone
		b.EndTime = r.o.now().UTC()
		b.Heartbeat, b.HeartbeatInterval = time.Time{}, 0
	})
	if err != nil {
		return nil, err
	}
	return r.rec, nil
}

// checkStillOurs verifies that the stored record is still this run's
// STARTED record.
func (r *run) checkStillOurs(ctx context.Context) error {
	cur, err := catalog.Load(ctx, r.o.Store, r.layout, r.rec.ID)
	if err != nil {
		return fmt.Errorf("read back the STARTED record of backup %s before committing it (was it deleted as an orphan by gbc-backup-delete?): %w", r.rec.ID, err)
	}
	if cur.Status != catalog.StatusStarted || !cur.BeginTime.Equal(r.rec.BeginTime) {
		return fmt.Errorf("the record of backup %s is now %s, not this run's STARTED record: another process changed it (gbc-backup-delete after --orphan-age?), so its parts may be gone; not marking it DONE", r.rec.ID, cur.Status)
	}
	return nil
}

// pgWaitsForArchive tells whether PostgreSQL should wait, at the end of
// the backup, until its last WAL segment is archived. When gbc checks the
// store itself (WALTimeout > 0) it does not: PostgreSQL polls once a second,
// gbc sees the segment land in the store within a few tens of
// milliseconds, and the store is what a restore will read anyway.
func (r *run) pgWaitsForArchive() bool { return r.o.WALTimeout <= 0 }

// waitWAL waits until the segment holding the end of the backup is in the
// store, so that a DONE backup is restorable from the store alone.
func (r *run) waitWAL(ctx context.Context, segment string) error {
	if r.o.WALTimeout <= 0 {
		return nil
	}
	deadline := time.Now().Add(r.o.WALTimeout)
	delay := 25 * time.Millisecond
	told := false
	for {
		key, err := wal.Find(ctx, r.o.Store, r.layout, segment)
		if err != nil {
			return err
		}
		if key != "" {
			return nil
		}
		if !told && time.Until(deadline) < r.o.WALTimeout-10*time.Second {
			r.o.logf("waiting for WAL segment %s to be archived into the store (up to --wal-timeout %s)", segment, r.o.WALTimeout)
			told = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("WAL segment %s, which the backup needs, is not in the store after %s: archive_command must archive to this store and server (gbc-wal-archive STORE_URL %s %%p); see the server log for archiving failures",
				segment, r.o.WALTimeout, r.o.Server)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// walRanges is the WAL the backup needs. gbc knows one timeline: a
// backup's start and end are on the same timeline unless a standby
// switched timelines during it, which PostgreSQL's own history would tell.
func walRanges(tli uint32, start, end pg.LSN) []WALRange {
	return []WALRange{{Timeline: tli, Start: start, End: end}}
}

// readableDataDir tells whether dir is this server's data directory,
// readable here: its pg_control has the system identifier the server
// reports. The check keeps a host that happens to have a data directory at
// the same path (another cluster) from being backed up instead.
func readableDataDir(dir, systemID string) (bool, error) {
	data, _, err := pg.ReadControlFile(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c, err := pg.ParseControl(data)
	if err != nil {
		return false, err
	}
	if c.SystemIdentifier != systemID {
		return false, fmt.Errorf("%w: the data directory %s on this host belongs to another cluster (system identifier %s, the server's is %s): run gbc-backup on the database host, or use --method stream",
			ErrRefused, dir, c.SystemIdentifier, systemID)
	}
	return true, nil
}
