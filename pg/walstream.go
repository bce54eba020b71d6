package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The replication commands a WAL receiver needs (pg_receivewal's set):
// READ_REPLICATION_SLOT, CREATE_REPLICATION_SLOT ... PHYSICAL RESERVE_WAL,
// TIMELINE_HISTORY and START_REPLICATION SLOT ... PHYSICAL, with the COPY
// stream's messages (XLogData, keepalives, standby status updates). The
// wire format is pglogrepl's; this file adds the physical-slot commands it
// lacks and turns the stream into typed events.

// ErrSlotMissing: the replication slot does not exist (never created, or
// dropped while the receiver was away).
var ErrSlotMissing = errors.New("replication slot does not exist")

// ErrWALRemoved: the server no longer has the WAL asked for (SQLSTATE
// 58P01): without a slot, or with max_slot_wal_keep_size exceeded, it
// recycled segments nobody had stored.
var ErrWALRemoved = errors.New("the server has removed the WAL asked for")

// SlotInfo is READ_REPLICATION_SLOT's answer for a physical slot.
type SlotInfo struct {
	// RestartLSN is the oldest WAL the slot keeps: what was last confirmed
	// as flushed by its client. 0 when the slot reserves no WAL yet.
	RestartLSN LSN
	// RestartTLI is RestartLSN's timeline, following the server's
	// history; 0 with RestartLSN 0.
	RestartTLI uint32
}

// slotName guards replication commands, whose slot name is an identifier
// that cannot be a bind parameter. PostgreSQL allows lower-case letters,
// digits and underscores.
func checkSlotName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("invalid replication slot name %q: give 1 to 63 lower-case letters, digits or underscores", name)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return fmt.Errorf("invalid replication slot name %q: give 1 to 63 lower-case letters, digits or underscores", name)
		}
	}
	return nil
}

// CheckSlotName refuses a name PostgreSQL would refuse as a slot name.
func CheckSlotName(name string) error { return checkSlotName(name) }

// ReadSlot runs READ_REPLICATION_SLOT (PostgreSQL 15). A missing slot
// yields ErrSlotMissing; a logical slot is refused.
func (r *ReplConn) ReadSlot(ctx context.Context, name string) (SlotInfo, error) {
	if err := checkSlotName(name); err != nil {
		return SlotInfo{}, err
	}
	res, err := r.c.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	if err != nil {
		return SlotInfo{}, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 3 {
		return SlotInfo{}, fmt.Errorf("READ_REPLICATION_SLOT %s: unexpected result", name)
	}
	row := res[0].Rows[0]
	if row[0] == nil {
		return SlotInfo{}, fmt.Errorf("%w: %q", ErrSlotMissing, name)
	}
	if string(row[0]) != "physical" {
		return SlotInfo{}, fmt.Errorf("replication slot %q is a %s slot: WAL streaming needs a physical one", name, row[0])
	}
	var si SlotInfo
	if row[1] != nil {
		if si.RestartLSN, err = ParseLSN(string(row[1])); err != nil {
			return SlotInfo{}, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", name, err)
		}
	}
	if row[2] != nil {
		tli, err := strconv.ParseUint(string(row[2]), 10, 32)
		if err != nil {
			return SlotInfo{}, fmt.Errorf("READ_REPLICATION_SLOT %s: timeline %q: %w", name, row[2], err)
		}
		si.RestartTLI = uint32(tli)
	}
	return si, nil
}

// CreatePhysicalSlot creates a permanent physical slot that reserves WAL
// at once (RESERVE_WAL), so that nothing written from now on is recycled
// before the receiver confirms it.
func (r *ReplConn) CreatePhysicalSlot(ctx context.Context, name string) error {
	if err := checkSlotName(name); err != nil {
		return err
	}
	if _, err := r.c.Exec(ctx, "CREATE_REPLICATION_SLOT "+name+" PHYSICAL RESERVE_WAL").ReadAll(); err != nil {
		return fmt.Errorf("CREATE_REPLICATION_SLOT %s: %w", name, err)
	}
	return nil
}

// TimelineHistory runs TIMELINE_HISTORY: the file name and content of
// timeline tli's history file, as the server has it in pg_wal.
func (r *ReplConn) TimelineHistory(ctx context.Context, tli uint32) (string, []byte, error) {
	res, err := pglogrepl.TimelineHistory(ctx, r.c, int32(tli))
	if err != nil {
		return "", nil, fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	return res.FileName, res.Content, nil
}

// StartPhysical runs START_REPLICATION SLOT slot PHYSICAL start TIMELINE
// tli and returns the stream. A slot that is gone yields ErrSlotMissing and
// WAL the server removed ErrWALRemoved. Asking for a timeline that ended
// before start yields an *EndOfTimeline error naming the next one.
func (r *ReplConn) StartPhysical(ctx context.Context, slot string, start LSN, tli uint32) (*WALStream, error) {
	if err := checkSlotName(slot); err != nil {
		return nil, err
	}
	err := pglogrepl.StartReplication(ctx, r.c, slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.PhysicalReplication, Timeline: int32(tli)})
	if next, pos, ok := pglogrepl.IsErrEndTimeline(err); ok {
		return nil, &EndOfTimeline{Next: uint32(next), Start: LSN(pos)}
	}
	if err != nil {
		return nil, fmt.Errorf("START_REPLICATION at %s on timeline %d: %w", start, tli, classifyReplError(err))
	}
	return &WALStream{r: r}, nil
}

// classifyReplError adds ErrSlotMissing or ErrWALRemoved to the server's
// error, so that callers tell the fatal cases apart without strings.
func classifyReplError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "42704": // undefined_object: replication slot "x" does not exist
		return fmt.Errorf("%w: %w", ErrSlotMissing, err)
	case "58P01": // undefined_file: requested WAL segment ... has already been removed
		return fmt.Errorf("%w: %w", ErrWALRemoved, err)
	}
	return err
}

// EndOfTimeline: the timeline streamed (or asked for) ended; streaming
// goes on on timeline Next from Start, its switch point.
type EndOfTimeline struct {
	Next  uint32
	Start LSN
}

func (e *EndOfTimeline) Error() string {
	return fmt.Sprintf("end of timeline: timeline %d starts at %s", e.Next, e.Start)
}

// WALStream is a running START_REPLICATION ... PHYSICAL.
type WALStream struct {
	r *ReplConn
}

// WALEvent is one message of the stream. Exactly one of Data and
// Keepalive is meaningful; Data points into the connection's buffer and
// is valid until the next Receive.
type WALEvent struct {
	// Start is the WAL position of Data's first byte.
	Start LSN
	Data  []byte
	// ServerEnd is the end of the server's WAL when it sent the message,
	// ServerTime its clock then: together the receiver's lag.
	ServerEnd  LSN
	ServerTime time.Time
	// Keepalive: a message without data; ReplyNow asks for a status
	// update at once (the server is about to time the session out).
	Keepalive bool
	ReplyNow  bool
}

// Receive waits for the next message until ctx is done. A context that
// ends returns its error and leaves the session usable (pgconn turns the
// cancellation into a read deadline), so that a caller can wake up on a
// timer and send a status update. The end of the timeline returns an
// *EndOfTimeline after the session left COPY mode, ready for the next
// command.
func (s *WALStream) Receive(ctx context.Context) (WALEvent, error) {
	msg, err := s.r.c.ReceiveMessage(ctx)
	if err != nil {
		if ctx.Err() != nil && !s.r.c.IsClosed() {
			// A read deadline, which pgconn survives.
			return WALEvent{}, ctx.Err()
		}
		return WALEvent{}, fmt.Errorf("WAL stream: %w", err)
	}
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return WALEvent{}, errors.New("WAL stream: empty CopyData message")
		}
		switch m.Data[0] {
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return WALEvent{}, fmt.Errorf("WAL stream: %w", err)
			}
			return WALEvent{Start: LSN(x.WALStart), Data: x.WALData, ServerEnd: LSN(x.ServerWALEnd), ServerTime: x.ServerTime}, nil
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return WALEvent{}, fmt.Errorf("WAL stream: %w", err)
			}
			return WALEvent{Keepalive: true, ReplyNow: k.ReplyRequested, ServerEnd: LSN(k.ServerWALEnd), ServerTime: k.ServerTime}, nil
		default:
			return WALEvent{}, fmt.Errorf("WAL stream: unknown message type %q", m.Data[0])
		}
	case *pgproto3.CopyDone:
		res, err := pglogrepl.SendStandbyCopyDone(ctx, s.r.c)
		if err != nil {
			return WALEvent{}, fmt.Errorf("WAL stream: end of timeline: %w", classifyReplError(err))
		}
		if res == nil {
			return WALEvent{}, errors.New("WAL stream: the server ended streaming without naming the next timeline")
		}
		// pglogrepl returns at ReadyForQuery only when no row came, or
		// after it; make sure the session is idle before the next command.
		return WALEvent{}, &EndOfTimeline{Next: uint32(res.Timeline), Start: LSN(res.LSN)}
	case *pgproto3.ErrorResponse:
		return WALEvent{}, fmt.Errorf("WAL stream: %w", classifyReplError(pgconn.ErrorResponseToPgError(m)))
	case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		return s.Receive(ctx)
	default:
		return WALEvent{}, fmt.Errorf("WAL stream: unexpected %T", msg)
	}
}

// SendStatus sends a standby status update: written is what the receiver
// holds (locally), flushed what is durably stored. The server sets a
// physical slot's restart_lsn to flushed, whichever way that moves it, so
// flushed must never be below what an earlier session confirmed, and WAL
// not yet stored is never recycled. flushed must not be 0 (pglogrepl would
// take written for it).
func (s *WALStream) SendStatus(ctx context.Context, written, flushed LSN) error {
	if flushed == 0 {
		return errors.New("send standby status update: no flushed position")
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.r.c, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(max(written, flushed)),
		WALFlushPosition: pglogrepl.LSN(flushed),
		WALApplyPosition: pglogrepl.LSN(flushed),
	})
	if err != nil {
		return fmt.Errorf("send standby status update: %w", err)
	}
	return nil
}
