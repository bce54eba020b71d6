package backupcmd

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

// A bad option value is refused before anything is done, with exit 2 and
// one line naming the option and what it accepts; it is never left to
// fail later as if the server or the store were at fault (exit 1).
func TestBadOptionValues(t *testing.T) {
	store := "file://" + t.TempDir()
	cmds := []*cli.Command{Command()}
	for _, tc := range []struct {
		flags []string
		env   string // GBC_WAL_TIMEOUT
		want  string
	}{
		{flags: []string{"--max-archive-size", "1K"}, want: `--max-archive-size: "1K" is too small: give a size of at least 1M`},
		{flags: []string{"--max-archive-size", "1023K"}, want: "--max-archive-size"},
		{flags: []string{"--max-archive-size", "lots"}, want: `--max-archive-size: "lots" is not a size: give a size of at least 1M`},
		{flags: []string{"--wal-timeout", "-5s"}, want: "--wal-timeout -5s: give a duration"},
		{flags: []string{"--wal-timeout", "5"}, want: `--wal-timeout "5": give a duration with its unit`},
		{env: "5", want: `GBC_WAL_TIMEOUT="5" (--wal-timeout): give a duration with its unit`},
		{flags: []string{"--snapshot-timeout", "-1h"}, want: "--snapshot-timeout -1h0m0s: give a duration"},
		{flags: []string{"--retry-timeout", "-1s"}, want: "--retry-timeout -1s: give a duration"},
		{flags: []string{"--io-timeout", "0"}, want: "--io-timeout 0s: give a positive duration"},
		{flags: []string{"--name", "a b"}, want: `--name "a b": give one word of letters, digits`},
		{flags: []string{"--name", "../../evil"}, want: `--name "../../evil": give one word`},
		{flags: []string{"--name", "-x"}, want: `--name "-x": give one word`},
		{flags: []string{"--name", strings.Repeat("n", 65)}, want: "give at most 64"},
		{flags: []string{"--name", "latest"}, want: "keyword"},
	} {
		t.Setenv("GBC_WAL_TIMEOUT", tc.env)
		argv := append(append([]string{"gbc-backup", "--dbname", "host=/nonexistent"}, tc.flags...), store, "main")
		var code int
		stderr := captureStderr(t, func() { code = cli.Run(cmds, argv) })
		if code != cli.ExitUsage || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v GBC_WAL_TIMEOUT=%q: exit %d, stderr %q; want exit %d and one line with %q", tc.flags, tc.env, code, stderr, cli.ExitUsage, tc.want)
		}
	}
}

// captureStderr runs f with os.Stderr sent to a pipe, and returns what f
// wrote there (commands print their errors to os.Stderr).
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	os.Stderr = saved
	w.Close()
	return <-done
}
