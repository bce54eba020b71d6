package pg

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LSN
		out  string
	}{
		{"0/2000028", 0x2000028, "0/2000028"},
		{"16/B374D848", 0x16B374D848, "16/B374D848"},
		{"0/0", 0, "0/0"},
		{"ffffffff/ffffffff", 0xFFFFFFFFFFFFFFFF, "FFFFFFFF/FFFFFFFF"},
	} {
		got, err := ParseLSN(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.out {
			t.Errorf("%v.String() = %q, want %q", got, s, tc.out)
		}
	}
	for _, bad := range []string{"", "0", "/1", "1/", "0/1/2", "g/0", "100000000/0", "0/-1", " 0/1"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) succeeded", bad)
		}
	}
}

func TestSegmentName(t *testing.T) {
	const mb16 = 16 << 20
	for _, tc := range []struct {
		lsn     string
		tli     uint32
		segSize int64
		seg     string
		prev    string
	}{
		{"0/2000028", 1, mb16, "000000010000000000000002", "000000010000000000000002"},
		{"0/3000000", 1, mb16, "000000010000000000000003", "000000010000000000000002"},
		{"16/B374D848", 3, mb16, "0000000300000016000000B3", "0000000300000016000000B3"},
		{"1/FF000000", 2, mb16, "0000000200000001000000FF", "0000000200000001000000FE"},
		// 1 GiB segments: four per "log" number.
		{"1/C0000001", 1, 1 << 30, "000000010000000100000003", "000000010000000100000003"},
		// 1 MiB segments: 4096 per log.
		{"0/FFF00000", 1, 1 << 20, "000000010000000000000FFF", "000000010000000000000FFE"},
	} {
		l, err := ParseLSN(tc.lsn)
		if err != nil {
			t.Fatal(err)
		}
		if got := SegmentName(tc.tli, l.Segment(tc.segSize), tc.segSize); got != tc.seg {
			t.Errorf("segment of %s = %s, want %s", tc.lsn, got, tc.seg)
		}
		if got := SegmentName(tc.tli, l.PrevSegment(tc.segSize), tc.segSize); got != tc.prev {
			t.Errorf("previous segment of %s = %s, want %s", tc.lsn, got, tc.prev)
		}
	}
}

func TestServerVersion(t *testing.T) {
	for _, tc := range []struct {
		in    string
		num   int
		short string
	}{
		{"15.18", 150018, "15.18"},
		{"15.18 (Debian 15.18-1.pgdg120+1)", 150018, "15.18"},
		{"16beta1", 160000, "16beta1"},
		{"17.2", 170002, "17.2"},
		{"14.9", 140009, "14.9"},
	} {
		n, s, err := parseServerVersion(tc.in)
		if err != nil || n != tc.num || s != tc.short {
			t.Errorf("parseServerVersion(%q) = %d, %q, %v", tc.in, n, s, err)
		}
	}
	if err := checkVersion(140009, "14.9"); !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "15 or later") {
		t.Errorf("14.9 accepted or unclear: %v", err)
	}
	if err := checkVersion(150000, "15.0"); err != nil {
		t.Errorf("15.0 refused: %v", err)
	}
}

func TestSegmentSize(t *testing.T) {
	for _, tc := range []struct {
		setting, unit string
		want          int64
		ok            bool
	}{
		{"16777216", "B", 16 << 20, true},
		{"16", "MB", 16 << 20, true},
		{"2048", "8kB", 16 << 20, true},
		{"1", "GB", 1 << 30, true},
		{"3", "MB", 0, false},
		{"2", "GB", 0, false},
		{"x", "B", 0, false},
		{"16", "parsecs", 0, false},
	} {
		got, err := segmentSize(tc.setting, tc.unit)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("segmentSize(%q, %q) = %d, %v", tc.setting, tc.unit, got, err)
		}
	}
}

func TestParseBackupLabel(t *testing.T) {
	text := `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-11-24 21:48:42 UTC
LABEL: gbc 20261124T214842Z: it's: colons
START TIMELINE: 1
`
	b, err := ParseBackupLabel(text)
	if err != nil {
		t.Fatal(err)
	}
	if b.StartLSN != 0x2000028 || b.StartWALFile != "000000010000000000000002" || b.CheckpointLSN != 0x2000060 ||
		b.From != "primary" || b.Label != "gbc 20261124T214842Z: it's: colons" || b.StartTimeline != 1 ||
		b.StartTime != "2026-11-24 21:48:42 UTC" || b.Method != "streamed" {
		t.Errorf("parsed %+v", b)
	}
	if _, err := ParseBackupLabel("LABEL: x\n"); err == nil {
		t.Error("a label without start location was accepted")
	}
}

func TestBaseBackupSQL(t *testing.T) {
	got := BaseBackupOptions{Label: "gbc 'x'", Fast: true, Manifest: true, TablespaceMap: true}.sql()
	want := `BASE_BACKUP ( LABEL 'gbc ''x''', CHECKPOINT 'fast', WAIT true, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP true )`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestConnStringErrorHidesPassword(t *testing.T) {
	_, err := ParseConnString("postgres://u:s3cret@host:notaport/db", "gbc")
	if err == nil {
		t.Fatal("bad port accepted")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	cfg, err := ParseConnString("host=/tmp port=5433 user=x dbname=y", "gbc-backup")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["application_name"] != "gbc-backup" || cfg.Port != 5433 {
		t.Errorf("config %+v", cfg.RuntimeParams)
	}
	cfg, _ = ParseConnString("application_name=mine", "gbc-backup")
	if cfg.RuntimeParams["application_name"] != "mine" {
		t.Errorf("application_name overridden: %v", cfg.RuntimeParams)
	}
}

func TestParseControl(t *testing.T) {
	b := make([]byte, 8192)
	binary.LittleEndian.PutUint64(b[0:], 7441000000000000001)
	binary.LittleEndian.PutUint32(b[8:], 1300)
	binary.LittleEndian.PutUint32(b[12:], 202209061)
	binary.LittleEndian.PutUint32(b[16:], 6)
	binary.LittleEndian.PutUint64(b[32:], 0x3000060)
	binary.LittleEndian.PutUint64(b[40:], 0x3000028)
	binary.LittleEndian.PutUint32(b[48:], 2)
	c, err := ParseControl(b)
	if err != nil {
		t.Fatal(err)
	}
	want := ControlData{SystemIdentifier: "7441000000000000001", ControlVersion: 1300, CatalogVersion: 202209061, State: 6,
		Checkpoint: 0x3000060, Redo: 0x3000028, Timeline: 2}
	if *c != want {
		t.Fatalf("ParseControl = %+v, want %+v", *c, want)
	}
	if _, err := ParseControl(b[:40]); err == nil {
		t.Fatal("a 40-byte pg_control was accepted")
	}
}
