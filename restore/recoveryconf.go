package restore

import (
	"fmt"
	"strings"
	"time"
)

// RecoveryConfig is what gbc-restore appends to postgresql.auto.conf so that
// the restored cluster fetches its WAL from the store and stops at the
// target. It never holds credentials: PostgreSQL's environment provides them
// to gbc-wal-restore the same way the SDKs find them for every gbc command.
type RecoveryConfig struct {
	// WALRestore is the command prefix that fetches one WAL file, written
	// as given, so that an operator's override may carry its own options;
	// ProgramCommand builds one from a program path.
	WALRestore string
	// StoreArgs are the non-secret store options gbc-restore itself was
	// given (e.g. --endpoint-url URL), passed on so that recovery reads the
	// same store.
	StoreArgs []string
	StoreURL  string
	Server    string
	Target    Target
	// DisableArchiving adds archive_mode = off, so that a copy restored for
	// a test cannot push a new timeline into the original's archive.
	DisableArchiving bool
	// Standby starts the restored server as a standby (standby.signal, as
	// pgBackRest's --type=standby does), to build a replica: it keeps the
	// original's primary_conninfo and primary_slot_name, which such a
	// replica may want. Otherwise both are reset, and the restored server
	// recovers and promotes on its own even when the backup was taken
	// from a standby.
	Standby bool
	// BackupID and Now only annotate the written block.
	BackupID string
	Now      time.Time
}

// RestoreCommand renders restore_command's value: each argument quoted for
// the shell PostgreSQL runs it with, and every literal % doubled because
// PostgreSQL expands %f, %p, %r and %% in it.
func (c RecoveryConfig) RestoreCommand() string {
	args := append(append([]string(nil), c.StoreArgs...), c.StoreURL, c.Server)
	return c.WALRestore + " " + quoteWords(args) + " %f %p"
}

// ProgramCommand renders a program and its first arguments as the start of
// a restore_command, quoted and %-escaped like the arguments RestoreCommand
// adds after it.
func ProgramCommand(program string, args ...string) string {
	return quoteWords(append([]string{program}, args...))
}

// quoteWords quotes each word for the shell and doubles every literal %,
// which PostgreSQL would otherwise expand.
func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strings.ReplaceAll(shellQuote(w), "%", "%%")
	}
	return strings.Join(q, " ")
}

// targetKinds returns PostgreSQL's recovery target settings, of which at
// most one may be set.
func targetKinds() []string {
	return []string{"recovery_target", "recovery_target_lsn", "recovery_target_name",
		"recovery_target_time", "recovery_target_xid"}
}

// Settings are the recovery settings in the order they are written. Every
// recovery target setting is written, the unused ones empty: the restored
// postgresql.auto.conf is the original server's, and a server that was
// itself once recovered to a target keeps that line there (PostgreSQL
// never removes it). Left alone, it would silently stop this recovery at
// the old target, or, next to another kind, stop the server from starting
// ("multiple recovery targets specified").
func (c RecoveryConfig) Settings() [][2]string {
	s := [][2]string{{"restore_command", c.RestoreCommand()}}
	if !c.Standby {
		// A backup taken from a standby carries its postgresql.auto.conf,
		// where pg_basebackup -R (or an operator) put the connection to
		// its primary. Without standby.signal PostgreSQL does not use
		// it, but it stays in the file: should the restored server ever
		// be made a standby (of a new primary, say), it would silently
		// stream from the old one, through the old one's slot. Reset,
		// as the targets are.
		s = append(s, [2]string{"primary_conninfo", ""}, [2]string{"primary_slot_name", ""})
	}
	t := c.Target
	var chosen [2]string // the target setting asked for, if any
	switch t.Kind() {
	case "time":
		chosen = [2]string{"recovery_target_time", FormatTime(t.Time)}
	case "lsn":
		chosen = [2]string{"recovery_target_lsn", t.LSN.String()}
	case "xid":
		chosen = [2]string{"recovery_target_xid", t.XID}
	case "name":
		chosen = [2]string{"recovery_target_name", t.Name}
	case "immediate":
		chosen = [2]string{"recovery_target", "immediate"}
	}
	// The empty ones first: PostgreSQL's check for several targets runs
	// on every assignment, an empty one included, against the kind set
	// last, so the chosen kind must come after every reset.
	for _, k := range targetKinds() {
		if k != chosen[0] {
			s = append(s, [2]string{k, ""})
		}
	}
	if chosen[0] != "" {
		s = append(s, chosen)
	}
	if t.Inclusive != nil {
		s = append(s, [2]string{"recovery_target_inclusive", fmt.Sprint(*t.Inclusive)})
	}
	if t.Timeline != "" {
		s = append(s, [2]string{"recovery_target_timeline", t.Timeline})
	}
	if t.Action != "" {
		s = append(s, [2]string{"recovery_target_action", t.Action})
	}
	if c.DisableArchiving {
		s = append(s, [2]string{"archive_mode", "off"})
	}
	return s
}

// SignalFile is the file that makes PostgreSQL start in the recovery mode
// c asks for: standby.signal for a standby, recovery.signal otherwise.
func (c RecoveryConfig) SignalFile() string {
	if c.Standby {
		return standbySignal
	}
	return recoverySignal
}

// Render is the block appended to postgresql.auto.conf. Later lines win in
// PostgreSQL's configuration files, so appending overrides any recovery
// setting the original server had without editing its lines.
func (c RecoveryConfig) Render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n# Recovery settings added by gbc-restore at %s from backup %s.\n",
		c.Now.UTC().Format(time.RFC3339), oneLineComment(c.BackupID))
	b.WriteString("# Store credentials come from the server's environment, never from this file.\n")
	for _, kv := range c.Settings() {
		fmt.Fprintf(&b, "%s = %s\n", kv[0], confQuote(kv[1]))
	}
	return b.String()
}

// confQuote quotes a value for postgresql.conf: single quotes, with an
// embedded quote doubled and backslashes escaped, since the file's parser
// treats a backslash as an escape inside quotes.
func confQuote(v string) string {
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// shellQuote returns s unchanged when the shell would read it as one word
// anyway, and single-quoted otherwise, so the common command stays readable.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func oneLineComment(s string) string { return strings.Join(strings.Fields(s), " ") }
