package cli

import (
	"fmt"
	"io"
	"sync"

	ucli "github.com/urfave/cli/v2"
)

// Logger writes progress and notices to stderr at the chosen verbosity:
// -q shows only errors (which Run prints), default shows warnings and
// notices, -v adds details.
type Logger struct {
	mu    sync.Mutex
	w     io.Writer
	name  string
	level int // 0 quiet, 1 normal, 2 verbose
}

func newLogger(w io.Writer, name string, c *ucli.Context) *Logger {
	level := 1
	if c.Bool("quiet") {
		level = 0
	}
	if c.Bool("verbose") {
		level = 2
	}
	return &Logger{w: w, name: name, level: level}
}

// NewLogger returns a logger for tests and library callers.
func NewLogger(w io.Writer, name string, verbose bool) *Logger {
	l := &Logger{w: w, name: name, level: 1}
	if verbose {
		l.level = 2
	}
	return l
}

func (l *Logger) printf(min int, kind, format string, args ...any) {
	if l == nil || l.level < min {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s: %s%s\n", l.name, kind, fmt.Sprintf(format, args...))
}

// Infof is a notice shown unless -q.
func (l *Logger) Infof(format string, args ...any) { l.printf(1, "", format, args...) }

// Warnf is a warning shown unless -q.
func (l *Logger) Warnf(format string, args ...any) { l.printf(1, "warning: ", format, args...) }

// Debugf is a detail shown with -v.
func (l *Logger) Debugf(format string, args ...any) { l.printf(2, "", format, args...) }

// Verbose tells whether -v was given.
func (l *Logger) Verbose() bool { return l != nil && l.level >= 2 }

func verbosityFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print details of what is done", EnvVars: envVars("verbose")},
		&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors", EnvVars: envVars("quiet")},
		&ucli.BoolFlag{Name: "version", Usage: "print the version"},
	}
}
