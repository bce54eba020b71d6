package walreceive

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/wal"
)

// AppName is the receiver's application_name, as pg_stat_replication shows
// it.
const AppName = "gbc-wal-receive"

// Defaults of Options.
const (
	DefaultFlushInterval = 10 * time.Second
	DefaultFlushSize     = 4 << 20
	// statusInterval is how often a standby status update is sent when
	// nothing was stored: well inside wal_sender_timeout (60 s by default).
	statusInterval = 10 * time.Second
	// shutdownTimeout bounds the last store and confirmation at SIGTERM.
	shutdownTimeout = time.Minute
)

// ErrFatal is wrapped by the errors that no reconnection can mend: the
// slot is gone, the server removed WAL the slot should have kept, another
// cluster, a store that refuses the credentials.
var ErrFatal = errors.New("fatal")

// Options configure Run.
type Options struct {
	// ConnString is a libpq connection string or URI (the PG* environment
	// fills in the rest); the session is opened with replication=true.
	ConnString string
	Slot       string
	// CreateSlot creates the slot when it does not exist yet (at the first
	// connection only: a slot that disappears later is fatal).
	CreateSlot bool

	Store  cloud.Store
	Layout catalog.Layout
	Codec  compress.Codec
	Level  int

	// FlushInterval: the segment in progress is stored as .partial this
	// often (when something new arrived); FlushSize: and whenever this
	// many bytes arrived since the last store.
	FlushInterval time.Duration
	FlushSize     int64
	// SpoolDir holds the segment in progress (one file of the segment
	// size). Created if missing.
	SpoolDir string
	// MaxBackoff caps the wait between reconnection attempts.
	MaxBackoff time.Duration

	// Log gets one line per state change, and details at the debug level.
	Log *slog.Logger
	// OnStatus, when set, is called at every state change and after every
	// store (status lines, metrics).
	OnStatus func(Status)
}

// Run streams WAL until ctx is cancelled (then it stores the segment in
// progress, confirms it and returns nil) or a fatal error (wrapping
// ErrFatal). Connection losses, server restarts and store failures end a
// session; Run reconnects with exponential backoff and resumes from the
// slot.
func Run(ctx context.Context, o Options) error {
	if err := pg.CheckSlotName(o.Slot); err != nil {
		return fmt.Errorf("%w: %w", ErrFatal, err)
	}
	o.FlushInterval = cmp.Or(o.FlushInterval, DefaultFlushInterval)
	o.FlushSize = cmp.Or(o.FlushSize, DefaultFlushSize)
	o.MaxBackoff = cmp.Or(o.MaxBackoff, 30*time.Second)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("%w: spool directory: %w", ErrFatal, err)
	}
	r := &receiver{o: o, histories: map[uint32]bool{}}
	r.status = Status{Server: o.Layout.Server, Slot: o.Slot}
	if err := r.checkStore(ctx); err != nil {
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	b.MaxInterval = o.MaxBackoff
	for {
		r.progressed = false
		err := r.session(ctx)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				r.setState(ctx, StateFailed, "")
				return err // the last store failed: not a clean stop
			}
			r.setState(ctx, StateStopped, "stopped: stored and confirmed up to %s", r.status.StoredLSN)
			return nil
		}
		if errors.Is(err, ErrFatal) || fatalStoreError(err) {
			r.setState(ctx, StateFailed, "")
			if !errors.Is(err, ErrFatal) {
				err = fmt.Errorf("%w: %w", ErrFatal, err)
			}
			return err
		}
		if r.progressed {
			b.Reset()
		}
		wait := b.NextBackOff()
		r.setState(ctx, StateReconnecting, "%v; reconnecting in %s", err, wait.Round(100*time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			r.setState(ctx, StateStopped, "stopped while disconnected")
			return nil
		}
	}
}

// fatalStoreError: a store that refuses us will not accept us later.
func fatalStoreError(err error) bool {
	return errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrNoBucket) || errors.Is(err, wal.ErrConflict)
}

// receiver is the state of one Run.
type receiver struct {
	o          Options
	systemID   string // from the first session
	slotSeen   bool   // the slot existed (or was created) once
	histories  map[uint32]bool
	progressed bool // this session stored something
	status     Status
	lastStatus time.Time // of the last status object written
}

// checkStore refuses a store whose receiver status names another cluster,
// before anything is streamed.
func (r *receiver) checkStore(ctx context.Context) error {
	st, err := ReadStatus(ctx, r.o.Store, r.o.Layout, r.o.Slot)
	if errors.Is(err, cloud.ErrNotFound) {
		return nil
	}
	if err != nil {
		if fatalStoreError(err) {
			return fmt.Errorf("%w: %w", ErrFatal, err)
		}
		return nil // transient: the sessions will tell
	}
	r.systemID = st.SystemID
	return nil
}

// session is one connection: connect, find the start, stream timelines
// until an error, the end of ctx, or a fatal condition.
func (r *receiver) session(ctx context.Context) error {
	if r.status.State != StateReconnecting {
		r.setState(ctx, StateConnecting, "")
	}
	conn, err := pg.ConnectReplication(ctx, r.o.ConnString, AppName)
	if err != nil {
		if errors.Is(err, pg.ErrUnsupportedVersion) {
			return fmt.Errorf("%w: %w", ErrFatal, err)
		}
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	sys, err := conn.IdentifySystem(ctx)
	if err != nil {
		return err
	}
	if r.systemID != "" && r.systemID != sys.SystemIdentifier {
		return fmt.Errorf("%w: the server's system identifier is %s, but this receiver's store holds WAL of system %s: another cluster answers at this address; point --dbname at the right server or use another SERVER_NAME",
			ErrFatal, sys.SystemIdentifier, r.systemID)
	}
	r.systemID = sys.SystemIdentifier
	r.status.SystemID = sys.SystemIdentifier
	segSize, err := conn.WALSegmentSize(ctx)
	if err != nil {
		return err
	}
	slot, err := r.slot(ctx, conn)
	if err != nil {
		return err
	}
	tli, start := slot.RestartTLI, slot.RestartLSN
	if start == 0 {
		// A slot that reserves nothing yet (created without
		// RESERVE_WAL): the server's current position is the oldest WAL
		// it can promise.
		start, tli = sys.XLogPos, sys.Timeline
	}
	tli = cmp.Or(tli, sys.Timeline)
	segStart := start - start%pg.LSN(segSize)
	if tli == sys.Timeline {
		if segStart, err = r.skipStored(ctx, tli, segStart, sys.XLogPos, segSize); err != nil {
			return err
		}
	}
	// The flush position is never sent below the slot's: the server would
	// move restart_lsn back (see SendStatus).
	confirmed := max(slot.RestartLSN, segStart)
	for {
		if err := r.storeHistory(ctx, conn, tli); err != nil {
			return err
		}
		eot, err := r.stream(ctx, conn, tli, segStart, confirmed, sys.XLogPos, segSize)
		if err != nil {
			return err
		}
		// Everything up to the switch point is stored: the old timeline's
		// last segment as its .partial.
		r.o.Log.Info(fmt.Sprintf("timeline %d ended at %s: following timeline %d", tli, eot.Start, eot.Next))
		tli = eot.Next
		confirmed = max(confirmed, eot.Start)
		segStart = eot.Start - eot.Start%pg.LSN(segSize)
		r.status.Timeline = tli
	}
}

// slot reads the slot, creating it at the first connection if asked.
func (r *receiver) slot(ctx context.Context, conn *pg.ReplConn) (pg.SlotInfo, error) {
	si, err := conn.ReadSlot(ctx, r.o.Slot)
	if errors.Is(err, pg.ErrSlotMissing) {
		switch {
		case r.slotSeen:
			return si, fmt.Errorf("%w: replication slot %q is gone (dropped, or invalidated by max_slot_wal_keep_size?): WAL may have been lost; take a new base backup, then recreate the slot (--create-slot)", ErrFatal, r.o.Slot)
		case !r.o.CreateSlot:
			return si, fmt.Errorf("%w: replication slot %q does not exist: create it (SELECT pg_create_physical_replication_slot('%s', true)) or pass --create-slot", ErrFatal, r.o.Slot, r.o.Slot)
		}
		if err := conn.CreatePhysicalSlot(ctx, r.o.Slot); err != nil {
			return si, err
		}
		r.o.Log.Info(fmt.Sprintf("created physical replication slot %q", r.o.Slot))
		si, err = conn.ReadSlot(ctx, r.o.Slot)
	}
	if err != nil {
		return si, err
	}
	r.slotSeen = true
	return si, nil
}

// skipStored moves segStart past the complete segments the store already
// holds (archive_command stored them, or an earlier run whose confirmation
// did not reach the server), up to the server's current position.
func (r *receiver) skipStored(ctx context.Context, tli uint32, segStart, serverPos pg.LSN, segSize int64) (pg.LSN, error) {
	for segStart+pg.LSN(segSize) <= serverPos {
		name := wal.SegmentFromSegNo(tli, segStart.Segment(segSize), segSize)
		key, err := wal.Find(ctx, r.o.Store, r.o.Layout, name.String())
		if err != nil {
			return 0, err
		}
		if key == "" {
			break
		}
		segStart += pg.LSN(segSize)
	}
	return segStart, nil
}

// storeHistory stores timeline tli's history file, once per process,
// unless the store has it: the bytes are the server's own file, so the
// object is the one archive_command stores.
func (r *receiver) storeHistory(ctx context.Context, conn *pg.ReplConn, tli uint32) error {
	if tli <= 1 || r.histories[tli] {
		return nil
	}
	name := fmt.Sprintf("%08X.history", tli)
	key, err := wal.Find(ctx, r.o.Store, r.o.Layout, name)
	if err != nil {
		return err
	}
	if key == "" {
		file, content, err := conn.TimelineHistory(ctx, tli)
		if err != nil {
			return err
		}
		if file != name {
			return fmt.Errorf("TIMELINE_HISTORY %d named the file %q, not %q", tli, file, name)
		}
		path := filepath.Join(r.o.SpoolDir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			return fmt.Errorf("spool %s: %w", name, err)
		}
		defer os.Remove(path)
		if _, err := r.archive(ctx, path); err != nil {
			return err
		}
		r.o.Log.Info(fmt.Sprintf("stored the history file of timeline %d", tli))
	}
	r.histories[tli] = true
	return nil
}

// archive stores a complete file with gbc-wal-archive's own code.
func (r *receiver) archive(ctx context.Context, path string) (wal.ArchiveResult, error) {
	open := func(context.Context) (cloud.Store, error) { return noClose{r.o.Store}, nil }
	return wal.Archive(ctx, open, r.o.Layout, path, wal.ArchiveOptions{
		Codec: r.o.Codec, Level: r.o.Level, MaxParallel: 1, Log: r.o.Log,
	})
}

// noClose keeps wal.Archive from closing the receiver's store.
type noClose struct{ cloud.Store }

func (noClose) Close() error { return nil }
