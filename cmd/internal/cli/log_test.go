package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// What the commands print is a contract (PostgreSQL's log, scripts and
// the end-to-end tests read it): the same lines, byte for byte, whether a
// message comes through the printf shorthands or the slog.Logger the
// engines get, at each verbosity.
func TestLogFormat(t *testing.T) {
	const (
		notice  = "gbc-test: backup started at WAL 0/2000028\n"
		warning = "gbc-test: warning: --jobs 64 is more than 4 per core: using 8\n"
		detail  = "gbc-test: stored 000000010000000000000002 (16777216 bytes)\n"
		failed  = "gbc-test: error: could not open file \"x\"\n"
	)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, notice + warning + notice + warning},
		{[]string{"-q"}, ""},
		{[]string{"-v"}, notice + warning + detail + notice + warning + detail},
		{[]string{"-q", "-v"}, notice + warning + detail + notice + warning + detail},
	} {
		var verbose bool
		cmds := []*Command{{Name: "gbc-test", Action: func(_ context.Context, e *Env) error {
			e.Log.Infof("backup started at WAL %s", "0/2000028")
			e.Log.Warnf("--jobs %d is more than 4 per core: using %d", 64, 8)
			e.Log.Debugf("stored %s (%d bytes)", "000000010000000000000002", 16<<20)
			s := e.Log.Slog()
			s.Info("backup started at WAL 0/2000028")
			s.Warn("--jobs 64 is more than 4 per core: using 8")
			s.Debug("stored 000000010000000000000002 (16777216 bytes)")
			verbose = e.Log.Verbose()
			return errors.New(`could not open file "x"`)
		}}}
		var code int
		got := captureStderr(t, func() { code = Run(cmds, append([]string{"gbc-test"}, tc.flags...)) })
		// Run prints the error itself, whatever the verbosity.
		if want := tc.want + failed; got != want || code != ExitFailure {
			t.Errorf("flags %q: exit %d, stderr\n%s\nwant exit %d, stderr\n%s", tc.flags, code, got, ExitFailure, want)
		}
		if wantV := strings.Contains(tc.want, detail); verbose != wantV {
			t.Errorf("flags %q: Verbose() = %v, want %v", tc.flags, verbose, wantV)
		}
	}
}

// Attributes follow the message as key=value, groups as prefixes, values
// quoted when they are not one word; an empty group adds nothing. An error
// record says so, like Run's own line.
func TestHandlerAttributes(t *testing.T) {
	var out strings.Builder
	l := slog.New(NewHandler(&out, "gbc-test", slog.LevelInfo))
	l.With("part", 3).WithGroup("s3").Warn("slow upload", "status", 503, "msg", "Slow Down", slog.Group("retry", "in", "1.5s"), slog.Group("empty"))
	l.WithGroup("unused").Info("no attributes")
	l.Error("gave up", "err", errors.New("timeout"), "key", "", "q", `a"b`, "eq", "a=b")
	l.With(slog.Attr{}).Info("empty attribute")
	want := `gbc-test: warning: slow upload part=3 s3.status=503 s3.msg="Slow Down" s3.retry.in=1.5s
gbc-test: no attributes
gbc-test: error: gave up err=timeout key="" q="a\"b" eq="a=b"
gbc-test: empty attribute
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}

// Lines written at once, through handlers derived from one another, stay
// whole (run it with -race too).
func TestHandlerLinesWhole(t *testing.T) {
	var out strings.Builder
	base := slog.New(NewHandler(&out, "gbc-test", slog.LevelDebug))
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for i := range writers {
		l := base.With("w", i)
		wg.Go(func() {
			for j := range lines {
				l.Debug(fmt.Sprintf("line %d of %d", j, lines))
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, line := range got {
		var j, n, w int
		if _, err := fmt.Sscanf(line, "gbc-test: line %d of %d w=%d", &j, &n, &w); err != nil || n != lines {
			t.Fatalf("line %q is not whole: %v", line, err)
		}
	}
}

// A nil *Logger, which some library callers pass, logs nothing and does
// not fail.
func TestNilLogger(t *testing.T) {
	var l *Logger
	l.Infof("x")
	l.Warnf("x")
	l.Debugf("x")
	l.Slog().Error("x")
	if l.Verbose() {
		t.Error("a nil logger is verbose")
	}
}

// A detail is not even formatted when it is not printed: the engines'
// debug lines cost nothing without -v.
func TestDetailNotFormatted(t *testing.T) {
	var out strings.Builder
	l := NewLogger(&out, "gbc-test", false)
	formatted := false
	l.Debugf("%v", stringer(func() string { formatted = true; return "x" }))
	if formatted || out.Len() != 0 {
		t.Errorf("a detail without -v was formatted (%v) or printed (%q)", formatted, out.String())
	}
	l.Infof("%v", stringer(func() string { formatted = true; return "x" }))
	if !formatted || out.String() != "gbc-test: x\n" {
		t.Errorf("a notice was not printed: %q", out.String())
	}
}

type stringer func() string

func (s stringer) String() string { return s() }
