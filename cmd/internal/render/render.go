package render

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

// FormatFlag is --format, for the commands that print text or JSON.
func FormatFlag() ucli.Flag {
	return cli.String("format", "output format: text or json", "text")
}

// CheckFormat refuses an unknown --format.
func CheckFormat(f string) error {
	if f != "text" && f != "json" {
		return cli.Usagef("--format %q: use text or json", f)
	}
	return nil
}

// Table returns a writer that aligns tab-separated columns two spaces
// apart; Flush prints them.
func Table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// JSON prints v as one indented document, for scripts and people alike.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Time prints a record time in UTC (RFC 3339), or "-". Like every column
// of a table, it is one word, so that awk and cut can read the table.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Tags prints k=v pairs sorted by key, or "-".
func Tags(tags map[string]string) string {
	if len(tags) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(tags))
	for k, v := range tags {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// Bytes prints a size in binary units (KiB, MiB, ...) as one word, or "-"
// for 0.
func Bytes(n int64) string {
	const unit = 1024
	switch {
	case n == 0:
		return "-"
	case n < unit:
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Dash prints s, or "-" for an absent value, so that a column never
// goes missing.
func Dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
