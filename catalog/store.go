package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gbc-backup/gbc/cloud"
)

// maxRecordSize bounds what Decode reads. A record holds one entry per part
// (about 200 bytes each, a part being up to --max-archive-size), so even a
// 100 TiB backup in 1 GiB parts stays far below it; anything bigger is not a
// record and must not be read into memory whole.
const maxRecordSize = 64 << 20

// Encode renders b as the JSON stored in backup.json. It is indented so
// that an operator can read a record with any object-store browser.
func Encode(b *Backup) ([]byte, error) {
	if b.Format == 0 {
		b.Format = FormatVersion
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode record of backup %s: %w", b.ID, err)
	}
	return append(data, '\n'), nil
}

// Decode parses a record. Unknown fields are ignored so that an older gbc
// reads records that a newer one extended; a record whose format number is
// newer than this gbc understands is refused instead of being misread.
func Decode(r io.Reader) (*Backup, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read record: %w", err)
	}
	if len(data) > maxRecordSize {
		return nil, fmt.Errorf("record larger than %d bytes: not a gbc backup record", maxRecordSize)
	}
	var b Backup
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("parse record: %w", err)
	}
	if b.Format > FormatVersion {
		return nil, fmt.Errorf("record of backup %s has format %d, this gbc reads up to %d: upgrade gbc", b.ID, b.Format, FormatVersion)
	}
	if b.Format < 1 || b.ID == "" {
		return nil, errors.New("record has no format or id: not a gbc backup record")
	}
	return &b, nil
}

// Save writes b as the record of backup b.ID, replacing any previous one.
// A Put is all-or-nothing, so a reader sees either the old record or the new
// one, never a mix: this is what makes the record the commit point.
func Save(ctx context.Context, s cloud.Store, l Layout, b *Backup) error {
	return put(ctx, s, l, b, false)
}

// Create writes the first record of a new backup and fails with an error
// matching cloud.ErrExists when backup b.ID already has one, so that two
// processes starting in the same second cannot take the same id.
func Create(ctx context.Context, s cloud.Store, l Layout, b *Backup) error {
	return put(ctx, s, l, b, true)
}

func put(ctx context.Context, s cloud.Store, l Layout, b *Backup, ifNotExists bool) error {
	if b.ID == "" {
		return errors.New("save record: backup has no id")
	}
	data, err := Encode(b)
	if err != nil {
		return err
	}
	// From memory, so that the store retries the Put after a transient
	// failure.
	err = s.Put(ctx, l.RecordKey(b.ID), cloud.BytesBody(data), cloud.PutOptions{
		IfNotExists: ifNotExists,
		SizeHint:    int64(len(data)),
	})
	if err != nil {
		return fmt.Errorf("save record of backup %s (%s): %w", b.ID, b.Status, err)
	}
	return nil
}

// Load reads the record of backup id. A missing record yields an error
// matching cloud.ErrNotFound.
func Load(ctx context.Context, s cloud.Store, l Layout, id string) (*Backup, error) {
	rc, err := s.Get(ctx, l.RecordKey(id))
	if err != nil {
		return nil, fmt.Errorf("load record of backup %s: %w", id, err)
	}
	defer rc.Close()
	b, err := Decode(rc)
	if err != nil {
		return nil, fmt.Errorf("load record of backup %s: %w", id, err)
	}
	return b, nil
}
