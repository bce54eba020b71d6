package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

// A backup taken from a standby holds its standby.signal and, in
// postgresql.auto.conf, the connection to its primary (pg_basebackup -R).
const standbyAutoConf = "# Do not edit\nprimary_conninfo = 'host=old-primary port=5432 user=replicator'\nprimary_slot_name = 'standby1'\n"

func TestRenderStandbyPrimaryConnection(t *testing.T) {
	c := RecoveryConfig{WALRestore: "x", StoreURL: "file:///s", Server: "m"}
	plain := c.Render()
	for _, line := range []string{"primary_conninfo = ''", "primary_slot_name = ''"} {
		if !strings.Contains(plain, "\n"+line+"\n") {
			t.Errorf("missing %q in:\n%s", line, plain)
		}
	}
	if c.SignalFile() != recoverySignal {
		t.Errorf("SignalFile = %s", c.SignalFile())
	}

	c.Standby = true
	standby := c.Render()
	if strings.Contains(standby, "primary_conninfo") || strings.Contains(standby, "primary_slot_name") {
		t.Errorf("--standby must keep the original's primary_conninfo and primary_slot_name:\n%s", standby)
	}
	// A standby still fetches from the store, and a target left by an
	// earlier recovery would stop its replay just the same.
	if !strings.Contains(standby, "\nrestore_command = 'x file:///s m %f %p'\n") || !strings.Contains(standby, "\nrecovery_target_name = ''\n") {
		t.Errorf("standby block:\n%s", standby)
	}
	if c.SignalFile() != standbySignal {
		t.Errorf("SignalFile = %s", c.SignalFile())
	}
}

func TestTargetCheckStandby(t *testing.T) {
	for _, tg := range []Target{{}, {Timeline: "latest"}, {Timeline: "3"}} {
		if err := tg.CheckStandby(); err != nil {
			t.Errorf("CheckStandby(%+v): %v", tg, err)
		}
	}
	for want, tg := range map[string]Target{
		"--target-time":      {Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		"--target-lsn":       {LSN: 5},
		"--target-xid":       {XID: "42"},
		"--target-name":      {Name: "p"},
		"--target-immediate": {Immediate: true},
		"--target-action":    {Action: "promote"},
	} {
		if err := tg.CheckStandby(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--standby") {
			t.Errorf("CheckStandby(%+v) = %v, want a refusal naming %s", tg, err, want)
		}
	}
}

// withStandbyPart changes the fixture's backup into one taken from a
// standby: its second part, which held postgresql.auto.conf, is stored
// again without it, and a last part holds the standby's standby.signal and
// postgresql.auto.conf.
func (f *fixture) withStandbyPart(t *testing.T) {
	t.Helper()
	b := f.backup
	part := func(i int, entries []entry) catalog.Part {
		stored := zst(t, makeTar(t, entries))
		key := f.layout.PartKey(b.ID, "", i, "zst")
		f.put(t, key, stored)
		return catalog.Part{Key: key, StoredSize: int64(len(stored)), SHA256: sha(stored)}
	}
	b.Parts[1] = part(1, []entry{{name: "global/", dir: true}, {name: "global/pg_control", body: "control"},
		{name: "backup_label", body: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"},
		{name: "tablespace_map", body: "16384 " + b.Tablespaces[0].Location + "\n"},
		{name: "pg_wal", dir: true}, {name: "pg_tblspc", dir: true}})
	b.Parts = append(b.Parts, part(len(b.Parts), []entry{
		{name: standbySignal, body: "from the backup", mode: 0o644},
		{name: autoConf, body: standbyAutoConf},
	}))
}

// TestRunFromStandbyBackup restores a standby's backup three ways: by
// default it is no standby (its standby.signal gone, its primary
// connection reset); with Standby it is one, with a standby.signal of its
// own and the primary connection kept; with no recovery configuration,
// the standby.signal still goes.
func TestRunFromStandbyBackup(t *testing.T) {
	exists := func(p string) bool {
		_, err := os.Stat(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, c := range []struct {
		name              string
		recovery          func(*RecoveryConfig) *RecoveryConfig
		standby, recovers bool
		reset             bool // primary_conninfo and primary_slot_name
	}{
		{"default", func(c *RecoveryConfig) *RecoveryConfig { return c }, false, true, true},
		{"standby", func(c *RecoveryConfig) *RecoveryConfig { c.Standby = true; return c }, true, false, false},
		{"no recovery config", func(*RecoveryConfig) *RecoveryConfig { return nil }, false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			f := newFixture(t, filepath.Join(tmp, "ts"))
			f.withStandbyPart(t)
			dest := filepath.Join(tmp, "data")
			o := f.options(dest)
			o.Recovery = c.recovery(o.Recovery)
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if got := exists(filepath.Join(dest, standbySignal)); got != c.standby {
				t.Errorf("standby.signal present: %v, want %v", got, c.standby)
			}
			if got := exists(filepath.Join(dest, recoverySignal)); got != c.recovers {
				t.Errorf("recovery.signal present: %v, want %v", got, c.recovers)
			}
			if c.standby {
				// Written by the restore, not the backup's file.
				fi, err := os.Stat(filepath.Join(dest, standbySignal))
				if err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
					t.Errorf("standby.signal: %v, %v; want an empty 0600 file of the restore's own", fi, err)
				}
			}
			conf, err := os.ReadFile(filepath.Join(dest, autoConf))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(conf), standbyAutoConf) {
				t.Errorf("the original settings are not kept as they were:\n%s", conf)
			}
			reset := strings.Contains(string(conf), "\nprimary_conninfo = ''\nprimary_slot_name = ''\n")
			if reset != c.reset {
				t.Errorf("primary_conninfo and primary_slot_name reset: %v, want %v:\n%s", reset, c.reset, conf)
			}
		})
	}
}

// WriteRecovery on disks made from a standby's snapshots: the standby's
// signal goes unless a standby is asked for, and then recovery.signal
// does; RemoveStandbySignal (--no-recovery-config) removes it alone.
func TestWriteRecoveryStandby(t *testing.T) {
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		for name, body := range map[string]string{standbySignal: "old", recoverySignal: "old", autoConf: standbyAutoConf} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	present := func(dir string) string {
		var s []string
		for _, name := range []string{standbySignal, recoverySignal} {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				s = append(s, name+"="+string(b))
			}
		}
		return strings.Join(s, " ")
	}
	c := RecoveryConfig{WALRestore: "gbc-wal-restore", StoreURL: "file:///b", Server: "main"}

	dir := setup(t)
	if err := WriteRecovery(dir, c); err != nil {
		t.Fatal(err)
	}
	if got := present(dir); got != "recovery.signal=" {
		t.Errorf("default: signal files %q, want an empty recovery.signal alone", got)
	}
	if conf, _ := os.ReadFile(filepath.Join(dir, autoConf)); !strings.Contains(string(conf), "\nprimary_conninfo = ''\n") {
		t.Errorf("primary_conninfo not reset:\n%s", conf)
	}

	dir = setup(t)
	c.Standby = true
	if err := WriteRecovery(dir, c); err != nil {
		t.Fatal(err)
	}
	if got := present(dir); got != "standby.signal=" {
		t.Errorf("standby: signal files %q, want an empty standby.signal alone", got)
	}
	if conf, _ := os.ReadFile(filepath.Join(dir, autoConf)); strings.Contains(string(conf), "primary_conninfo = ''") {
		t.Errorf("primary_conninfo reset for a standby:\n%s", conf)
	}

	dir = setup(t)
	if err := RemoveStandbySignal(dir); err != nil {
		t.Fatal(err)
	}
	if got := present(dir); got != "recovery.signal=old" {
		t.Errorf("RemoveStandbySignal: signal files %q", got)
	}
	if err := RemoveStandbySignal(dir); err != nil {
		t.Errorf("RemoveStandbySignal with no standby.signal: %v", err)
	}
}
