package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Report is one run: what was measured, where, and the results. It is
// written as JSON and as Markdown.
type Report struct {
	Date      string            `json:"date"` // UTC, RFC 3339
	Scale     string            `json:"scale"`
	Params    Params            `json:"params"`
	Host      Host              `json:"host"`
	Versions  map[string]string `json:"versions"`
	Scenarios []*Scenario       `json:"scenarios"`
	// Comparisons are gbc's figures over each peer's, in the same run.
	Comparisons []Comparison `json:"comparisons"`
	Notes       []string     `json:"notes,omitempty"`
}

// Host describes the machine during the run.
type Host struct {
	CPUs        int    `json:"cpus"`
	LoadBefore  string `json:"load_before"` // /proc/loadavg, 1 5 15 min
	LoadAfter   string `json:"load_after"`
	Kernel      string `json:"kernel"`
	MemoryBytes int64  `json:"memory_bytes"`
}

// Scenario is one table: rows per tool, columns per figure.
type Scenario struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Columns     []Column `json:"columns"`
	Rows        []*Row   `json:"rows"`
	// Error is set when the scenario could not run to its end (its
	// cluster did not start, say); rows may be missing then.
	Error string `json:"error,omitempty"`
}

// Column is one figure of a scenario.
type Column struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	Unit  string `json:"unit"`
	// Better is +1 when higher is better, -1 when lower is better, 0 when
	// the figure is informative only (not compared).
	Better int `json:"better"`
}

// Row is one tool's figures in a scenario. Error is set when the tool
// failed there; Values then holds what was measured before.
type Row struct {
	Tool     string             `json:"tool"`
	Settings string             `json:"settings"`
	Values   map[string]float64 `json:"values"`
	Error    string             `json:"error,omitempty"`
}

// Comparison is one gbc figure against one peer's.
type Comparison struct {
	Scenario string  `json:"scenario"`
	Figure   string  `json:"figure"`
	Peer     string  `json:"peer"`
	GBC      float64 `json:"gbc"`
	Other    float64 `json:"peer_value"`
	// Advantage is how many times better gbc is: peer/gbc for a figure
	// where lower is better, gbc/peer where higher is better. Above 1 gbc
	// is ahead.
	Advantage float64 `json:"advantage"`
}

func (s *Scenario) row(t tool) *Row {
	r := &Row{Tool: t.name(), Settings: t.settings(), Values: map[string]float64{}}
	s.Rows = append(s.Rows, r)
	return r
}

// compare fills r.Comparisons from the scenarios.
func (r *Report) compare() {
	r.Comparisons = nil
	for _, s := range r.Scenarios {
		var g *Row
		for _, row := range s.Rows {
			if row.Tool == "gbc" && row.Error == "" {
				g = row
			}
		}
		if g == nil {
			continue
		}
		for _, col := range s.Columns {
			if col.Better == 0 {
				continue
			}
			gv, ok := g.Values[col.Key]
			if !ok {
				continue
			}
			for _, p := range s.Rows {
				pv, ok := p.Values[col.Key]
				if p == g || p.Error != "" || !ok {
					continue
				}
				r.Comparisons = append(r.Comparisons, Comparison{
					Scenario: s.ID, Figure: col.Title, Peer: p.Tool, GBC: gv, Other: pv,
					Advantage: advantage(gv, pv, col.Better),
				})
			}
		}
	}
}

func advantage(g, p float64, better int) float64 {
	switch {
	case better > 0 && p > 0:
		return g / p
	case better < 0 && g > 0:
		return p / g
	case g == p:
		return 1
	}
	return math.Inf(1)
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gbc bench, scale %s, %s\n\n", r.Scale, r.Date)
	fmt.Fprintf(&b, "Host: %d CPUs, %.1f GiB, kernel %s; load average before %s, after %s (1, 5, 15 min). ",
		r.Host.CPUs, float64(r.Host.MemoryBytes)/(1<<30), r.Host.Kernel, r.Host.LoadBefore, r.Host.LoadAfter)
	b.WriteString("Every tool ran against the same MinIO server (TLS, on this host), one after the other.\n\n")
	var vs []string
	for _, k := range sortedKeys(r.Versions) {
		vs = append(vs, k+" "+r.Versions[k])
	}
	fmt.Fprintf(&b, "Versions: %s.\n\n", strings.Join(vs, "; "))
	fmt.Fprintf(&b, "Parameters: %s.\n\n", r.Params.describe())
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", s.Title, s.Description)
		b.WriteString("| tool |")
		for _, c := range s.Columns {
			b.WriteString(" " + c.Title)
			if c.Unit != "" {
				b.WriteString(" (" + c.Unit + ")")
			}
			b.WriteString(" |")
		}
		b.WriteString(" settings |\n|---|")
		for range s.Columns {
			b.WriteString("---:|")
		}
		b.WriteString("---|\n")
		for _, row := range s.Rows {
			fmt.Fprintf(&b, "| %s |", row.Tool)
			for _, c := range s.Columns {
				v, ok := row.Values[c.Key]
				switch {
				case ok:
					b.WriteString(" " + formatValue(v) + " |")
				case row.Error != "":
					b.WriteString(" failed |")
				default:
					b.WriteString(" – |")
				}
			}
			fmt.Fprintf(&b, " %s |\n", row.Settings)
		}
		for _, row := range s.Rows {
			if row.Error != "" {
				fmt.Fprintf(&b, "\n%s failed: `%s`\n", row.Tool, oneLine(row.Error, 400))
			}
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "\nThe scenario stopped: `%s`\n", oneLine(s.Error, 400))
		}
		b.WriteString("\n")
	}
	if len(r.Comparisons) > 0 {
		b.WriteString("## gbc against each peer, same run\n\n")
		b.WriteString("Advantage: how many times better gbc's figure is (peer ÷ gbc for times, latencies, lag and memory; gbc ÷ peer for rates). Above 1: gbc is ahead.\n\n")
		b.WriteString("| scenario | figure | peer | gbc | peer's | advantage |\n|---|---|---|---:|---:|---:|\n")
		for _, c := range r.Comparisons {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s× |\n", c.Scenario, c.Figure, c.Peer,
				formatValue(c.GBC), formatValue(c.Other), formatRatio(c.Advantage))
		}
		b.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e9:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func formatRatio(v float64) string {
	if math.IsInf(v, 0) {
		return "∞"
	}
	if v >= 10 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.ReplaceAll(s, "`", "'")
}

// write stores the report as NAME.md and NAME.json in dir and returns the
// Markdown path.
func (r *Report) write(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	js, err := json.MarshalIndent(jsonSafe(r), "", "  ")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	md := filepath.Join(dir, name+".md")
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(js, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(md, []byte(r.Markdown()), 0o644); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return md, nil
}

// jsonSafe returns a copy without infinities, which JSON cannot hold: an
// infinite advantage (the peer took no measurable time) becomes 0.
func jsonSafe(r *Report) *Report {
	c := *r
	c.Comparisons = append([]Comparison(nil), r.Comparisons...)
	for i := range c.Comparisons {
		if math.IsInf(c.Comparisons[i].Advantage, 0) || math.IsNaN(c.Comparisons[i].Advantage) {
			c.Comparisons[i].Advantage = 0
		}
	}
	return &c
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
