package catalog

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
)

func fullRecord() *Backup {
	t0 := time.Date(2026, 11, 24, 21, 48, 42, 0, time.UTC)
	return &Backup{
		Format: FormatVersion, ID: "20261124T214842Z", Name: "nightly", Server: "main", Status: StatusDone,
		PGVersion: 150018, PGVersionString: "15.18", SystemIdentifier: "7712363937220531705", Timeline: 1,
		WALSegmentSize: 16 << 20, BeginTime: t0, EndTime: t0.Add(time.Minute),
		BeginLSN: "0/2000028", EndLSN: "0/2000100", BeginWAL: "000000010000000000000002", EndWAL: "000000010000000000000002",
		Method: "local", Compression: "zstd", CompressionLevel: 3, DataSize: 1 << 30, StoredSize: 1 << 26, Files: 981,
		Parts: []Part{
			{Key: "main/base/20261124T214842Z/data/1.tar.zst", Size: 1 << 30, StoredSize: 1 << 26, SHA256: strings.Repeat("ab", 32), Files: 980},
			{Key: "main/base/20261124T214842Z/tblspc/16384/1.tar.zst", Tablespace: "16384", Size: 4096, StoredSize: 100, SHA256: strings.Repeat("cd", 32), Files: 1},
		},
		Tablespaces:   []Tablespace{{OID: "16384", Name: "ts1", Location: "/srv/ts1", Size: 4096}},
		BackupLabel:   "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
		TablespaceMap: "16384 /srv/ts1\n",
		ManifestKey:   "main/base/20261124T214842Z/backup_manifest.zst", ManifestSHA256: strings.Repeat("ef", 32), ManifestStoredSize: 5000,
		Label: "gbc 20261124T214842Z", DataDirectory: "/srv/pg", Host: "db1", GBCVersion: "1.0.0",
		Keep: KeepFull, Tags: map[string]string{"ticket": "42"},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	b := fullRecord()
	data, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, b)
	}
	// The JSON names are a contract with other readers (list --format
	// json, scripts): a few of them, spelled out.
	for _, field := range []string{`"begin_wal": "000000010000000000000002"`, `"manifest_sha256"`, `"stored_size": 67108864`, `"status": "DONE"`, `"parts": [`} {
		if !bytes.Contains(data, []byte(field)) {
			t.Errorf("encoded record lacks %s", field)
		}
	}
	// A STARTED record has no heartbeat field until one is set.
	if bytes.Contains(data, []byte("heartbeat")) {
		t.Error("zero heartbeat encoded")
	}
}

func TestDecodeCompatibility(t *testing.T) {
	// A newer gbc's extra fields are ignored.
	b, err := Decode(strings.NewReader(`{"format": 1, "id": "x", "status": "DONE", "some_future_field": {"a": 1}}`))
	if err != nil || b.ID != "x" || b.Status != StatusDone {
		t.Errorf("record with an unknown field: %+v, %v", b, err)
	}
	// A newer format is refused rather than misread.
	if _, err := Decode(strings.NewReader(`{"format": 99, "id": "x"}`)); err == nil || !strings.Contains(err.Error(), "upgrade gbc") {
		t.Errorf("format 99: %v", err)
	}
	for _, bad := range []string{``, `{}`, `{"format": 1}`, `[1]`, `{"format": 1, "id": "x"`} {
		if _, err := Decode(strings.NewReader(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

func TestSaveLoadCreate(t *testing.T) {
	ctx := context.Background()
	s, err := cloud.Open(ctx, "file://"+t.TempDir(), cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := Layout{Server: "main"}
	b := fullRecord()
	b.Status = StatusStarted
	if err := Create(ctx, s, l, b); err != nil {
		t.Fatal(err)
	}
	if err := Create(ctx, s, l, b); !errors.Is(err, cloud.ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}
	b.Status = StatusDone
	if err := Save(ctx, s, l, b); err != nil {
		t.Fatal(err)
	}
	got, err := Load(ctx, s, l, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Errorf("Load:\n got %+v\nwant %+v", got, b)
	}
	if _, err := Load(ctx, s, l, "20000101T000000Z"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Load of a missing record: %v, want ErrNotFound", err)
	}
	if err := Save(ctx, s, l, &Backup{}); err == nil {
		t.Error("a record without id was saved")
	}
}
