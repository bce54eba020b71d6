package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/wal"
)

const seg = 16 << 20

// archiveOf builds a listing: segment numbers by timeline.
func archiveOf(segs map[uint32][]uint64, histories ...uint32) *archive {
	a := &archive{size: seg, segs: map[uint32]*timelineSegs{}, histories: map[uint32]string{}}
	for tli, nos := range segs {
		t := &timelineSegs{}
		for _, n := range nos {
			t.nos = append(t.nos, n)
			t.mods = append(t.mods, time.Unix(int64(n), 0))
		}
		a.segs[tli] = t
	}
	for _, h := range histories {
		a.histories[h] = "h"
	}
	return a
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for n := from; n <= to; n++ {
		out = append(out, n)
	}
	return out
}

func backupAt(id string, tli uint32, begin, end uint64) *catalog.Backup {
	return &catalog.Backup{ID: id, Timeline: tli, WALSegmentSize: seg,
		BeginWAL: wal.SegmentFromSegNo(tli, begin, seg).String(), EndWAL: wal.SegmentFromSegNo(tli, end, seg).String()}
}

func TestAnalyseFollowsTimelineSwitch(t *testing.T) {
	// Timeline 2 begins inside segment 5 (at 5.5 segments): segment 5
	// and later are read from timeline 2; timeline 1's segment 5 is only
	// a .partial, never listed as a segment.
	a := archiveOf(map[uint32][]uint64{1: span(2, 4), 2: span(5, 9)}, 2)
	hist := map[uint32]wal.TimelineHistory{2: {TLI: 2, Switches: []wal.TimelineSwitch{{TLI: 1, End: 5*seg + seg/2}}}}
	ps := &problems{}
	res := analyse(a, hist, []*catalog.Backup{backupAt("b1", 1, 2, 3)}, ps)
	if got := ps.list(); len(got) != 0 {
		t.Fatalf("problems on a sound archive: %v", got)
	}
	if res.Newest != "000000020000000000000009" || res.Checked != 8 {
		t.Errorf("newest %s, checked %d: want timeline 2's segment 9, 8 checked", res.Newest, res.Checked)
	}

	// Timeline 2's segment 5 missing: a gap, though timeline 1 has
	// segments before it.
	a = archiveOf(map[uint32][]uint64{1: span(2, 5), 2: span(6, 9)}, 2)
	ps = &problems{}
	analyse(a, hist, []*catalog.Backup{backupAt("b1", 1, 2, 3)}, ps)
	got := ps.list()
	if len(got) != 1 || got[0].Kind != KindWALGap || got[0].Object != "000000020000000000000005" || !strings.Contains(got[0].Means, "PITR between") {
		t.Fatalf("want one gap at timeline 2's segment 5, got %v", got)
	}
}

func TestAnalyseProblems(t *testing.T) {
	// Segments 6-7 missing, the backup's own end segment 3 missing, and
	// no history file for timeline 3.
	a := archiveOf(map[uint32][]uint64{1: {2, 4, 5, 8, 9}, 3: {10}})
	ps := &problems{}
	analyse(a, nil, []*catalog.Backup{backupAt("b1", 1, 2, 3)}, ps)
	kinds := map[string][]string{}
	for _, p := range ps.list() {
		kinds[p.Kind] = append(kinds[p.Kind], p.Object)
	}
	want := map[string][]string{
		KindWALBackup: {"000000010000000000000003"},
		KindWALGap:    {"000000010000000000000003", "000000010000000000000006 to 000000010000000000000007 (2 segments)"},
		KindHistory:   {"00000002.history", "00000003.history"},
	}
	for k, objs := range want {
		if strings.Join(kinds[k], "|") != strings.Join(objs, "|") {
			t.Errorf("%s problems: %v, want %v", k, kinds[k], objs)
		}
	}
}

func TestParseManifest(t *testing.T) {
	body := "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n" +
		"{ \"Path\": \"base/1/1\", \"Size\": 3, \"Last-Modified\": \"x\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"aabbccdd\" },\n" +
		"{ \"Encoded-Path\": \"6162\", \"Size\": 0, \"Last-Modified\": \"x\" }\n],\n"
	good := body + "\"Manifest-Checksum\": \"" + sha256hex(body) + "\"}\n"
	m, err := parseManifest(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if e := m.lookup("base/1/1"); e == nil || e.size != 3 || e.checksum != "aabbccdd" || e.algorithm != "CRC32C" {
		t.Errorf("entry: %+v", e)
	}
	if m.lookup("ab") == nil {
		t.Error("Encoded-Path not decoded")
	}
	if _, err := parseManifest(strings.NewReader(strings.Replace(good, "\"Size\": 3", "\"Size\": 4", 1))); err == nil {
		t.Error("a changed manifest passed its Manifest-Checksum")
	}
	if _, err := parseManifest(strings.NewReader(body)); err == nil {
		t.Error("a truncated manifest was accepted")
	}
}
