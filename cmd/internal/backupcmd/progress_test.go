package backupcmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/backup"
)

// The bar is drawn on a terminal only: not into a pipe, a file or
// /dev/null (a character device, which the check before this one took for
// a terminal), and not with -q.
func TestProgressOnlyOnATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for what, f := range map[string]*os.File{"a pipe": w, "a file": file, os.DevNull: null} {
		if progressEvents(f, false) != nil {
			t.Errorf("a progress bar on %s", what)
		}
	}

	tty := openTerminal(t)
	if progressEvents(tty, false) == nil {
		t.Error("no progress bar on a terminal")
	}
	if progressEvents(tty, true) != nil {
		t.Error("a progress bar on a terminal with -q")
	}
}

// The bar says how much is read of about how much, is rewritten in place,
// never claims the end while the copy goes on past its estimate, and ends
// its line when the copy ends, so that the next log line starts on a line
// of its own. Another bar can follow.
func TestProgressView(t *testing.T) {
	var out strings.Builder
	v := &progressView{w: &out}
	v.event(backup.Progress{Done: 10 << 20, Total: 100 << 20})
	v.event(backup.Progress{Done: 50 << 20, Total: 100 << 20})
	got := out.String()
	if !strings.Contains(got, "reading") || !strings.Contains(got, "50%") || !strings.Contains(got, "50/100 MiB") || !strings.Contains(got, "\r") {
		t.Errorf("half-way bar: %q", got)
	}
	if strings.Contains(got, "\n") {
		t.Errorf("the bar broke its line before the end: %q", got)
	}

	out.Reset()
	v.event(backup.Progress{Done: 120 << 20, Total: 100 << 20}) // past the estimate
	if got := out.String(); strings.Contains(got, "100%") || !strings.Contains(got, "99%") {
		t.Errorf("past the estimate: %q, want 99%%, not 100%%", got)
	}
	out.Reset()
	v.event(backup.Progress{Done: 130 << 20, Total: 100 << 20, End: true})
	if got := out.String(); !strings.HasSuffix(got, "\n") || !strings.Contains(got, "130") {
		t.Errorf("at the end: %q, want the last count and a newline", got)
	}
	out.Reset()
	v.event(struct{ backup.Event }{}) // not progress: ignored
	if out.Len() != 0 {
		t.Errorf("an event that is not progress drew %q", out.String())
	}

	// No estimate: a count and a rate, no percentage.
	v.event(backup.Progress{Done: 3 << 20})
	v.event(backup.Progress{Done: 7 << 20, End: true})
	if got := out.String(); strings.Contains(got, "%") || !strings.Contains(got, "7.0 MiB") || !strings.HasSuffix(got, "\n") {
		t.Errorf("without an estimate: %q", got)
	}
}
