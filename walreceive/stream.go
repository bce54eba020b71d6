package walreceive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/wal"
)

// spool is the segment in progress: a file of the full segment size in
// the spool directory, named after the segment, so that wal.Archive can
// store it as it stores a file of pg_wal.
type spool struct {
	name    wal.Name
	start   pg.LSN // the segment's first byte
	size    int64
	path    string
	f       *os.File
	written pg.LSN // end of the data received into the file
}

func openSpool(dir string, tli uint32, start pg.LSN, size int64) (*spool, error) {
	name := wal.SegmentFromSegNo(tli, start.Segment(size), size)
	path := filepath.Join(dir, name.String())
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool file: %w", err)
	}
	// Sparse: what has not arrived reads as zeros, which replay takes for
	// the end of the WAL.
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("spool file: %w", err)
	}
	return &spool{name: name, start: start, size: size, path: path, f: f, written: start}, nil
}

func (s *spool) end() pg.LSN { return s.start + pg.LSN(s.size) }

func (s *spool) full() bool { return s.written == s.end() }

// write puts data received at lsn into the file, up to the segment's end,
// and returns the rest.
func (s *spool) write(lsn pg.LSN, data []byte) ([]byte, error) {
	if lsn != s.written {
		return nil, fmt.Errorf("the server sent WAL at %s, expected %s", lsn, s.written)
	}
	n := min(int64(len(data)), int64(s.end()-s.written))
	if _, err := s.f.WriteAt(data[:n], int64(s.written-s.start)); err != nil {
		return nil, fmt.Errorf("spool file: %w", err)
	}
	s.written += pg.LSN(n)
	return data[n:], nil
}

func (s *spool) remove() {
	s.f.Close()
	os.Remove(s.path)
}

// stream runs START_REPLICATION on timeline tli from segStart and stores
// what arrives, until the timeline ends (it returns the switch), ctx ends
// (it stores and confirms the partial segment, and returns ctx's error) or
// the session fails. catchUp is the server's WAL end at connection: no
// .partial is stored on the timer before the stream has reached it, so
// that a restart never replaces a longer .partial with a shorter one
// while it streams the segment again.
func (r *receiver) stream(ctx context.Context, conn *pg.ReplConn, tli uint32, segStart, confirmed, catchUp pg.LSN, segSize int64) (*pg.EndOfTimeline, error) {
	ws, err := conn.StartPhysical(ctx, r.o.Slot, segStart, tli)
	var eot *pg.EndOfTimeline
	if errors.As(err, &eot) {
		return eot, nil
	}
	if err != nil {
		if errors.Is(err, pg.ErrSlotMissing) || errors.Is(err, pg.ErrWALRemoved) {
			return nil, fmt.Errorf("%w: %w", ErrFatal, err)
		}
		return nil, err
	}
	sp, err := openSpool(r.o.SpoolDir, tli, segStart, segSize)
	if err != nil {
		return nil, err
	}
	defer sp.remove()
	st := &streamState{r: r, ws: ws, sp: sp, tli: tli, stored: segStart, confirmed: confirmed, catchUp: catchUp}
	r.status.Timeline = tli
	r.setState(ctx, StateStreaming, "streaming from %s on timeline %d (slot %s)", segStart, tli, r.o.Slot)
	return st.run(ctx)
}

// streamState is one START_REPLICATION's progress.
type streamState struct {
	r  *receiver
	ws *pg.WALStream
	sp *spool
	// tli is the timeline streamed.
	tli uint32
	// stored is the end of what the store holds of this stream: the
	// confirmable position. confirmed is what the server was told.
	stored, confirmed pg.LSN
	catchUp           pg.LSN
	serverEnd         pg.LSN
	serverTime        time.Time
	// unstoredSince is when the oldest byte not yet stored arrived (zero
	// when everything is stored): the receiver's lag in seconds.
	unstoredSince time.Time
}

func (s *streamState) run(ctx context.Context) (*pg.EndOfTimeline, error) {
	o := s.r.o
	now := time.Now()
	nextFlush, nextStatus := now.Add(o.FlushInterval), now.Add(statusInterval)
	for {
		rctx, cancel := context.WithDeadline(ctx, earliest(nextFlush, nextStatus))
		ev, err := s.ws.Receive(rctx)
		cancel()
		var eot *pg.EndOfTimeline
		switch {
		case ctx.Err() != nil:
			return nil, s.shutdown(ctx)
		case errors.As(err, &eot):
			if err := s.storeFinal(ctx); err != nil {
				return nil, err
			}
			return eot, nil
		case err != nil && rctx.Err() == nil:
			// The session broke: keep what arrived, if the store lets us.
			if s.sp.written > s.stored {
				if serr := s.storePartial(ctx); serr != nil {
					err = errors.Join(err, serr)
				}
			}
			return nil, err
		case err == nil && ev.Keepalive:
			s.serverEnd, s.serverTime = max(s.serverEnd, ev.ServerEnd), ev.ServerTime
			if ev.ReplyNow {
				nextStatus = time.Now()
			}
		case err == nil:
			s.serverEnd, s.serverTime = max(s.serverEnd, ev.ServerEnd), ev.ServerTime
			if err := s.receive(ctx, ev.Start, ev.Data); err != nil {
				return nil, err
			}
		}
		now := time.Now()
		if s.sp.written > s.stored {
			due := !now.Before(nextFlush) && s.sp.written >= s.catchUp
			if due || int64(s.sp.written-s.stored) >= o.FlushSize {
				if err := s.storePartial(ctx); err != nil {
					return nil, err
				}
				nextStatus = now
			}
		}
		if !now.Before(nextFlush) {
			nextFlush = now.Add(o.FlushInterval)
		}
		if !now.Before(nextStatus) {
			if err := s.ws.SendStatus(ctx, s.sp.written, s.confirmed); err != nil {
				return nil, err
			}
			// Also on an idle server, the status object stays fresh:
			// gbc-backup takes it for proof that WAL reaches the store.
			s.r.published(ctx, s)
			nextStatus = now.Add(statusInterval)
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// receive writes data at lsn into the spool, storing each segment it
// completes.
func (s *streamState) receive(ctx context.Context, lsn pg.LSN, data []byte) error {
	if len(data) > 0 && s.unstoredSince.IsZero() {
		s.unstoredSince = time.Now()
	}
	for len(data) > 0 {
		rest, err := s.sp.write(lsn, data)
		if err != nil {
			return err
		}
		lsn += pg.LSN(len(data) - len(rest))
		data = rest
		if s.sp.full() {
			if err := s.storeComplete(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// storeComplete stores the full segment as an ordinary WAL object, drops
// its stale .partial, confirms it and opens the next segment.
func (s *streamState) storeComplete(ctx context.Context) error {
	sp := s.sp
	res, err := s.r.archive(ctx, sp.path)
	if err != nil {
		return err
	}
	if res.AlreadyStored {
		s.r.o.Log.Debug(fmt.Sprintf("%s was already stored with the same content", sp.name))
	}
	if err := s.dropPartial(ctx, sp.name); err != nil {
		return err
	}
	if err := s.markStored(ctx, sp.end()); err != nil {
		return err
	}
	next, err := openSpool(s.r.o.SpoolDir, s.tli, sp.end(), sp.size)
	if err != nil {
		return err
	}
	sp.remove()
	s.sp = next
	return nil
}

// dropPartial deletes the .partial of a segment now stored in full.
func (s *streamState) dropPartial(ctx context.Context, name wal.Name) error {
	p := name
	p.Kind = wal.Partial
	key, err := wal.Find(ctx, s.r.o.Store, s.r.o.Layout, p.String())
	if err != nil || key == "" {
		return err
	}
	if err := s.r.o.Store.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete the stale %s: %w", p, err)
	}
	return nil
}

// storePartial stores the segment in progress as its .partial.
func (s *streamState) storePartial(ctx context.Context) error {
	to := s.sp.written
	_, err := wal.StorePartial(ctx, s.r.o.Store, s.r.o.Layout, s.sp.path, s.sp.name, wal.PartialOptions{
		Codec: s.r.o.Codec, Level: s.r.o.Level, ReceivedTo: to.String(), Log: s.r.o.Log,
	})
	if err != nil {
		return err
	}
	return s.markStored(ctx, to)
}

// storeFinal stores the last segment of a timeline that ended: as .partial,
// since it will never be complete on this timeline.
func (s *streamState) storeFinal(ctx context.Context) error {
	if s.sp.written == s.sp.start {
		return nil
	}
	return s.storePartial(ctx)
}

// markStored records that the store holds everything up to to, confirms it to
// the server and publishes the status.
func (s *streamState) markStored(ctx context.Context, to pg.LSN) error {
	s.stored = max(s.stored, to)
	s.r.progressed = true
	s.r.status.LastStored = time.Now()
	if s.stored >= s.sp.written {
		s.unstoredSince = time.Time{}
	}
	if s.stored > s.confirmed {
		s.confirmed = s.stored
		if err := s.ws.SendStatus(ctx, s.sp.written, s.confirmed); err != nil {
			return err
		}
	}
	s.r.published(ctx, s)
	return nil
}

// shutdown stores the segment in progress and confirms it, on a context of
// its own: ctx is already cancelled.
func (s *streamState) shutdown(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if s.sp.written > s.stored {
		if err := s.storePartial(sctx); err != nil {
			return fmt.Errorf("store the segment in progress at shutdown: %w", err)
		}
	}
	return ctx.Err()
}
