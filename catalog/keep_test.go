package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

func TestSetKeep(t *testing.T) {
	ctx := context.Background()
	s, err := cloud.Open(ctx, "file://"+t.TempDir(), cloud.Options{RetryTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := Layout{Server: "main"}
	save := func(id string, status Status) *Backup {
		b := &Backup{ID: id, Status: status, ManifestKey: l.ManifestKey(id, "zst"), Parts: []Part{{Key: l.PartKey(id, "", 0, "zst")}}}
		for _, k := range []string{b.ManifestKey, b.Parts[0].Key} {
			if err := s.Put(ctx, k, cloud.BytesBody([]byte("x")), cloud.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := Save(ctx, s, l, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	done := save("20261124T000000Z", StatusDone)
	failed := save("20261125T000000Z", StatusFailed)

	b, err := SetKeep(ctx, s, l, done.ID, KeepStandalone)
	if err != nil || b.Keep != KeepStandalone {
		t.Fatalf("keep: %+v, %v", b, err)
	}
	if b, err := Load(ctx, s, l, done.ID); err != nil || b.Keep != KeepStandalone {
		t.Fatalf("stored keep: %+v, %v", b, err)
	}
	if _, err := SetKeep(ctx, s, l, done.ID, "forever"); err == nil {
		t.Error("invalid target accepted")
	}
	if _, err := SetKeep(ctx, s, l, failed.ID, KeepFull); !errors.Is(err, ErrNotDone) {
		t.Errorf("keep of a FAILED backup: %v", err)
	}
	if b, err := SetKeep(ctx, s, l, done.ID, ""); err != nil || b.Keep != "" {
		t.Fatalf("release: %+v, %v", b, err)
	}
	if _, err := SetKeep(ctx, s, l, "20200101T000000Z", KeepFull); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("unknown backup: %v", err)
	}

	// gbc-backup-delete removed the parts (and the record) between the
	// read and the write: the rewritten record must not survive.
	if err := s.Delete(ctx, done.ManifestKey, done.Parts[0].Key); err != nil {
		t.Fatal(err)
	}
	if _, err := SetKeep(ctx, s, l, done.ID, KeepFull); !errors.Is(err, ErrDeletedMeanwhile) {
		t.Errorf("keep of a backup deleted meanwhile: %v", err)
	}
	if _, err := s.Stat(ctx, l.RecordKey(done.ID)); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("record of a deleted backup left behind: %v", err)
	}
}
