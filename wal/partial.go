package wal

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// MetaReceiver marks an object written by the WAL receiver (its value is
// the receive end, an LSN), so that a reader can tell the receiver's
// in-progress .partial from one PostgreSQL archived at a promotion.
const MetaReceiver = "gbcreceivedto"

// PartialOptions tune StorePartial.
type PartialOptions struct {
	Codec compress.Codec
	Level int
	// ReceivedTo is the WAL position the file holds data up to; it is
	// stored as MetaReceiver.
	ReceivedTo string
	Log        *slog.Logger
}

// StorePartial stores the segment file at path as name's .partial object,
// replacing the one stored before: unlike Archive, which never overwrites,
// a partial segment grows while the receiver streams it, and each store
// replaces the last one atomically (a Put is visible only once complete).
// The object has the codec, checksum and size metadata of any archived
// file, so that gbc-wal-restore verifies it like the others. It returns the
// key written.
func StorePartial(ctx context.Context, store cloud.Store, layout catalog.Layout, path string, name Name, opts PartialOptions) (string, error) {
	if name.Kind != Segment {
		return "", fmt.Errorf("StorePartial: %s is not a segment", name)
	}
	partial := name
	partial.Kind = Partial
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open WAL file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat WAL file: %w", err)
	}
	size := fi.Size()
	if !ValidSegmentSize(size) {
		return "", fmt.Errorf("%s has %d bytes, which is not a WAL segment size: refusing to store it", path, size)
	}
	p := pusher{store: store, layout: layout, codec: opts.Codec, level: opts.Level, log: orNop(opts.Log)}
	buf, d, err := p.compressToMemory(f, size)
	if err != nil {
		return "", err
	}
	key := layout.WALKey(partial.String(), opts.Codec.Ext())
	meta := map[string]string{MetaSHA256: d.sum(), MetaSize: strconv.FormatInt(size, 10)}
	if opts.ReceivedTo != "" {
		meta[MetaReceiver] = opts.ReceivedTo
	}
	if err := store.Put(ctx, key, cloud.BytesBody(buf.Bytes()), cloud.PutOptions{Metadata: meta, SizeHint: int64(buf.Len())}); err != nil {
		return "", fmt.Errorf("store %s: %w", partial, err)
	}
	debugf(p.log, "stored %s as %s (received up to %s)", partial, key, opts.ReceivedTo)
	return key, nil
}

// receiverPartial tells whether key is a .partial that gbc-wal-receive
// stored (its metadata carries MetaReceiver).
func receiverPartial(ctx context.Context, store cloud.Store, key string) bool {
	a, err := store.Stat(ctx, key)
	return err == nil && a.Metadata[MetaReceiver] != ""
}
