package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cmd/internal/cli"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "-", 512: "512B", 1536: "1.5KiB", 1 << 30: "1.0GiB", 1591812096: "1.5GiB", 77812345: "74.2MiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWords(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 21, 48, 42, 0, time.FixedZone("", 3600))
	for _, c := range [][2]string{
		{Time(t0), "2026-11-24T20:48:42Z"},
		{Time(time.Time{}), "-"},
		{Tags(map[string]string{"env": "prod", "app": "billing"}), "app=billing,env=prod"},
		{Tags(nil), "-"},
		{Dash(""), "-"},
		{Dash("nightly"), "nightly"},
	} {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
}

func TestCheckFormat(t *testing.T) {
	for _, f := range []string{"text", "json"} {
		if err := CheckFormat(f); err != nil {
			t.Errorf("--format %s: %v", f, err)
		}
	}
	if err := CheckFormat("yaml"); cli.CodeOf(err) != cli.ExitUsage || !strings.Contains(err.Error(), "use text or json") {
		t.Errorf("--format yaml: %v (exit %d)", err, cli.CodeOf(err))
	}
}

func TestTableAndJSON(t *testing.T) {
	var b bytes.Buffer
	tw := Table(&b)
	tw.Write([]byte("A\tBB\tC\nlonger\tx\ty\n"))
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "A       BB  C\nlonger  x   y\n"; b.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if err := JSON(&b, map[string][]int{"a": {1}}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"a\": [\n    1\n  ]\n}\n"; b.String() != want {
		t.Errorf("json:\n%q\nwant\n%q", b.String(), want)
	}
}
