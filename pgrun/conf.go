package pgrun

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
)

// Quote quotes a value for postgresql.conf, or a string for an SQL
// literal.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// AppendConf appends settings to a configuration file such as
// postgresql.conf (later lines win over earlier ones; postgresql.auto.conf
// wins over postgresql.conf), sorted by name, after a comment line. The
// file must exist: it keeps its owner and mode.
func AppendConf(path, comment string, settings map[string]string) error {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("\n")
	if comment != "" {
		b.WriteString("# " + comment + "\n")
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, Quote(settings[k]))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgrun: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgrun: write %s: %w", path, err)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it: a server start
// that fails with ErrPortInUse may try again on a new one (Start does).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgrun: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
