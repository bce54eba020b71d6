package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// osUser is the unprivileged account PostgreSQL runs as when the tests run
// as root: PostgreSQL refuses to start as root.
type osUser struct {
	Name     string
	Uid, Gid uint32
	Home     string
}

// pgUserCandidates are tried in order; the last one is created when none
// exists.
var pgUserCandidates = []string{"postgres", "gbctest"}

func isRoot() bool { return os.Geteuid() == 0 }

// PGUser returns the name of the OS user that PostgreSQL, and every gbc
// command it runs, runs as: the current user, or when the tests run as root
// the `postgres` system user, or a `gbctest` user created with useradd.
func PGUser(t testing.TB) string {
	t.Helper()
	if !isRoot() {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("harness: current user: %v", err)
		}
		return u.Username
	}
	u, err := pgUser()
	if err != nil {
		t.Fatal(err)
	}
	return u.Name
}

func pgUser() (*osUser, error) {
	return reg.pgUser.get(func() (*osUser, error) {
		for _, name := range pgUserCandidates {
			if u, err := lookupUser(name); err == nil {
				return u, nil
			}
		}
		name := pgUserCandidates[len(pgUserCandidates)-1]
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--user-group", name).CombinedOutput()
		if u, lerr := lookupUser(name); lerr == nil {
			return u, nil // created, or created concurrently by another test binary
		}
		return nil, fmt.Errorf("harness: no unprivileged user to run PostgreSQL as (tried %s), and useradd %s failed: %v: %s",
			strings.Join(pgUserCandidates, ", "), name, err, strings.TrimSpace(string(out)))
	})
}

func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", name, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s is root", name)
	}
	return &osUser{Name: name, Uid: uint32(uid), Gid: uint32(gid), Home: u.HomeDir}, nil
}

// pgCredential returns the credential to run a process as the PostgreSQL
// user, or nil when no switch is needed (not root).
func pgCredential() (*syscall.Credential, error) {
	if !isRoot() {
		return nil, nil
	}
	u, err := pgUser()
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: u.Uid, Gid: u.Gid, Groups: []uint32{u.Gid}}, nil
}

// ChownToPG gives path (recursively) to the PostgreSQL user when the tests
// run as root, and does nothing otherwise. Use it on anything a root process
// wrote that PostgreSQL must then own, such as a data directory or a
// tablespace restored by a gbc command run as root. StartFrom calls it on
// the data directory and its tablespaces.
func ChownToPG(t testing.TB, path string) {
	t.Helper()
	if err := chownToPG(path, true); err != nil {
		t.Fatal(err)
	}
}

func chownToPG(path string, recursive bool) error {
	if !isRoot() {
		return nil
	}
	u, err := pgUser()
	if err != nil {
		return err
	}
	if !recursive {
		if err := os.Lchown(path, int(u.Uid), int(u.Gid)); err != nil {
			return fmt.Errorf("harness: chown %s to %s: %w", path, u.Name, err)
		}
		return nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return os.Lchown(p, int(u.Uid), int(u.Gid))
	})
	if err != nil {
		return fmt.Errorf("harness: chown -R %s to %s: %w", path, u.Name, err)
	}
	return nil
}
