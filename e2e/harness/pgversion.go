package harness

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gbc-backup/gbc/pgrun"
)

// Clusters of another major version than the default installation's
// (PGOptions.Version) come from one of, in order:
//
//   - $GBC_PG<major>_BINDIR, e.g. GBC_PG17_BINDIR;
//   - the default installation ($GBC_PG_BINDIR, `pg_config --bindir`,
//     PATH), when it is that major;
//   - $GBC_TOOLS/postgresql-<major>/bin, then
//     $HOME/.cache/gbc-tools/postgresql-<major>/bin, where
//     scripts/test-deps.sh installs PostgreSQL 17 and 18.
//
// A missing version fails the test; it never skips it.

// pgInstallMajor finds PostgreSQL of one major version, once per test
// binary and major.
func pgInstallMajor(major int) (*pgrun.Install, error) {
	l, _ := reg.pgMajors.LoadOrStore(major, &lazy[*pgrun.Install]{})
	return l.(*lazy[*pgrun.Install]).get(func() (*pgrun.Install, error) { return findMajor(major) })
}

func findMajor(major int) (*pgrun.Install, error) {
	env := "GBC_PG" + strconv.Itoa(major) + "_BINDIR"
	dir := os.Getenv(env)
	if dir == "" {
		if inst, err := pgInstall(); err == nil && inst.Major == major {
			return inst, nil
		}
		dir = toolsPostgres(major)
	}
	if dir == "" {
		return nil, fmt.Errorf("harness: PostgreSQL %d not found: run scripts/test-deps.sh (it installs it into "+
			"$GBC_TOOLS/postgresql-%d), or set %s to its bindir", major, major, env)
	}
	inst, err := pgrun.Find(dir)
	if err != nil {
		return nil, fmt.Errorf("harness: PostgreSQL %d (%s): %w", major, dir, err)
	}
	if inst.Major != major {
		return nil, fmt.Errorf("harness: %s holds %s, not PostgreSQL %d", dir, inst.Version, major)
	}
	if err := inst.Require("initdb"); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	return readableInstall(inst)
}

// toolsPostgres is the bindir scripts/test-deps.sh installs major into,
// or "" when there is none.
func toolsPostgres(major int) string {
	var roots []string
	if d := os.Getenv("GBC_TOOLS"); d != "" {
		roots = append(roots, d)
	}
	if h, err := os.UserHomeDir(); err == nil {
		roots = append(roots, filepath.Join(h, ".cache", "gbc-tools"))
	}
	for _, r := range roots {
		d := filepath.Join(r, "postgresql-"+strconv.Itoa(major), "bin")
		if st, err := os.Stat(filepath.Join(d, "postgres")); err == nil && !st.IsDir() {
			return d
		}
	}
	return ""
}

// readableInstall returns inst when PGUser can run its programs, else a
// copy it can run. The tools directory is under the home directory of the
// user running the tests, which is often closed to others (root's is
// 0700). The copy is made of hard links where it can (on the same file
// system it costs no space and about 10 ms), of copied files elsewhere,
// into a directory removed by Main.
func readableInstall(inst *pgrun.Install) (*pgrun.Install, error) {
	u, err := pgUser()
	if err != nil {
		return nil, err
	}
	if runsAs(u, inst.Path("postgres")) == nil {
		return inst, nil
	}
	if !reg.mainCalled.Load() {
		return nil, fmt.Errorf("harness: %s is not readable by %s, and copying it needs "+
			"`func TestMain(m *testing.M) { harness.Main(m) }` in this test package to remove the copy", inst.BinDir, u.Name)
	}
	root, err := filepath.EvalSymlinks(filepath.Dir(inst.BinDir))
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	dst, err := sharedTempDir(fmt.Sprintf("gbc-pg%d-", inst.Major))
	if err != nil {
		return nil, err
	}
	reg.addDir(dst)
	if err := linkTree(root, dst); err != nil {
		return nil, err
	}
	staged, err := pgrun.Find(filepath.Join(dst, filepath.Base(inst.BinDir)))
	if err != nil {
		return nil, fmt.Errorf("harness: copy of PostgreSQL %d: %w", inst.Major, err)
	}
	if err := runsAs(u, staged.Path("postgres")); err != nil {
		return nil, fmt.Errorf("harness: copy of PostgreSQL %d in %s: %w", inst.Major, dst, err)
	}
	return staged, nil
}

// runsAs runs `program --version` as u.
func runsAs(u *pgrun.User, program string) error {
	cmd := exec.Command(program, "--version")
	u.Apply(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s --version as %s: %w: %s", program, u.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// linkTree recreates the installation tree src in dst (which exists):
// directories 0755, symbolic links as they are (PostgreSQL's shared
// libraries are linked by relative links), files hard-linked, or copied
// when src is on another file system. Static libraries, which no program
// loads, are left out.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("harness: %w", err)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, 0o755); err != nil {
				return fmt.Errorf("harness: %w", err)
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				return fmt.Errorf("harness: %w", err)
			}
		case d.Type().IsRegular() && !strings.HasSuffix(d.Name(), ".a"):
			// A link fails across file systems (EXDEV), and for files of
			// another owner under fs.protected_hardlinks (EPERM): copy.
			if os.Link(path, to) == nil {
				return nil
			}
			st, err := d.Info()
			if err != nil {
				return fmt.Errorf("harness: %w", err)
			}
			return copyFile(path, to, st.Mode().Perm())
		}
		return nil
	})
}
