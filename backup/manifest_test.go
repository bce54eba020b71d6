package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/pg"
)

func finishedManifest(t *testing.T, codec compress.Codec, version int) (text []byte, size int64, sum string) {
	t.Helper()
	m, err := newManifestWriter(codec, 0, version, "7712363937220531705")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mt := time.Date(2026, 11, 24, 21, 48, 42, 999_000_000, time.FixedZone("CET", 3600))
	m.AddFile("backup_label", 225, mt, crc32.Checksum([]byte("x"), castagnoli))
	m.AddFile("base/1/1259", 8192, mt, 0xe5fdb8c6)
	m.AddFile("weird \"name\"\\\t<&>", 0, mt, 0)
	m.AddFile("bad\xffutf8", 1, mt, 0)
	if err := m.Finish([]WALRange{{Timeline: 1, Start: 0x2000028, End: 0x2000100}}); err != nil {
		t.Fatal(err)
	}
	st := cloud.NewMem()
	size, sum, err = m.Upload(context.Background(), st, "k")
	if err != nil {
		t.Fatal(err)
	}
	stored := storedBytes(t, st, "k")
	h := sha256.Sum256(stored)
	if int64(len(stored)) != size || hex.EncodeToString(h[:]) != sum {
		t.Errorf("upload reports %d bytes %s, stored %d bytes %x", size, sum, len(stored), h)
	}
	zr, err := codec.NewReader(bytes.NewReader(stored))
	if err != nil {
		t.Fatal(err)
	}
	text, err = io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return text, size, sum
}

// TestManifestFormat compares with what PostgreSQL writes, byte for byte.
func TestManifestFormat(t *testing.T) {
	codec, _ := compress.Lookup("zstd")
	text, _, _ := finishedManifest(t, codec, 150018)
	body, checksumLine, ok := strings.Cut(string(text), "\"Manifest-Checksum\"")
	if !ok {
		t.Fatalf("no checksum line in\n%s", text)
	}
	want := `{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "backup_label", "Size": 225, "Last-Modified": "2026-11-24 20:48:42 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "` + crcBytes(crc32.Checksum([]byte("x"), castagnoli)) + `" },
{ "Path": "base/1/1259", "Size": 8192, "Last-Modified": "2026-11-24 20:48:42 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "c6b8fde5" },
{ "Path": "weird \"name\"\\\t<&>", "Size": 0, "Last-Modified": "2026-11-24 20:48:42 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" },
{ "Encoded-Path": "626164ff75746638", "Size": 1, "Last-Modified": "2026-11-24 20:48:42 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
`
	if body != want {
		t.Errorf("manifest:\n%s\nwant:\n%s", body, want)
	}
	// pg_verifybackup's check: SHA-256 of everything up to the last line.
	sum := sha256.Sum256([]byte(body))
	if checksumLine != `: "`+hex.EncodeToString(sum[:])+"\"}\n" {
		t.Errorf("checksum line %q, want the SHA-256 %x", checksumLine, sum)
	}
	var parsed map[string]any
	if err := json.Unmarshal(text, &parsed); err != nil {
		t.Errorf("not JSON: %v", err)
	}
}

func TestManifestVersion2(t *testing.T) {
	codec, _ := compress.Lookup("none")
	text, _, _ := finishedManifest(t, codec, 170002)
	if !strings.HasPrefix(string(text), "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7712363937220531705,\n\"Files\": [\n") {
		t.Errorf("PostgreSQL 17 manifest starts with %.120q", text)
	}
}

func TestWALRangesText(t *testing.T) {
	r := walRanges(3, pg.LSN(0x16B374D848), pg.LSN(0x16B3800000))
	if len(r) != 1 || r[0].Timeline != 3 || r[0].Start.String() != "16/B374D848" {
		t.Errorf("walRanges = %+v", r)
	}
}

func TestCheckArchiving(t *testing.T) {
	var warned []string
	warn := func(f string, a ...any) { warned = append(warned, f) }
	if err := checkArchiving("off", "gbc-wal-archive s3://b main %p", "", false, warn); !errors.Is(err, ErrRefused) {
		t.Errorf("archive_mode off: %v", err)
	}
	if err := checkArchiving("on", "", "", false, warn); !errors.Is(err, ErrRefused) {
		t.Errorf("empty archive_command: %v", err)
	}
	if err := checkArchiving("on", "gbc-wal-archive s3://b main %p", "", false, warn); err != nil || len(warned) != 0 {
		t.Errorf("gbc archive_command: %v, warnings %q", err, warned)
	}
	if err := checkArchiving("on", "cp %p /mnt/arch/%f", "", false, warn); err != nil || len(warned) != 1 {
		t.Errorf("cp archive_command: %v, warnings %q", err, warned)
	}
	warned = nil
	if err := checkArchiving("on", "", "basic_archive", false, warn); err != nil || len(warned) != 0 {
		t.Errorf("archive_library: %v, warnings %q", err, warned)
	}
	if err := checkArchiving("on", "gbc-wal-archive s3://b main %p", "", true, warn); err != nil || len(warned) != 1 {
		t.Errorf("standby, archive_mode on: %v, warnings %q", err, warned)
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"":                                   true,
		"before-upgrade":                     true,
		"nightly-2026-11-24":                 true,
		"v15.4_pre":                          true,
		"_x":                                 true,
		strings.Repeat("a", MaxNameLength):   true,
		strings.Repeat("a", MaxNameLength+1): false,
		"nightly 2026":                       false,
		"a b":                                false,
		"../../evil":                         false,
		"a/b":                                false,
		".hidden":                            false,
		"-dash":                              false,
		"tab\there":                          false,
		"caf\u00e9":                          false,
		"latest":                             false,
		"oldest":                             false,
		"auto":                               false,
		"20261124T214842Z":                   false,
		" padded":                            false,
		"two\nlines":                         false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
}
