package cli

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Handler is the slog.Handler of every gbc command. It writes one line per
// record, the way PostgreSQL's own tools do, since PostgreSQL's server log,
// cron mails and scripts read these lines:
//
//	gbc-backup: backup started at WAL 0/2000028 (000000010000000000000002)
//	gbc-backup: warning: --jobs 64 is more than 4 per core: using 8
//
// Debug and Info records look alike (the level only decides whether a
// record prints); a warning says "warning: ", an error "error: ".
// Attributes follow the message as key=value, quoted when they hold
// spaces, with groups as prefixes (s3.status=503). There is no time: the
// server log and cron add their own.
type Handler struct {
	out   *output // shared by every handler derived with WithAttrs or WithGroup
	level slog.Leveler
	attrs string // the attributes of WithAttrs, formatted
	group string // the key prefix of WithGroup: "g." or "g.h."
}

// output is the writer that one command's handlers share, and the lock
// that keeps their lines whole.
type output struct {
	mu   sync.Mutex
	w    io.Writer
	name string
}

// NewHandler returns a handler that writes records of level or above to
// w, each line starting with the program's name.
func NewHandler(w io.Writer, name string, level slog.Leveler) *Handler {
	return &Handler{out: &output{w: w, name: name}, level: level}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, len(h.out.name)+len(r.Message)+len(h.attrs)+16)
	b = append(b, h.out.name...)
	b = append(b, ": "...)
	switch {
	case r.Level >= slog.LevelError:
		b = append(b, "error: "...)
	case r.Level >= slog.LevelWarn:
		b = append(b, "warning: "...)
	}
	b = append(b, r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '\n')
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	_, err := h.out.w.Write(b)
	return err
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	b := []byte(h.attrs)
	for _, a := range attrs {
		b = appendAttr(b, h.group, a)
	}
	h2 := *h
	h2.attrs = string(b)
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group += name + "."
	return &h2
}

// appendAttr appends " key=value", or a group's attributes with its name
// as a prefix; an empty attribute or group adds nothing.
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			b = appendAttr(b, prefix, g)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, prefix...)
	b = append(b, a.Key...)
	b = append(b, '=')
	return appendValue(b, a.Value.String())
}

// appendValue appends s, quoted when it would not read as one word.
func appendValue(b []byte, s string) []byte {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == '=' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}
