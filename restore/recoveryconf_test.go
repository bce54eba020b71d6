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
	// No target asked: every target setting the original server may have
	// left in postgresql.auto.conf is reset, and nothing else is set.
	plain := RecoveryConfig{WALRestore: "x", StoreURL: "file:///s", Server: "m"}.Render()
	for _, k := range targetKinds() {
		if !strings.Contains(plain, "\n"+k+" = ''\n") {
			t.Errorf("%s is not reset in:\n%s", k, plain)
		}
	}
	if strings.Contains(plain, "recovery_target_action") || strings.Contains(plain, "archive_mode") {
		t.Errorf("no target asked, yet:\n%s", plain)
	}
	// A chosen target resets the other kinds.
	lsn := RecoveryConfig{WALRestore: "x", StoreURL: "file:///s", Server: "m", Target: Target{LSN: 0x16B374D848}}.Render()
	if !strings.Contains(lsn, "\nrecovery_target_time = ''\n") || strings.Count(lsn, "recovery_target_lsn") != 1 {
		t.Errorf("an LSN target does not reset the time target, or is written twice:\n%s", lsn)
	}
	// PostgreSQL checks for several targets on every assignment, empty
	// ones included: the chosen one must come after all the resets.
	if strings.LastIndex(lsn, " = ''") > strings.Index(lsn, "recovery_target_lsn = '16/") {
		t.Errorf("a reset follows the chosen target:\n%s", lsn)
	}
}

func TestConfQuoteBackslash(t *testing.T) {
	if got := confQuote(`a\b'c`); got != `'a\\b''c'` {
		t.Fatalf("confQuote = %s", got)
	}
}
