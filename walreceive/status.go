package walreceive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
)

// States of a receiver, as status lines and the status object give them.
const (
	StateConnecting   = "connecting"
	StateStreaming    = "streaming"
	StateReconnecting = "reconnecting"
	StateStopped      = "stopped"
	StateFailed       = "failed"
)

// Status is what a receiver reports: on its status lines (--format
// json), in its metrics, and in the store (StatusKey), where gbc-backup
// finds that WAL reaches the store without archive_command and gbc-status
// shows the last flush.
type Status struct {
	Time     time.Time `json:"time"`
	State    string    `json:"state"`
	Server   string    `json:"server"`
	Slot     string    `json:"slot"`
	SystemID string    `json:"system_identifier,omitempty"`
	Timeline uint32    `json:"timeline,omitempty"`
	// Segment is the segment in progress.
	Segment string `json:"segment,omitempty"`
	// ReceivedLSN is the end of what arrived, StoredLSN of what is
	// durably stored (and confirmed to the slot), ServerLSN the server's
	// WAL end as it last said.
	ReceivedLSN string `json:"received_lsn,omitempty"`
	StoredLSN   string `json:"stored_lsn,omitempty"`
	ServerLSN   string `json:"server_lsn,omitempty"`
	// LagBytes is ServerLSN - StoredLSN; LagSeconds how long the oldest
	// byte not yet stored has waited: what a loss of the server would cost
	// now.
	LagBytes   int64     `json:"lag_bytes"`
	LagSeconds float64   `json:"lag_seconds"`
	LastStored time.Time `json:"last_stored,omitzero"`
	// Message is the state change's reason (a reconnection's error).
	Message string `json:"message,omitempty"`
}

// StatusKey is where the receiver on slot keeps its status object.
func StatusKey(l catalog.Layout, slot string) string {
	return StatusRoot(l) + slot + ".json"
}

// StatusRoot is the prefix of every receiver's status object of a server.
func StatusRoot(l catalog.Layout) string { return l.Root() + "receiver/" }

// ReadStatus reads the status object of the receiver on slot; a missing
// one yields an error for which errors.Is(err, cloud.ErrNotFound) holds.
func ReadStatus(ctx context.Context, s cloud.Store, l catalog.Layout, slot string) (Status, error) {
	return readStatus(ctx, s, StatusKey(l, slot))
}

func readStatus(ctx context.Context, s cloud.Store, key string) (Status, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return Status{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return Status{}, fmt.Errorf("read %s: %w", key, err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("read %s: %w", key, err)
	}
	return st, nil
}

// Statuses reads the status of every receiver of the server.
func Statuses(ctx context.Context, s cloud.Store, l catalog.Layout) ([]Status, error) {
	var keys []string
	err := s.List(ctx, StatusRoot(l), func(a cloud.Attrs) error {
		if strings.HasSuffix(a.Key, ".json") {
			keys = append(keys, a.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the receivers of %s: %w", l.Server, err)
	}
	var out []Status
	for _, k := range keys {
		st, err := readStatus(ctx, s, k)
		if errors.Is(err, cloud.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Active returns a receiver of the server that streams WAL of systemID
// into the store and stored something within maxAge: a server archiving
// through the receiver only. ok is false when there is none.
func Active(ctx context.Context, s cloud.Store, l catalog.Layout, systemID string, maxAge time.Duration, now time.Time) (st Status, ok bool, err error) {
	all, err := Statuses(ctx, s, l)
	if err != nil {
		return Status{}, false, err
	}
	for _, c := range all {
		if c.State == StateStreaming && c.SystemID == systemID && now.Sub(c.Time) <= maxAge {
			return c, true, nil
		}
	}
	return Status{}, false, nil
}

// setState records a state change and logs it, once: a receiver that
// fails to reconnect again and again says so at the first failure, and at
// the debug level after.
func (r *receiver) setState(ctx context.Context, state, format string, args ...any) {
	msg := ""
	if format != "" {
		msg = fmt.Sprintf(format, args...)
	}
	changed := r.status.State != state
	r.status.State, r.status.Message, r.status.Time = state, msg, time.Now()
	switch {
	case msg == "":
	case changed:
		r.o.Log.Info(msg)
	default:
		r.o.Log.Debug(msg)
	}
	if changed {
		r.publish(ctx, true)
	}
}

// published refreshes the status from a stream after a store.
func (r *receiver) published(ctx context.Context, s *streamState) {
	st := &r.status
	st.Segment = s.sp.name.String()
	st.ReceivedLSN, st.StoredLSN = s.sp.written.String(), s.stored.String()
	if s.serverEnd > 0 {
		st.ServerLSN = s.serverEnd.String()
		st.LagBytes = max(0, int64(s.serverEnd)-int64(s.stored))
	}
	st.LagSeconds = 0
	if !s.unstoredSince.IsZero() {
		st.LagSeconds = time.Since(s.unstoredSince).Seconds()
	}
	st.Time = time.Now()
	r.publish(ctx, false)
}

// statusEvery bounds how often the status object is written after stores
// (a state change always writes it): at 10 MiB/s a segment completes every
// 1.6 s.
const statusEvery = time.Second

// publish hands the status to OnStatus and writes it to the store. A
// failure to write it is only logged: it is a report, not WAL.
func (r *receiver) publish(ctx context.Context, force bool) {
	if r.o.OnStatus != nil {
		r.o.OnStatus(r.status)
	}
	if !force && time.Since(r.lastStatus) < statusEvery {
		return
	}
	r.lastStatus = time.Now()
	b, err := json.Marshal(r.status)
	if err != nil {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = r.o.Store.Put(wctx, StatusKey(r.o.Layout, r.o.Slot), cloud.BytesBody(bytes.Clone(b)), cloud.PutOptions{SizeHint: int64(len(b))})
	if err != nil {
		r.o.Log.Debug(fmt.Sprintf("status object not written: %v", err))
	}
}
