package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	ucli "github.com/urfave/cli/v2"
)

// Logger is a command's log: one *slog.Logger, which the engines get
// (Slog), with printf-style shorthands for the command layer, whose
// messages are whole sentences. What it prints is Handler's format, at the
// level -q and -v choose: -q shows only errors (which Run prints), the
// default shows notices and warnings, -v adds details.
type Logger struct {
	s *slog.Logger
}

// levelFor is the level -q and -v choose; -v wins over -q.
func levelFor(quiet, verbose bool) slog.Level {
	switch {
	case verbose:
		return slog.LevelDebug
	case quiet:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func newLogger(w io.Writer, name string, c *ucli.Context) *Logger {
	return &Logger{s: slog.New(NewHandler(w, name, levelFor(c.Bool("quiet"), c.Bool("verbose"))))}
}

// NewLogger returns a logger for tests and library callers: notices and
// warnings, and details when verbose.
func NewLogger(w io.Writer, name string, verbose bool) *Logger {
	return &Logger{s: slog.New(NewHandler(w, name, levelFor(false, verbose)))}
}

// Slog is the logger itself, for the engines. A nil *Logger gives one that
// discards everything.
func (l *Logger) Slog() *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.s
}

// logf formats the message only when it is printed.
func (l *Logger) logf(level slog.Level, format string, args ...any) {
	s := l.Slog()
	if ctx := context.Background(); s.Enabled(ctx, level) {
		s.Log(ctx, level, fmt.Sprintf(format, args...))
	}
}

// Infof is a notice shown unless -q.
func (l *Logger) Infof(format string, args ...any) { l.logf(slog.LevelInfo, format, args...) }

// Warnf is a warning shown unless -q.
func (l *Logger) Warnf(format string, args ...any) { l.logf(slog.LevelWarn, format, args...) }

// Debugf is a detail shown with -v.
func (l *Logger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }

// Verbose tells whether -v was given.
func (l *Logger) Verbose() bool { return l.Slog().Enabled(context.Background(), slog.LevelDebug) }

func verbosityFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print details of what is done", EnvVars: envVars("verbose")},
		&ucli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors", EnvVars: envVars("quiet")},
		&ucli.BoolFlag{Name: "version", Usage: "print the version"},
	}
}
