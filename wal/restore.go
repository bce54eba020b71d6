package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// ErrNotArchived: the file asked for is not in the store. For
// restore_command this is the one expected failure (the end of the
// archive, a timeline that does not exist); every other failure must be
// told apart from it.
var ErrNotArchived = errors.New("not in the archive")

// ErrChecksum: what was downloaded does not match the checksum or size
// recorded when it was archived.
var ErrChecksum = errors.New("checksum mismatch")

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// NoPartial: do not fall back to NAME.partial when a segment NAME is
	// not archived (barman-cloud-wal-restore's --no-partial).
	NoPartial bool
	// Target identifies the store (URL and endpoint), as in
	// ArchiveOptions; the prefetch spool only answers for the same one.
	Target string
	// Log gets warnings and, at the debug level, details; nil is silent.
	Log *slog.Logger
}

// RestoreResult says what one Restore call did.
type RestoreResult struct {
	Key  string // the object restored; "" when served from the spool
	Size int64  // uncompressed size written to dest
	// FromSpool: a prefetched copy, verified against its checksum, was
	// moved into place without asking the store.
	FromSpool bool
	// FromPartial: the segment was missing and its .partial was restored.
	FromPartial bool
}

// Restore writes the archived file name to dest: a verified, complete copy
// or nothing. It first looks in the prefetch spool next to dest (see
// prefetch.go), then in the store under any codec's extension. The content
// is checked against the checksum and size recorded at archive time,
// written to a temporary file beside dest, synced, and renamed onto dest.
// A file that is not archived yields ErrNotArchived and writes nothing.
func Restore(ctx context.Context, open Opener, layout catalog.Layout, name Name, dest string, opts RestoreOptions) (RestoreResult, error) {
	log := orNop(opts.Log)
	if name.Kind == Segment {
		if size, ok := newSpool(dest, opts.Target, layout, log).take(name, dest); ok {
			debugf(log, "%s restored from the prefetch spool", name)
			return RestoreResult{Size: size, FromSpool: true}, nil
		}
	}

	store, err := open(ctx)
	if err != nil {
		return RestoreResult{}, err
	}
	defer store.Close()

	key, attrs, err := locate(ctx, store, layout, name.String())
	res := RestoreResult{}
	if errors.Is(err, ErrNotArchived) && name.Kind == Segment && !opts.NoPartial {
		partial := name
		partial.Kind = Partial
		key, attrs, err = locate(ctx, store, layout, partial.String())
		if err == nil {
			res.FromPartial = true
		} else if errors.Is(err, ErrNotArchived) {
			err = fmt.Errorf("%s (nor %s): %w", name, partial, ErrNotArchived)
		}
	} else if errors.Is(err, ErrNotArchived) {
		err = fmt.Errorf("%s: %w", name, ErrNotArchived)
	}
	if err != nil {
		return RestoreResult{}, err
	}
	tmp, d, err := download(ctx, store, key, attrs, name, filepath.Dir(dest), log)
	if err != nil {
		return RestoreResult{}, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		os.Remove(tmp)
		return RestoreResult{}, fmt.Errorf("restore %s: %w", name, err)
	}
	res.Key, res.Size = key, d.n
	debugf(log, "restored %s from %s (%d bytes)", name, key, d.n)
	return res, nil
}

// preferredExt is tried first when looking for an archived file, so that
// the usual case (the default codec) takes one request instead of a listing
// and a request.
func preferredExt() string {
	c, err := compress.Lookup(compress.Default)
	if err != nil {
		return ""
	}
	return c.Ext()
}

// locate finds the object archived as name and its attributes. Absence is
// concluded only when neither the Stat nor the listing says the bucket
// itself is missing: S3 answers a Stat in a missing bucket with a plain
// "not found" and only its listings tell, while file:// lists nothing in a
// missing root and only its Stat tells. A missing bucket must never pass
// for the end of the archive.
func locate(ctx context.Context, store cloud.Store, layout catalog.Layout, name string) (string, cloud.Attrs, error) {
	key := layout.WALKey(name, preferredExt())
	attrs, err := store.Stat(ctx, key)
	if err == nil {
		return key, attrs, nil
	}
	if !errors.Is(err, cloud.ErrNotFound) || errors.Is(err, cloud.ErrNoBucket) {
		return "", cloud.Attrs{}, fmt.Errorf("look for %s in the store: %w", name, err)
	}
	key, err = Find(ctx, store, layout, name)
	if err != nil {
		return "", cloud.Attrs{}, err
	}
	if key == "" {
		return "", cloud.Attrs{}, ErrNotArchived
	}
	if attrs, err = store.Stat(ctx, key); err != nil {
		return "", cloud.Attrs{}, fmt.Errorf("read the metadata of %s: %w", key, err)
	}
	return key, attrs, nil
}

// download fetches key into a new temporary file in dir, decompressing it,
// verifies it against the checksum and size in attrs' metadata, and syncs
// it. It returns the temporary file's path for the caller to rename, and
// removes it on any failure.
func download(ctx context.Context, store cloud.Store, key string, attrs cloud.Attrs, name Name, dir string, log *slog.Logger) (tmp string, d *digest, err error) {
	wantSum, wantSize := attrs.Metadata[MetaSHA256], attrs.Metadata[MetaSize]
	rc, err := store.Get(ctx, key)
	if err != nil {
		return "", nil, fmt.Errorf("download %s: %w", key, err)
	}
	defer rc.Close()
	_, codec := compress.SplitKey(key)
	zr, err := codec.NewReader(rc)
	if err != nil {
		return "", nil, fmt.Errorf("decompress %s: %w", key, err)
	}
	defer zr.Close()

	// The temporary name starts with a dot and ends in a random part, so
	// that it can never be taken for a WAL file by PostgreSQL or by a
	// concurrent restore.
	f, err := os.CreateTemp(dir, "."+name.String()+".gbc-tmp-")
	if err != nil {
		return "", nil, fmt.Errorf("restore %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	d = newDigest()
	check := newContentCheck(name)
	if _, err = copyHashing(io.MultiWriter(f, check), zr, d); err != nil {
		return "", nil, fmt.Errorf("restore %s from %s: %w", name, key, err)
	}
	switch {
	case wantSum == "":
		// Written by another tool: only the codec's own checks (zstd and
		// gzip carry one) vouch for the content.
		warnf(log, "%s has no checksum in its metadata: restored without verification", key)
	case d.sum() != wantSum || strconv.FormatInt(d.n, 10) != wantSize:
		err = fmt.Errorf("%w: %s holds %d bytes with sha256 %.12s, but %s bytes with sha256 %.12s were archived; "+
			"the archived object is damaged: nothing was written", ErrChecksum, key, d.n, d.sum(), wantSize, wantSum)
		return "", nil, err
	}
	if name.Kind == Segment && !ValidSegmentSize(d.n) {
		err = fmt.Errorf("%w: %s holds %d bytes, which is not a WAL segment size", ErrChecksum, key, d.n)
		return "", nil, err
	}
	// The checksum travels with the object, so a copy of another
	// segment's object under this name passes it: only the content tells.
	if err = check.verify(d.n); err != nil {
		err = fmt.Errorf("%s holds the wrong file, refused before it reached PostgreSQL: %w", key, err)
		return "", nil, err
	}
	if err = f.Sync(); err != nil {
		return "", nil, fmt.Errorf("restore %s: sync: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return "", nil, fmt.Errorf("restore %s: %w", name, err)
	}
	return f.Name(), d, nil
}
