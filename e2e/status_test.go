package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gbc-backup/gbc/e2e/harness"
)

// gbc-status end to end on a real PostgreSQL 15 cluster, on file:// and
// MinIO: the newest segment it reports is the one pg_stat_archiver names,
// the state follows --max-wal-age with monitoring-plugin exit codes, the
// fleet view finds the server, and --metrics-file parses as Prometheus
// text.

const stServer = "main"

// statusDoc is the part of gbc-status --format json this test reads.
type statusDoc struct {
	State   string `json:"state"`
	Servers []struct {
		Server     string   `json:"server"`
		State      string   `json:"state"`
		Reasons    []string `json:"reasons"`
		Backups    int      `json:"backups"`
		LastBackup *struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"last_backup"`
		NewestWAL *struct {
			Name string `json:"name"`
		} `json:"newest_wal"`
		WALCheckedFrom string `json:"wal_checked_from"`
		WALGaps        []any  `json:"wal_gaps"`
	} `json:"servers"`
}

func TestStatus(t *testing.T) {
	for _, provider := range []string{"file", "s3"} {
		t.Run(provider, func(t *testing.T) { testStatus(t, provider) })
	}
}

func testStatus(t *testing.T, provider string) {
	st := harness.NewStore(t, provider)
	pg := harness.StartPostgres(t, harness.PGOptions{
		ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, stServer, "%p"),
		Env:              st.Env,
		WALSegmentSizeMB: 1,
	})
	status := func(flags []string, pos ...string) (string, string, int) {
		t.Helper()
		return pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-status"), flags, pos...)...)
	}
	decode := func(out string) statusDoc {
		t.Helper()
		var d statusDoc
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("gbc-status --format json: %v\n%s", err, out)
		}
		return d
	}

	// WAL but no backup yet: critical.
	pg.WaitArchived(t, pg.SwitchWAL(t), time.Minute)
	out, errOut, code := status(nil, stServer)
	if code != 2 || !strings.HasPrefix(out, "main critical: no backup;") || !strings.Contains(out, "no DONE backup") {
		t.Errorf("before any backup: exit %d, want 2 (critical)\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if errOut != "" {
		t.Errorf("a critical state printed on stderr: %s", errOut)
	}

	out, errOut, code = pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-backup"), []string{"--format", "json"}, stServer)...)
	if code != 0 {
		t.Fatalf("gbc-backup: exit %d\n%s\n%s", code, out, errOut)
	}
	var rec struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
	pg.WaitArchived(t, pg.SwitchWAL(t), time.Minute)
	last := pg.QueryString(t, "SELECT last_archived_wal FROM pg_stat_archiver")

	metricsPath := filepath.Join(harness.TempDir(t), "gbc-status.prom")
	out, errOut, code = status([]string{"--format", "json", "--metrics-file", metricsPath}, stServer)
	if code != 0 {
		t.Fatalf("gbc-status: exit %d, want 0\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	d := decode(out)
	if len(d.Servers) != 1 {
		t.Fatalf("%d servers, want 1:\n%s", len(d.Servers), out)
	}
	srv := d.Servers[0]
	if srv.NewestWAL == nil || srv.NewestWAL.Name != last {
		t.Errorf("newest WAL %+v, want %s as pg_stat_archiver reports it\n%s", srv.NewestWAL, last, out)
	}
	if d.State != "ok" || srv.State != "ok" || srv.Backups != 1 || srv.LastBackup == nil || srv.LastBackup.ID != rec.ID ||
		srv.LastBackup.Type != "full" || srv.WALCheckedFrom == "" || len(srv.WALGaps) != 0 {
		t.Errorf("report, want ok with backup %s and no gap:\n%s", rec.ID, out)
	}
	checkStatusMetrics(t, metricsPath, 0)

	// The state follows --max-wal-age (nothing is archived while the
	// server is idle).
	time.Sleep(2 * time.Second)
	out, errOut, code = status([]string{"--max-wal-age", "1s", "--format", "json", "--metrics-file", metricsPath}, stServer)
	if code != 2 {
		t.Errorf("--max-wal-age 1s: exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if d := decode(out); d.State != "critical" || len(d.Servers[0].Reasons) != 1 || !strings.Contains(d.Servers[0].Reasons[0], "--max-wal-age 1s") {
		t.Errorf("--max-wal-age 1s: report\n%s", out)
	}
	checkStatusMetrics(t, metricsPath, 2)

	// The fleet view finds the server by listing the store's root.
	out, errOut, code = status(nil)
	if code != 0 || !strings.HasPrefix(out, "main ok: backup "+rec.ID+" full ") || strings.Count(out, "\n") != 1 || !strings.Contains(out, "WAL "+last+" ") {
		t.Errorf("fleet view: exit %d, want 0 and one line for main with WAL %s\nstdout: %s\nstderr: %s", code, last, out, errOut)
	}

	// Errors are UNKNOWN (3), usage errors included.
	if out, errOut, code = status(nil, "nosuch"); code != 3 || !strings.Contains(errOut, "nothing is stored under it") {
		t.Errorf("unknown server: exit %d, want 3\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if out, errOut, code = status([]string{"--format", "xml"}, stServer); code != 3 {
		t.Errorf("--format xml: exit %d, want 3\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// checkStatusMetrics parses the textfile as Prometheus does and checks
// what gbc-status wrote for the server.
func checkStatusMetrics(t *testing.T, path string, state float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s does not parse as Prometheus text: %v", path, err)
	}
	value := func(name string) float64 {
		t.Helper()
		fam, ok := fams[name]
		if !ok || len(fam.GetMetric()) != 1 {
			t.Fatalf("%s: want one sample, got %v", name, fam)
		}
		m := fam.GetMetric()[0]
		if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "server" || m.GetLabel()[0].GetValue() != stServer {
			t.Errorf("%s: labels %v, want server=%q", name, m.GetLabel(), stServer)
		}
		return m.GetGauge().GetValue()
	}
	if got := value("gbc_status_state"); got != state {
		t.Errorf("gbc_status_state %v, want %v", got, state)
	}
	now := float64(time.Now().Unix())
	for _, name := range []string{"gbc_last_backup_timestamp_seconds", "gbc_wal_newest_timestamp_seconds"} {
		if got := value(name); got < now-600 || got > now+60 {
			t.Errorf("%s = %v, want about now (%v)", name, got, now)
		}
	}
	if got := value("gbc_wal_gaps"); got != 0 {
		t.Errorf("gbc_wal_gaps = %v, want 0", got)
	}
	if got := value("gbc_last_backup_stored_bytes"); got <= 0 {
		t.Errorf("gbc_last_backup_stored_bytes = %v, want > 0", got)
	}
}
