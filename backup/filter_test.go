package backup

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestParseRelationFile(t *testing.T) {
	for _, tc := range []struct {
		name, rel, fork string
		ok              bool
	}{
		{"16384", "16384", "", true},
		{"16384.1", "16384", "", true},
		{"16384_fsm", "16384", "fsm", true},
		{"16384_vm", "16384", "vm", true},
		{"16384_init", "16384", "init", true},
		{"16384_init.2", "16384", "init", true},
		{"1234567890", "1234567890", "", true},
		{"12345678901", "", "", false}, // more than OIDCHARS digits
		{"16384_main", "", "", false},  // the main fork has no suffix
		{"16384_fsmx", "", "", false},
		{"16384.", "", "", false},
		{"16384.x", "", "", false},
		{"16384_", "", "", false},
		{"t3_16384", "", "", false},
		{"PG_VERSION", "", "", false},
		{"pg_filenode.map", "", "", false},
		{"", "", "", false},
	} {
		rel, fork, ok := parseRelationFile(tc.name)
		if rel != tc.rel || fork != tc.fork || ok != tc.ok {
			t.Errorf("parseRelationFile(%q) = %q, %q, %v; want %q, %q, %v", tc.name, rel, fork, ok, tc.rel, tc.fork, tc.ok)
		}
	}
}

func TestLooksLikeTempRel(t *testing.T) {
	for name, want := range map[string]bool{
		"t3_16384":        true,
		"t12_16384_fsm":   true,
		"t12_16384_vm.3":  true,
		"t12_16384.1":     true,
		"t_16384":         false,
		"t3_":             false,
		"t3":              false,
		"t3_16384_x":      false,
		"t3_16384.":       false,
		"16384":           false,
		"temp":            false,
		"t3_16384_init.x": false,
	} {
		if got := looksLikeTempRel(name); got != want {
			t.Errorf("looksLikeTempRel(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestExcludedFile(t *testing.T) {
	for name, want := range map[string]bool{
		"postmaster.pid":           true,
		"postmaster.opts":          true,
		"backup_label":             true,
		"backup_label.old":         false,
		"tablespace_map":           true,
		"backup_manifest":          true,
		"pg_internal.init":         true,
		"pg_internal.init.12345":   true, // prefix match: its temporary files
		"postgresql.auto.conf.tmp": true,
		"postgresql.auto.conf":     false,
		"current_logfiles.tmp":     true,
		"current_logfiles":         false,
		"PG_VERSION":               false,
	} {
		if got := excludedFile(name); got != want {
			t.Errorf("excludedFile(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestIsDatabaseDir(t *testing.T) {
	const v = "PG_15_202209061"
	for rel, want := range map[string]bool{
		"base/1":          true,
		"base/16384":      true,
		"base":            false,
		"base/pgsql_tmp":  false,
		"global":          false,
		"pg_xact/1":       false,
		v + "/16384":      true,
		v:                 false,
		"x/" + v + "/1":   false,
		"base/16384/1234": false,
	} {
		if got := isDatabaseDir(rel, v); got != want {
			t.Errorf("isDatabaseDir(%q) = %v, want %v", rel, got, want)
		}
	}
}

// mkTree creates files (content = path) and directories ("dir/") under
// root, and symbolic links given as "name -> target".
func mkTree(t *testing.T, root string, items ...string) {
	t.Helper()
	for _, it := range items {
		if name, target, ok := strings.Cut(it, " -> "); ok {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p := filepath.Join(root, it)
		if strings.HasSuffix(it, "/") {
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(it), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func walkNames(t *testing.T, w *walker) []string {
	t.Helper()
	var got []string
	err := w.walk(context.Background(), func(e *entry) error {
		n := e.rel
		if e.typ == tar.TypeDir {
			n += "/"
		}
		got = append(got, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// TestWalkDataDir checks the walk against pg_basebackup's rules on a
// made-up data directory.
func TestWalkDataDir(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	walTarget := filepath.Join(tmp, "waldir")
	mkTree(t, tmp, "waldir/000000010000000000000001", "waldir/archive_status/000000010000000000000001.ready", "elsewhere/x")
	mkTree(t, data,
		"PG_VERSION", "postgresql.conf", "postgresql.auto.conf", "postgresql.auto.conf.tmp",
		"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "backup_manifest",
		"current_logfiles", "current_logfiles.tmp",
		"global/1262", "global/pg_control", "global/pg_filenode.map", "global/pg_internal.init",
		"base/1/1259", "base/1/1259_fsm", "base/1/1259_vm", "base/1/1259.1",
		// unlogged relation 5000: only its init fork is kept
		"base/1/5000", "base/1/5000_init", "base/1/5000_fsm", "base/1/5000.1",
		"base/1/t3_6000", "base/1/t3_6000_fsm", "base/1/pg_internal.init.123",
		"base/1/pgsql_tmp/x", "base/pgsql_tmp/pgsql_tmp123.0", "base/1/PG_VERSION",
		// names that look like relations outside database directories
		"pg_xact/0000", "pg_logical/mappings/", "pg_logical/replorigin_checkpoint",
		"pg_stat_tmp/global.stat", "pg_replslot/s1/state", "pg_dynshmem/", "pg_notify/0000",
		"pg_serial/0000", "pg_snapshots/0000001-1", "pg_subtrans/0000", "pg_stat/pgstat.stat",
		"pg_tblspc/16384 -> "+filepath.Join(tmp, "ts"),
		"pg_wal -> "+walTarget,
		"log/postgresql.log",
		"stray-link -> "+filepath.Join(tmp, "elsewhere"),
	)
	var warnings []string
	w := &walker{root: data, data: true, dirMode: 0o700, warnf: func(f string, a ...any) { warnings = append(warnings, f) }}
	got := walkNames(t, w)
	want := []string{
		"PG_VERSION", "base/", "base/1/", "base/1/1259", "base/1/1259.1", "base/1/1259_fsm", "base/1/1259_vm",
		"base/1/5000_init", "base/1/PG_VERSION",
		"current_logfiles", "global/", "global/1262", "global/pg_filenode.map",
		"log/", "log/postgresql.log",
		"pg_dynshmem/", "pg_logical/", "pg_logical/mappings/", "pg_logical/replorigin_checkpoint",
		"pg_notify/", "pg_replslot/", "pg_serial/", "pg_snapshots/", "pg_stat/", "pg_stat/pgstat.stat",
		"pg_stat_tmp/", "pg_subtrans/", "pg_tblspc/", "pg_wal/", "pg_wal/archive_status/", "pg_xact/", "pg_xact/0000",
		"postgresql.auto.conf", "postgresql.conf",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk:\n got %q\nwant %q", got, want)
	}
	if len(warnings) != 1 {
		t.Errorf("warnings %q: want one, for the stray symbolic link", warnings)
	}
}

func TestWalkTablespace(t *testing.T) {
	loc := t.TempDir()
	const v = "PG_15_202209061"
	mkTree(t, loc,
		v+"/16385/2000", v+"/16385/2000_vm", v+"/16385/3000", v+"/16385/3000_init",
		v+"/16385/t4_7000", v+"/pgsql_tmp/pgsql_tmp1.1",
		"PG_14_202107181/16385/1", // another major version's directory
	)
	w := &walker{root: loc, versionDir: v, dirMode: 0o700, warnf: t.Logf}
	got := walkNames(t, w)
	want := []string{v + "/", v + "/16385/", v + "/16385/2000", v + "/16385/2000_vm", v + "/16385/3000_init"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk:\n got %q\nwant %q", got, want)
	}
	// A tablespace dropped meanwhile is empty, not an error.
	w = &walker{root: filepath.Join(loc, "gone"), versionDir: v, warnf: t.Logf}
	if got := walkNames(t, w); len(got) != 0 {
		t.Errorf("missing tablespace: %q", got)
	}
}

func TestWalkSkipsTablespaceInsideDataDir(t *testing.T) {
	data := t.TempDir()
	mkTree(t, data, "PG_VERSION", "inside/PG_15_1/1/2")
	w := &walker{root: data, data: true, skip: map[string]bool{"inside": true}, warnf: t.Logf}
	got := walkNames(t, w)
	want := []string{"PG_VERSION", "inside/"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk:\n got %q\nwant %q", got, want)
	}
}
