package bench_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/bench"
)

// TestSmoke runs the whole benchmark at its smallest scale, so that
// `make bench` cannot rot: every scenario must produce a row for gbc (and
// for each peer installed; scripts/test-deps.sh installs them), without
// error, and a well-formed Markdown and JSON report. It asserts no timing:
// the figures of a smoke run mean nothing.
//
// It needs what `make test` provides: the gbc build ($GBC_BIN or ./bin),
// MinIO in PATH ($GBC_TOOLS/bin) and PostgreSQL 15.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the smoke benchmark starts PostgreSQL and MinIO: it runs in make test, not with -short")
	}
	gbcDir := os.Getenv("GBC_BIN")
	if gbcDir == "" {
		gbcDir = filepath.Join("..", "bin")
	}
	if _, err := os.Stat(filepath.Join(gbcDir, "gbc")); err != nil {
		t.Fatalf("no gbc build in %s: run `make build` (make test does): %v", gbcDir, err)
	}
	tools := []string{"gbc"}
	for _, peer := range []struct{ family, bin string }{{"barman-cloud", "barman-cloud-backup"}, {"pgbackrest", "pgbackrest"}} {
		if _, err := exec.LookPath(peer.bin); err == nil {
			tools = append(tools, peer.family)
		} else {
			t.Logf("%s is not installed (scripts/test-deps.sh installs it as root): smoke run without it", peer.bin)
		}
	}
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, bench.Options{
		Scale:      "smoke",
		Tools:      tools,
		GBCDir:     gbcDir,
		ResultsDir: results,
		Log:        testWriter{t},
	})
	if err != nil {
		t.Fatalf("bench.Run: %v", err)
	}
	md := rep.Markdown()
	t.Logf("report:\n%s", md)
	for _, f := range rep.Failures() {
		t.Errorf("failure: %s", f)
	}

	rows := map[string][]string{ // scenario -> tools expected
		"wal-archive":         {"gbc", "barman-cloud", "pgbackrest", "pgbackrest-async"},
		"wal-archive-backlog": {"gbc", "barman-cloud", "pgbackrest", "pgbackrest-async"},
		"wal-archive-call":    {"gbc", "barman-cloud", "pgbackrest", "pgbackrest-async"},
		"wal-cost":            {"gbc"},
		"backup":              {"gbc", "barman-cloud", "pgbackrest"},
		"restore":             {"gbc", "barman-cloud", "pgbackrest"},
		"wal-replay":          {"gbc", "barman-cloud", "pgbackrest", "pgbackrest-async"},
		"many-files":          {"gbc", "barman-cloud", "pgbackrest"},
	}
	// Figures a row may lack without being broken: catch-up is not
	// measured past its limit.
	optional := map[string]bool{"catchup": true}
	found := map[string]bool{}
	for _, s := range rep.Scenarios {
		want, ok := rows[s.ID]
		if !ok {
			t.Errorf("unexpected scenario %q", s.ID)
			continue
		}
		found[s.ID] = true
		if !strings.Contains(md, "## "+s.Title) {
			t.Errorf("Markdown has no heading for %s", s.ID)
		}
		for _, tool := range want {
			if !selected(tools, tool) {
				continue
			}
			row := findRow(s, tool)
			if row == nil {
				t.Errorf("%s: no row for %s", s.ID, tool)
				continue
			}
			for _, c := range s.Columns {
				if _, ok := row.Values[c.Key]; !ok && !optional[c.Key] {
					t.Errorf("%s %s: no value for %q", s.ID, tool, c.Title)
				}
			}
			if !strings.Contains(md, "| "+tool+" |") {
				t.Errorf("Markdown has no row for %s", tool)
			}
		}
	}
	for id := range rows {
		if !found[id] {
			t.Errorf("no scenario %q in the report", id)
		}
	}
	if len(tools) > 1 && len(rep.Comparisons) == 0 {
		t.Error("no comparison of gbc with the peers")
	}

	// The files: one .md and one .json that decodes to the same report.
	mds, _ := filepath.Glob(filepath.Join(results, "*-smoke.md"))
	jss, _ := filepath.Glob(filepath.Join(results, "*-smoke.json"))
	if len(mds) != 1 || len(jss) != 1 {
		t.Fatalf("results: want one .md and one .json, got %v %v", mds, jss)
	}
	b, err := os.ReadFile(jss[0])
	if err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s: %v", jss[0], err)
	}
	if back.Scale != "smoke" || len(back.Scenarios) != len(rep.Scenarios) {
		t.Errorf("%s: scale %q, %d scenarios; want smoke, %d", jss[0], back.Scale, len(back.Scenarios), len(rep.Scenarios))
	}
}

func selected(tools []string, row string) bool {
	for _, f := range tools {
		if row == f || strings.HasPrefix(row, f+"-") {
			return true
		}
	}
	return false
}

func findRow(s *bench.Scenario, tool string) *bench.Row {
	for _, r := range s.Rows {
		if r.Tool == tool {
			return r
		}
	}
	return nil
}

// testWriter sends the harness's progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
