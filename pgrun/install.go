package pgrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Install is one PostgreSQL installation: the directory of its programs
// and the server's version.
type Install struct {
	BinDir  string // holds postgres, initdb, pg_ctl, psql...
	Major   int    // e.g. 15
	Version string // `postgres --version`, e.g. "postgres (PostgreSQL) 15.8"
}

// Find locates PostgreSQL's programs: in bindir when it is set (a
// --pg-bindir option), else in `pg_config --bindir`, else in the directory
// of the postgres program found in PATH (symlinks resolved, so that the
// other programs are found beside it). It reads the server's version.
func Find(bindir string) (*Install, error) {
	dir, err := findBinDir(bindir)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("pgrun: %s --version: %w", filepath.Join(dir, "postgres"), err)
	}
	version := strings.TrimSpace(string(out))
	major, err := parseMajor(version)
	if err != nil {
		return nil, err
	}
	return &Install{BinDir: dir, Major: major, Version: version}, nil
}

func findBinDir(bindir string) (string, error) {
	if bindir != "" {
		if !isProgram(filepath.Join(bindir, "postgres")) {
			return "", fmt.Errorf("pgrun: PostgreSQL bindir %s has no postgres program", bindir)
		}
		return filepath.Abs(bindir)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); isProgram(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	return "", errors.New("pgrun: PostgreSQL not found: no pg_config and no postgres in PATH " +
		"(install the PostgreSQL server, or name its bindir with --pg-bindir)")
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// parseMajor reads the major version in `postgres --version` output.
func parseMajor(version string) (int, error) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return 0, fmt.Errorf("pgrun: cannot read the PostgreSQL version in %q", version)
	}
	return strconv.Atoi(m[1])
}

func isProgram(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Path is the path of a program in BinDir, whether or not it exists.
func (i *Install) Path(name string) string { return filepath.Join(i.BinDir, name) }

// Program finds a program in BinDir, else in PATH (a client such as
// pgbench may come from another package than the server).
func (i *Install) Program(name string) (string, error) {
	if p := i.Path(name); isProgram(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("pgrun: %s is neither in %s nor in PATH", name, i.BinDir)
}

// Require checks that every named program is in BinDir or PATH.
func (i *Install) Require(names ...string) error {
	for _, n := range names {
		if _, err := i.Program(n); err != nil {
			return err
		}
	}
	return nil
}

// Superuser is the database superuser InitDB creates unless told
// otherwise, and the one a Server connects as.
const Superuser = "postgres"

// InitOptions tune InitDB.
type InitOptions struct {
	// Superuser is initdb's -U (default Superuser).
	Superuser string
	// WALSegmentSizeMB is --wal-segsize (a power of 2, 1 to 1024); 0 keeps
	// PostgreSQL's 16.
	WALSegmentSizeMB int
	// DataChecksums adds --data-checksums.
	DataChecksums bool
	// Args are more initdb arguments.
	Args []string
	// Env is initdb's whole environment (nil: this process's).
	Env []string
}

// InitDB creates a cluster in dataDir, run as u: trust authentication (the
// clusters this package runs are throwaway, and listen on a private socket
// directory or on loopback), UTF8, the C locale, no fsync. dataDir's parent
// must be writable by u.
func (i *Install) InitDB(ctx context.Context, u *User, dataDir string, o InitOptions) error {
	su := o.Superuser
	if su == "" {
		su = Superuser
	}
	args := []string{"-D", dataDir, "-A", "trust", "-U", su, "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions"}
	if o.DataChecksums {
		args = append(args, "--data-checksums")
	}
	if o.WALSegmentSizeMB != 0 {
		args = append(args, "--wal-segsize="+strconv.Itoa(o.WALSegmentSizeMB))
	}
	args = append(args, o.Args...)
	cmd := exec.CommandContext(ctx, i.Path("initdb"), args...)
	cmd.Env = o.Env
	cmd.Dir = filepath.Dir(dataDir)
	u.Apply(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgrun: initdb %s: %w\n%s", dataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
