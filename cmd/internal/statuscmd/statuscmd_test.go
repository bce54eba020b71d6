package statuscmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cmd/internal/cli"
	"github.com/gbc-backup/gbc/metrics"
	"github.com/gbc-backup/gbc/status"
)

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func fleet() []status.Facts {
	return []status.Facts{
		{
			Server: "main", Backups: 3, StoredSize: 3 << 30,
			Last:        &status.Backup{ID: "20261130T020000Z", Type: "full", EndTime: now.Add(-10 * time.Hour), StoredSize: 1 << 30, DataSize: 4 << 30},
			NewestWAL:   &status.Segment{Name: "000000010000000000000042", Time: now.Add(-2 * time.Minute)},
			CheckedFrom: "000000010000000000000003",
			Drill:       &catalog.Drill{OK: true, RTOSeconds: 42, BackupID: "20261130T020000Z", Time: now.Add(-24 * time.Hour)},
		},
		{Server: "new"},
	}
}

func TestReport(t *testing.T) {
	lim := status.Limits{MaxBackupAge: DefaultMaxBackupAge, MaxWALAge: DefaultMaxWALAge}
	doc := Build(fleet(), lim, now)
	if doc.State != status.Critical || doc.Servers[0].State != status.OK || doc.Servers[1].State != status.Critical {
		t.Fatalf("states %v %v %v, want critical (worst), ok, critical", doc.State, doc.Servers[0].State, doc.Servers[1].State)
	}
	var text bytes.Buffer
	if err := WriteText(&text, doc); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(text.String(), "\n"), "\n")
	want := []string{
		"main ok: backup 20261130T020000Z full 1.0GiB 10h ago (3 backups, 3.0GiB); WAL 000000010000000000000042 2m ago; no WAL gap; drill ok RTO 42s 24h ago",
		"new critical: no backup; no WAL; WAL gaps not checked -- no DONE backup; no WAL segment archived",
	}
	if len(lines) != len(want) {
		t.Fatalf("text:\n%s", text.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n%s\nwant\n%s", i, lines[i], want[i])
		}
	}

	var js bytes.Buffer
	if err := json.NewEncoder(&js).Encode(doc); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	srv := back["servers"].([]any)[0].(map[string]any)
	if back["state"] != "critical" || srv["state"] != "ok" || srv["newest_wal"].(map[string]any)["age_seconds"] != 120.0 ||
		srv["last_backup"].(map[string]any)["type"] != "full" || srv["last_drill"].(map[string]any)["rto_seconds"] != 42.0 {
		t.Errorf("json:\n%s", js.String())
	}
	if other := back["servers"].([]any)[1].(map[string]any); other["last_backup"] != nil || other["newest_wal"] != nil {
		t.Errorf("absent values are not null:\n%s", js.String())
	}
}

func TestSamplesParse(t *testing.T) {
	doc := Build(fleet(), status.Limits{MaxWALAge: time.Minute}, now)
	path := filepath.Join(t.TempDir(), "gbc-status.prom")
	if err := (metrics.File{Path: path}).Write(Samples(doc)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	get := func(name, server string) (float64, bool) {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" && l.GetValue() == server {
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	for _, c := range []struct {
		name, server string
		want         float64
	}{
		{"gbc_status_state", "main", 2}, // the WAL is 2m old, over 1m
		{"gbc_status_state", "new", 2},
		{"gbc_last_backup_timestamp_seconds", "main", float64(now.Add(-10 * time.Hour).Unix())},
		{"gbc_last_backup_timestamp_seconds", "new", 0},
		{"gbc_last_backup_stored_bytes", "main", 1 << 30},
		{"gbc_wal_newest_age_seconds", "main", 120},
		{"gbc_wal_gaps", "main", 0},
		{"gbc_drill_last_success", "main", 1},
		{"gbc_drill_last_rto_seconds", "main", 42},
	} {
		if got, ok := get(c.name, c.server); !ok || got != c.want {
			t.Errorf("%s{server=%q} = %v (present %v), want %v", c.name, c.server, got, ok, c.want)
		}
	}
	if _, ok := get("gbc_wal_newest_age_seconds", "new"); ok {
		t.Error("an age of no WAL segment was written")
	}
	for name := range fams {
		if !strings.HasPrefix(name, "gbc_") || fams[name].GetHelp() == "" {
			t.Errorf("metric %s: want a gbc_ name and a HELP line", name)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{stateExit{state: status.Warning, error: cli.Quiet(1)}, 1},
		{stateExit{state: status.Critical, error: cli.Quiet(2)}, 2},
		{cli.Usagef("bad option"), ExitUnknown},
		{errors.New("store down"), ExitUnknown},
		{catalog.ErrUnknownServer, ExitUnknown},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
