package metrics_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gbc-backup/gbc/metrics"
)

func parse(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("the file does not parse as Prometheus text: %v", err)
	}
	return fams
}

// values maps server -> value for one metric.
func values(t *testing.T, fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range fams[name].GetMetric() {
		var server string
		for _, l := range m.GetLabel() {
			if l.GetName() == "server" {
				server = l.GetValue()
			}
		}
		if server == "" {
			t.Errorf("%s: a sample without a server label", name)
		}
		v := m.GetGauge().GetValue()
		if m.Counter != nil {
			v = m.GetCounter().GetValue()
		}
		out[server] = v
	}
	return out
}

func gauge(name, server string, v float64) metrics.Sample {
	return metrics.Sample{Name: name, Help: "help of " + name, Server: server, Value: v}
}

func TestWriteParses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gbc-status.prom")
	err := metrics.File{Path: path}.Write([]metrics.Sample{
		gauge("gbc_b", "main", 2),
		gauge("gbc_a", "main", 1.5),
		gauge("gbc_a", `we"ird\name`, 3),
		{Name: "gbc_runs_total", Help: "runs", Type: metrics.Counter, Server: "main", Value: 7, Labels: map[string]string{"result": "ok"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	text := string(data)
	for _, want := range []string{"# HELP gbc_a help of gbc_a\n", "# TYPE gbc_a gauge\n", "# TYPE gbc_runs_total counter\n", `gbc_runs_total{result="ok",server="main"} 7`} {
		if !strings.Contains(text, want) {
			t.Errorf("file lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "gbc_a") > strings.Index(text, "gbc_b") {
		t.Errorf("families are not sorted by name:\n%s", text)
	}
	fams := parse(t, path)
	if got := values(t, fams, "gbc_a"); got["main"] != 1.5 || got[`we"ird\name`] != 3 || len(got) != 2 {
		t.Errorf("gbc_a = %v", got)
	}
	if fams["gbc_runs_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("gbc_runs_total is %v, want a counter", fams["gbc_runs_total"].GetType())
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("mode %v (%v), want 0644 so that the collector can read it", info.Mode().Perm(), err)
	}
	// Merge reads back what Write wrote, escapes included, and keeps it.
	err = metrics.File{Path: path}.Merge("other", []metrics.Sample{
		{Name: "gbc_a", Help: "help of gbc_a", Server: "other", Value: math.Inf(1)},
		{Name: "gbc_c", Help: "multi\nline \\ help", Server: "other", Value: -0.25},
	})
	if err != nil {
		t.Fatal(err)
	}
	fams = parse(t, path)
	if got := values(t, fams, "gbc_a"); got["main"] != 1.5 || got[`we"ird\name`] != 3 || !math.IsInf(got["other"], 1) || len(got) != 3 {
		t.Errorf("after Merge, gbc_a = %v", got)
	}
	if got := fams["gbc_c"].GetHelp(); got != "multi\nline \\ help" {
		t.Errorf("HELP %q did not survive", got)
	}
	if got := values(t, fams, "gbc_runs_total"); got["main"] != 7 || fams["gbc_runs_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("after Merge, gbc_runs_total = %v (%v)", got, fams["gbc_runs_total"].GetType())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the file alone (no temporary or lock file)", len(ents))
	}
}

func TestMergeReplacesOneServer(t *testing.T) {
	f := metrics.File{Path: filepath.Join(t.TempDir(), "gbc-backup.prom")}
	if err := f.Merge("a", []metrics.Sample{gauge("gbc_x", "a", 1), gauge("gbc_only_a", "a", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Merge("b", []metrics.Sample{gauge("gbc_x", "b", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Merge("a", []metrics.Sample{gauge("gbc_x", "a", 10)}); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, f.Path)
	if got := values(t, fams, "gbc_x"); got["a"] != 10 || got["b"] != 2 || len(got) != 2 {
		t.Errorf("gbc_x = %v, want a=10 b=2", got)
	}
	if _, ok := fams["gbc_only_a"]; ok {
		t.Error("a metric server a no longer reports was kept")
	}
	if err := f.Merge("a", []metrics.Sample{gauge("gbc_x", "b", 1)}); err == nil {
		t.Error("Merge took a sample of another server")
	}
}

func TestMergeConcurrent(t *testing.T) {
	f := metrics.File{Path: filepath.Join(t.TempDir(), "gbc-wal-archive.prom")}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			server := fmt.Sprintf("s%02d", i)
			errs <- f.Merge(server, []metrics.Sample{gauge("gbc_x", server, float64(i))})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := values(t, parse(t, f.Path), "gbc_x"); len(got) != n {
		t.Errorf("%d servers in the file, want %d: concurrent merges lost some", len(got), n)
	}
}

func TestRefusals(t *testing.T) {
	f := metrics.File{Path: filepath.Join(t.TempDir(), "m.prom")}
	for name, s := range map[string]metrics.Sample{
		"no prefix":      gauge("backup_age", "main", 1),
		"bad name":       gauge("gbc_a-b", "main", 1),
		"no server":      gauge("gbc_a", "", 1),
		"server label":   {Name: "gbc_a", Server: "main", Labels: map[string]string{"server": "x"}},
		"reserved label": {Name: "gbc_a", Server: "main", Labels: map[string]string{"__x": "x"}},
	} {
		if err := f.Write([]metrics.Sample{s}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := f.Write([]metrics.Sample{gauge("gbc_a", "x", 1), {Name: "gbc_a", Help: "other", Server: "y"}}); err == nil {
		t.Error("samples disagreeing on help were accepted")
	}
	if err := os.WriteFile(f.Path, []byte("not { prometheus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Merge("main", []metrics.Sample{gauge("gbc_a", "main", 1)}); err == nil {
		t.Error("Merge overwrote a file it could not parse")
	}
}
