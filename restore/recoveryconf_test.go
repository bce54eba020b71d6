package restore

import (
	"strings"
	"testing"
	"time"
)

func TestRestoreCommandQuoting(t *testing.T) {
	c := RecoveryConfig{
		WALRestore: "/opt/gbc/bin/gbc-wal-restore",
		StoreArgs:  []string{"--endpoint-url", "http://127.0.0.1:9000"},
		StoreURL:   "s3://bucket/pre fix%20x",
		Server:     "it's",
	}
	got := c.RestoreCommand()
	want := `/opt/gbc/bin/gbc-wal-restore --endpoint-url http://127.0.0.1:9000 's3://bucket/pre fix%%20x' 'it'\''s' %f %p`
	if got != want {
		t.Fatalf("RestoreCommand:\n got %s\nwant %s", got, want)
	}
}

func TestRenderRecoveryConfig(t *testing.T) {
	no := false
	tm := time.Date(2026, 11, 24, 21, 48, 42, 500000000, time.FixedZone("", 3600))
	c := RecoveryConfig{
		WALRestore:       "/usr/bin/gbc-wal-restore",
		StoreURL:         "file:///var/lib/gbc",
		Server:           "main",
		Target:           Target{Time: tm, Inclusive: &no, Timeline: "current", Action: "promote"},
		DisableArchiving: true,
		BackupID:         "20261124T200000Z",
		Now:              time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC),
	}
	got := c.Render()
	for _, line := range []string{
		"# Recovery settings added by gbc-restore at 2026-11-25T08:00:00Z from backup 20261124T200000Z.",
		"restore_command = '/usr/bin/gbc-wal-restore file:///var/lib/gbc main %f %p'",
		"recovery_target_time = '2026-11-24 20:48:42.500000+00'",
		"recovery_target_inclusive = 'false'",
		"recovery_target_timeline = 'current'",
		"recovery_target_action = 'promote'",
		"archive_mode = 'off'",
	} {
		if !strings.Contains(got, "\n"+line+"\n") {
			t.Errorf("missing line %q in:\n%s", line, got)
		}
	}
	if !strings.HasPrefix(got, "\n") {
		t.Error("the block must start on a fresh line whatever the file ended with")
	}

	for tg, line := range map[string]Target{
		"recovery_target_lsn = '16/B374D848'": {LSN: 0x16B374D848},
		"recovery_target_xid = '4242'":        {XID: "4242"},
		"recovery_target_name = 'it''s'":      {Name: "it's"},
		"recovery_target = 'immediate'":       {Immediate: true},
	} {
		c := RecoveryConfig{WALRestore: "x", StoreURL: "file:///s", Server: "m", Target: line}
		if !strings.Contains(c.Render(), "\n"+tg+"\n") {
			t.Errorf("missing %q in:\n%s", tg, c.Render())
		}
	}
	plain := RecoveryConfig{WALRestore: "x", StoreURL: "file:///s", Server: "m"}.Render()
	if strings.Contains(plain, "recovery_target") || strings.Contains(plain, "archive_mode") {
		t.Errorf("no target asked, yet:\n%s", plain)
	}
}

func TestConfQuoteBackslash(t *testing.T) {
	if got := confQuote(`a\b'c`); got != `'a\\b''c'` {
		t.Fatalf("confQuote = %s", got)
	}
}
