package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

// Drill is the outcome of one restore drill (gbc-verify --drill), stored
// as a small JSON object at Layout.DrillKey so that gbc-status and
// monitoring can show the last drill of a server without running one.
// The keys below are a contract: later releases only add keys, and a
// reader ignores keys it does not know.
//
//	{"format": 1, "server": "main", "backup_id": "20261124T214842Z",
//	 "ok": true, "time": "2026-11-29T03:00:00Z", "rto_seconds": 42.7,
//	 "recovered_to": "2026-11-29T02:59:31Z", "data_loss_seconds": 12.5,
//	 "wal_segments_replayed": 37, "error": "", "host": "drill1",
//	 "gbc_version": "1.4.0"}
type Drill struct {
	Format   int    `json:"format"`
	Server   string `json:"server"`
	BackupID string `json:"backup_id"`
	// OK is true only when the restore, the recovery and every check
	// passed.
	OK bool `json:"ok"`
	// Time is when the drill started, in UTC; the key is named after it.
	Time time.Time `json:"time"`
	// RTOSeconds is the measured recovery time: from the start of the
	// restore to the first query answered by the recovered server (0
	// when the drill did not get that far).
	RTOSeconds float64 `json:"rto_seconds"`
	// RecoveredTo is the time of the last transaction replayed, when
	// known.
	RecoveredTo *time.Time `json:"recovered_to,omitempty"`
	// DataLossSeconds is how much older RecoveredTo is than the archive's
	// newest WAL segment, when both are known.
	DataLossSeconds     *float64 `json:"data_loss_seconds,omitempty"`
	WALSegmentsReplayed int      `json:"wal_segments_replayed"`
	// Error is the first failure, "" when OK.
	Error      string `json:"error,omitempty"`
	Host       string `json:"host,omitempty"`
	GBCVersion string `json:"gbc_version,omitempty"`
}

// DrillFormatVersion is written into every drill object.
const DrillFormatVersion = 1

// maxDrillSize bounds what LastDrill reads: a drill object is a few
// hundred bytes.
const maxDrillSize = 1 << 20

// DrillRoot is the prefix of the server's drill results.
func (l Layout) DrillRoot() string { return l.Server + "/drills/" }

// DrillKey is where the drill started at t is recorded:
// <server>/drills/<t as a backup id>.json. Keys sort as times, so the last
// key of a listing is the newest drill.
func (l Layout) DrillKey(t time.Time) string {
	return l.DrillRoot() + t.UTC().Format(IDLayout) + ".json"
}

// SaveDrill stores d at Layout.DrillKey(d.Time).
func SaveDrill(ctx context.Context, s cloud.Store, l Layout, d *Drill) error {
	if d.Format == 0 {
		d.Format = DrillFormatVersion
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode drill result: %w", err)
	}
	data = append(data, '\n')
	key := l.DrillKey(d.Time)
	if err := s.Put(ctx, key, cloud.BytesBody(data), cloud.PutOptions{SizeHint: int64(len(data))}); err != nil {
		return fmt.Errorf("save drill result %s: %w", key, err)
	}
	return nil
}

// LastDrill returns the newest drill result of the server, or nil (and no
// error) when none was recorded. It costs one listing of the drills
// prefix and one small GET.
func LastDrill(ctx context.Context, s cloud.Store, l Layout) (*Drill, error) {
	root := l.DrillRoot()
	last := ""
	err := s.List(ctx, root, func(a cloud.Attrs) error {
		name := strings.TrimPrefix(a.Key, root)
		if id, ok := strings.CutSuffix(name, ".json"); ok && LooksLikeID(id) && a.Key > last {
			last = a.Key
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list drills of server %s: %w", l.Server, err)
	}
	if last == "" {
		return nil, nil
	}
	rc, err := s.Get(ctx, last)
	if errors.Is(err, cloud.ErrNotFound) {
		return nil, nil // removed between the listing and the read
	}
	if err != nil {
		return nil, fmt.Errorf("read drill result %s: %w", last, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxDrillSize))
	if err != nil {
		return nil, fmt.Errorf("read drill result %s: %w", last, err)
	}
	var d Drill
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parse drill result %s: %w", last, err)
	}
	return &d, nil
}
