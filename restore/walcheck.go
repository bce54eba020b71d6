package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/wal"
)

// ErrSystemMismatch classifies a backup whose cluster differs from the one
// whose WAL the store holds for the server.
var ErrSystemMismatch = errors.New("system identifier mismatch")

// ErrMissingWAL classifies a backup whose WAL is not in the store.
var ErrMissingWAL = fmt.Errorf("WAL %w", cloud.ErrNotFound)

// CheckWAL verifies, before anything is downloaded, that the store holds
// the WAL the backup needs to become consistent (its first and last
// segments), and that this WAL was written by the backed-up cluster: the
// first page of the backup's first segment carries the system identifier
// of the cluster that wrote it. Recovery would otherwise fail only after
// the whole restore, or replay another cluster's WAL.
func CheckWAL(ctx context.Context, s cloud.Store, l catalog.Layout, b *catalog.Backup) error {
	if b.BeginWAL == "" {
		return nil
	}
	first, err := wal.Find(ctx, s, l, b.BeginWAL)
	if err != nil {
		return err
	}
	if first == "" {
		return fmt.Errorf("%w: segment %s, where backup %s starts, is not in the store: recovery cannot make the backup consistent (is WAL archiving to this store and server working?)", ErrMissingWAL, b.BeginWAL, b.ID)
	}
	if b.EndWAL != "" && b.EndWAL != b.BeginWAL {
		last, err := wal.Find(ctx, s, l, b.EndWAL)
		if err != nil {
			return err
		}
		if last == "" {
			return fmt.Errorf("%w: segment %s, where backup %s ends, is not in the store: recovery cannot make the backup consistent", ErrMissingWAL, b.EndWAL, b.ID)
		}
	}
	if b.SystemIdentifier == "" {
		return nil
	}
	beginName, err := wal.ParseName(b.BeginWAL)
	if err != nil {
		return fmt.Errorf("backup %s: begin WAL: %w", b.ID, err)
	}
	sysid, err := walSystemID(ctx, s, first, beginName)
	if err != nil {
		return fmt.Errorf("read WAL segment %s: %w", b.BeginWAL, err)
	}
	if strconv.FormatUint(sysid, 10) != b.SystemIdentifier {
		return fmt.Errorf("%w: backup %s is of system %s, but the archived WAL of server %s (segment %s) is of system %d: the server name holds another cluster's backups or WAL",
			ErrSystemMismatch, b.ID, b.SystemIdentifier, l.Server, b.BeginWAL, sysid)
	}
	return nil
}

// walSystemID reads the system identifier from the long header of a
// segment's first page, decompressing only that much, after checking that
// the page belongs to segment name: an object holding another segment
// (a server-side copy under the wrong name) would make recovery end early.
func walSystemID(ctx context.Context, s cloud.Store, key string, name wal.Name) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := s.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	_, codec := compress.SplitKey(key)
	dec, err := codec.NewReader(body)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	var page [wal.SegmentHeaderSize]byte
	if _, err := io.ReadFull(dec, page[:]); err != nil {
		return 0, err
	}
	h, err := wal.ParseSegmentHeader(page[:])
	if err != nil {
		return 0, err
	}
	// Only the header is read: its own segment size stands for the size.
	if err := h.Check(name, h.SegSize); err != nil {
		return 0, err
	}
	return h.SysID, nil
}
