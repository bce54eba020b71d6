package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// gbc-restore --delta on PostgreSQL 15: a data directory restored from a
// backup, started and changed (rows written, a table dropped, one
// created, WAL written), is restored again in place; the result is what
// a restore into an empty directory gives (file by file, before the
// start), pg_verifybackup and pg_amcheck pass, the tables hold the
// backup's content, and a file the server did not change is not touched.
// The same over an incremental chain, where a second delta restore
// writes nothing and downloads no older backup; and the refusals.

// deltaFlags recover each restore to the backup's end, so that its
// content is the backup's.
var deltaFlags = []string{"--target-immediate", "--target-action", "promote"}

func TestDeltaRestore(t *testing.T) {
	st := harness.NewStore(t, "file")
	pg := rstPrimary(t, st)
	pg.PgBench(t, "-i", "-s", "2", "-q")
	pg.Exec(t, "CREATE TABLE marks (mark text PRIMARY KEY)")
	pg.Exec(t, "CREATE TABLE regrow (id int, pad text)")
	pg.Exec(t, "INSERT INTO regrow SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g")
	pg.Exec(t, "INSERT INTO marks VALUES ('full')")
	pg.Exec(t, "CHECKPOINT")
	accounts := pg.QueryString(t, "SELECT pg_relation_filepath('pgbench_accounts')")
	backup := func(flags ...string) (*catalog.Backup, string) {
		t.Helper()
		state := incrState(t, pg)
		out := retGBC(t, pg, st, "gbc-backup", append([]string{"--format", "json"}, flags...), rstServer)
		var b catalog.Backup
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatalf("gbc-backup JSON: %v\n%s", err, out)
		}
		seg := pg.SwitchWAL(t)
		pg.WaitArchived(t, seg, 2*time.Minute)
		return &b, state
	}
	full, fullState := backup()

	// change makes on a restored copy what a server's life does to it.
	change := func(c *harness.Cluster) {
		t.Helper()
		c.Exec(t, "INSERT INTO marks VALUES ('after')")
		c.Exec(t, "UPDATE pgbench_tellers SET tbalance = tbalance + 1")
		c.Exec(t, "DROP TABLE regrow")
		c.Exec(t, "CREATE TABLE extra AS SELECT g FROM generate_series(1, 20000) g")
		c.Exec(t, "SELECT pg_switch_wal()")
		c.Exec(t, "CHECKPOINT")
	}
	delta := func(id, dest string) deltaReport {
		t.Helper()
		flags := append([]string{"--disable-archiving", "--delta"}, deltaFlags...)
		out, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-restore"), flags, rstServer, id, dest)...)
		if code != 0 {
			t.Fatalf("gbc-restore --delta: exit %d\n%s%s", code, out, errOut)
		}
		return parseDelta(t, out+errOut)
	}

	t.Run("full", func(t *testing.T) {
		dest := rstRestore(t, pg, st, full.ID, deltaFlags...)
		c := rstStart(t, pg, dest)
		change(c)
		if c.QueryInt(t, "SELECT count(*) FROM pg_ls_waldir()") == 0 {
			t.Fatal("the copy wrote no WAL: the test cannot check that pg_wal is emptied")
		}

		// Running: refused, and nothing is changed.
		flags := append([]string{"--disable-archiving", "--delta"}, deltaFlags...)
		_, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-restore"), flags, rstServer, full.ID, dest)...)
		if code != exitConflict || !strings.Contains(errOut, "PostgreSQL is running on "+dest) || !strings.Contains(errOut, "stop it first") {
			t.Errorf("delta restore over a running server: exit %d, want %d\n%s", code, exitConflict, errOut)
		}
		if got := rstMarks(t, c); got != "after,full" {
			t.Errorf("the refused delta restore disturbed the server: marks %q", got)
		}
		c.Stop(t)
		if _, err := os.Stat(filepath.Join(dest, "global/pg_control")); err != nil {
			t.Fatalf("the refused delta restore left no pg_control: %v", err)
		}

		before := fileStat(t, filepath.Join(dest, accounts))
		rep := delta(full.ID, dest)
		t.Logf("delta: %+v", rep)
		if after := fileStat(t, filepath.Join(dest, accounts)); after != before {
			t.Errorf("%s, which the server did not change, was touched: %+v, then %+v", accounts, before, after)
		}
		// What was written is what changed: a few pages of tellers,
		// marks, the regrow table dropped, the catalogs; not the bulk.
		if rep.kept == 0 || rep.written*4 > full.DataSize || rep.removed == 0 {
			t.Errorf("delta restore: %+v, backup of %d bytes", rep, full.DataSize)
		}
		fresh := rstRestore(t, pg, st, full.ID, deltaFlags...)
		compareTrees(t, dest, fresh)
		pg.Run(t, "pg_verifybackup", "-n", dest)
		r := rstStart(t, pg, dest)
		if got := incrState(t, r); got != fullState {
			t.Errorf("after the delta restore:\n%s\nwant\n%s", got, fullState)
		}
		r.Run(t, "pg_amcheck", "--all", "--heapallindexed")
		r.Stop(t)
	})

	t.Run("chain", func(t *testing.T) {
		pg.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance + 3 WHERE aid % 5000 = 1")
		pg.Exec(t, "INSERT INTO marks VALUES ('incr')")
		pg.Exec(t, "CHECKPOINT")
		incr, incrStateWant := backup("--type", "incr")
		if incr.Kind() != catalog.TypeIncr || incr.ParentID != full.ID {
			t.Fatalf("incr: type %s parent %s", incr.Kind(), incr.ParentID)
		}
		dest := rstRestore(t, pg, st, incr.ID, deltaFlags...)
		c := rstStart(t, pg, dest)
		change(c)
		c.Exec(t, "UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid % 7000 = 2")
		c.Exec(t, "CHECKPOINT")
		c.Stop(t)

		rep := delta(incr.ID, dest)
		t.Logf("delta over the chain: %+v", rep)
		pg.Run(t, "pg_verifybackup", "-n", dest)
		// Again: every block is the backup's, so nothing is written and
		// the full backup is not downloaded.
		rep = delta(incr.ID, dest)
		t.Logf("delta again: %+v", rep)
		if rep.written != 0 || rep.downloaded >= full.StoredSize/2 {
			t.Errorf("a delta restore over its own result wrote %d bytes and downloaded %d (the full backup stores %d)", rep.written, rep.downloaded, full.StoredSize)
		}
		pg.Run(t, "pg_verifybackup", "-n", dest)
		r := rstStart(t, pg, dest)
		if got := incrState(t, r); got != incrStateWant {
			t.Errorf("after the delta restore of the chain:\n%s\nwant\n%s", got, incrStateWant)
		}
		r.Run(t, "pg_amcheck", "--all", "--heapallindexed")
		r.Stop(t)
	})

	t.Run("refusals", func(t *testing.T) {
		other := harness.StartPostgres(t, harness.PGOptions{WALSegmentSizeMB: 1})
		other.Stop(t)
		notData := harness.TempDir(t)
		if err := os.WriteFile(filepath.Join(notData, "notes.txt"), []byte("mine\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		harness.ChownToPG(t, notData)
		for _, c := range []struct{ name, dest, msg string }{
			{"another system", other.DataDir, "holds another system (system identifier "},
			{"not a data directory", notData, "is not a PostgreSQL data directory (it has no PG_VERSION)"},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := treeDigest(t, c.dest)
				_, errOut, code := pg.RunGBC(t, st.Env, st.Argv(harness.Bin(t, "gbc-restore"), []string{"--delta"}, rstServer, full.ID, c.dest)...)
				if code != exitConflict || !strings.Contains(errOut, c.msg) {
					t.Errorf("exit %d, want %d with %q:\n%s", code, exitConflict, c.msg, errOut)
				}
				if after := treeDigest(t, c.dest); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("the refused delta restore changed %s", c.dest)
				}
			})
		}
	})
}

// deltaReport is what gbc-restore --delta says it did.
type deltaReport struct {
	kept, files, removed, written, downloaded int64
}

var (
	deltaLine    = regexp.MustCompile(`delta: (\d+) of (\d+) files were already as in the backup; (\S+) written; (\d+) entries`)
	restoredLine = regexp.MustCompile(`restored \d+ files, \S+ \((\S+) downloaded\)`)
)

func parseDelta(t *testing.T, out string) deltaReport {
	t.Helper()
	m, d := deltaLine.FindStringSubmatch(out), restoredLine.FindStringSubmatch(out)
	if m == nil || d == nil {
		t.Fatalf("gbc-restore --delta did not report the delta:\n%s", out)
	}
	n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v }
	return deltaReport{kept: n(m[1]), files: n(m[2]), written: parseBytes(t, m[3]), removed: n(m[4]), downloaded: parseBytes(t, d[1])}
}

// parseBytes reads a size as render.Bytes prints it ("3.0MiB", "512B").
func parseBytes(t *testing.T, s string) int64 {
	t.Helper()
	if s == "-" {
		return 0
	}
	units := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	v, err := strconv.ParseFloat(s[:max(i, 0)], 64)
	if i < 0 || err != nil || units[s[i:]] == 0 {
		t.Fatalf("size %q", s)
	}
	return int64(v * units[s[i:]])
}

// statOf is what tells a file left alone: same inode, same change time.
type statOf struct {
	Ino   uint64
	Ctime int64
	Size  int64
}

func fileStat(t *testing.T, p string) statOf {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return statOf{Ino: st.Ino, Ctime: st.Ctim.Nano(), Size: st.Size}
}

// restoreWrites are the files gbc-restore writes itself, at its own time.
var restoreWrites = map[string]bool{"postgresql.auto.conf": true, "recovery.signal": true, "backup_manifest": true}

// treeDigest describes every entry under dir: kind, mode, size, content.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link " + l
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String()
		default:
			sum, mtime := "-", fi.ModTime().Unix()
			if restoreWrites[rel] {
				mtime = 0 // the time of the restore
			}
			// The recovery settings carry the time of the restore.
			if rel != "postgresql.auto.conf" {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				s := sha256.Sum256(b)
				sum = hex.EncodeToString(s[:8])
			}
			out[rel] = fmt.Sprintf("file %s %d %s %d", fi.Mode().Perm(), fi.Size(), sum, mtime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compareTrees fails unless got holds what want holds, entry by entry.
func compareTrees(t *testing.T, got, want string) {
	t.Helper()
	g, w := treeDigest(t, got), treeDigest(t, want)
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: %q after the delta restore, %q after a restore into an empty directory", k, g[k], v)
		}
	}
	for k, v := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("%s: %q after the delta restore, absent from a restore into an empty directory", k, v)
		}
	}
}
