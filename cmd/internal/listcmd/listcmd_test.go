package listcmd

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

func testBackups() []*catalog.Backup {
	t0 := time.Date(2026, 11, 24, 21, 48, 42, 0, time.FixedZone("", 3600))
	return []*catalog.Backup{
		{ID: "20261124T204842Z", Name: "nightly", Status: catalog.StatusDone, BeginTime: t0, EndTime: t0.Add(90 * time.Second),
			BeginWAL: "000000010000000000000002", EndWAL: "000000010000000000000003", DataSize: 1591812096, StoredSize: 77812345,
			Keep: catalog.KeepFull, Tags: map[string]string{"env": "prod", "app": "billing"}, Timeline: 1, PGVersion: 150018},
		{ID: "20261125T204842Z", Status: catalog.StatusStarted, BeginTime: t0.Add(24 * time.Hour)},
	}
}

// TestJSONSchema pins the documented keys of gbc-backup-list --format json:
// scripts depend on them, so a change here is a change of contract.
func TestJSONSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, "main", testBackups()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["server"] != "main" {
		t.Errorf("server = %v", doc["server"])
	}
	backups := doc["backups"].([]any)
	first := backups[0].(map[string]any)
	var keys []string
	for k := range first {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "begin_lsn begin_time begin_wal compression data_size end_lsn end_time end_wal error id keep method name parent_id pg_version status stored_size system_identifier tags timeline type"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys:\n got %s\nwant %s", got, want)
	}
	if first["begin_time"] != "2026-11-24T20:48:42Z" || first["end_time"] != "2026-11-24T20:50:12Z" {
		t.Errorf("times must be UTC RFC 3339: %v %v", first["begin_time"], first["end_time"])
	}
	if first["data_size"] != float64(1591812096) || first["tags"].(map[string]any)["env"] != "prod" {
		t.Errorf("sizes and tags: %v", first)
	}
	second := backups[1].(map[string]any)
	if second["end_time"] != nil || second["name"] != "" || len(second["tags"].(map[string]any)) != 0 {
		t.Errorf("absent values must be null, \"\" and {}: %v", second)
	}
	var empty bytes.Buffer
	WriteJSON(&empty, "main", nil)
	if !strings.Contains(empty.String(), `"backups": []`) {
		t.Errorf("no backups must give an empty array: %s", empty.String())
	}
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, testBackups()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", buf.String())
	}
	head := strings.Fields(lines[0])
	row := strings.Fields(lines[1])
	// One word per column, for awk; TYPE and PARENT came last, so that
	// the older columns kept their numbers.
	if len(head) != 13 || len(row) != 13 || head[11] != "TYPE" || row[11] != "full" {
		t.Fatalf("columns %d/%d:\n%s", len(head), len(row), buf.String())
	}
	if !strings.Contains(lines[1], "1.5GiB") || !strings.Contains(lines[1], "74.2MiB") || !strings.Contains(lines[1], "app=billing,env=prod") ||
		!strings.Contains(lines[1], "2026-11-24T20:48:42Z") {
		t.Errorf("row: %s", lines[1])
	}
	if strings.Index(lines[0], "STATUS") != strings.Index(lines[1], "DONE") {
		t.Errorf("columns not aligned:\n%s", buf.String())
	}
	if !strings.Contains(lines[2], "STARTED") || strings.Count(lines[2], " - ") < 5 {
		t.Errorf("absent values must show as -: %s", lines[2])
	}
}
