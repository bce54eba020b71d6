package cli

import (
	"context"
	"strings"
	"testing"
)

// A compression level the codec refuses is a usage error, not a failure
// of the first write.
func TestCompressionLevel(t *testing.T) {
	cmds := []*Command{{Name: "gbc-test", Flags: CompressionFlags(), Action: func(_ context.Context, e *Env) error {
		_, _, err := e.Codec()
		return err
	}}}
	var code int
	stderr := captureStderr(t, func() { code = Run(cmds, []string{"gbc-test", "--compression", "gzip", "--compression-level", "42"}) })
	if code != ExitUsage || !strings.Contains(stderr, "--compression-level 42") {
		t.Errorf("gzip level 42: exit %d, stderr %q; want %d naming the option", code, stderr, ExitUsage)
	}
	if code := Run(cmds, []string{"gbc-test", "--compression", "gzip", "--compression-level", "9"}); code != ExitOK {
		t.Errorf("gzip level 9: exit %d", code)
	}
}
