package pgrun

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
)

// User is the operating-system account that runs PostgreSQL and the
// programs that must act as it (initdb, the server, archive_command's
// gbc commands). A nil *User is the current user, with no switch.
type User struct {
	Name     string
	UID, GID uint32
	Home     string
	// switchTo: the account is another than this process's, so programs
	// get its credential and files are given to it.
	switchTo bool
}

// ServerUser returns who runs PostgreSQL: the current user, or when this
// process runs as root (which PostgreSQL refuses) the first of names that
// exists and is not root; when none does, the last name is created as a
// system user with useradd. names must not be empty when running as root.
func ServerUser(names ...string) (*User, error) {
	if os.Geteuid() != 0 {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("pgrun: current user: %w", err)
		}
		return fromOS(cur, false)
	}
	if len(names) == 0 {
		return nil, errors.New("pgrun: running as root, PostgreSQL needs an unprivileged user, and none was named")
	}
	for _, n := range names {
		if u, err := lookup(n); err == nil {
			return u, nil
		}
	}
	name := names[len(names)-1]
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--user-group",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput()
	// Another process may have created it at the same time: look again
	// whatever useradd said.
	if u, lerr := lookup(name); lerr == nil {
		return u, nil
	}
	return nil, fmt.Errorf("pgrun: no unprivileged user to run PostgreSQL as (tried %s), and useradd %s failed: %v: %s",
		strings.Join(names, ", "), name, err, strings.TrimSpace(string(out)))
}

func lookup(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	pu, err := fromOS(u, true)
	if err != nil {
		return nil, err
	}
	if pu.UID == 0 {
		return nil, fmt.Errorf("pgrun: user %s is root", name)
	}
	return pu, nil
}

func fromOS(u *user.User, switchTo bool) (*User, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgrun: uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgrun: gid of %s: %w", u.Username, err)
	}
	return &User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir, switchTo: switchTo}, nil
}

// Switches reports whether programs run as u get another credential than
// this process's.
func (u *User) Switches() bool { return u != nil && u.switchTo }

// Credential is the credential that runs a process as u (its primary group
// only: root's supplementary groups are dropped), or nil when no switch is
// needed.
func (u *User) Credential() *syscall.Credential {
	if !u.Switches() {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{u.GID}}
}

// Apply makes cmd run as u, keeping the rest of its SysProcAttr.
func (u *User) Apply(cmd *exec.Cmd) {
	if !u.Switches() {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = u.Credential()
}

// Chown gives path itself (not what a symlink points to) to u; it does
// nothing when u is the current user.
func (u *User) Chown(path string) error {
	if !u.Switches() {
		return nil
	}
	if err := os.Lchown(path, int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("pgrun: chown %s to %s: %w", path, u.Name, err)
	}
	return nil
}

// ChownAll gives path and everything below it to u, for what a root
// process wrote that PostgreSQL must own (a restored data directory).
// Files removed meanwhile are skipped.
func (u *User) ChownAll(path string) error {
	if !u.Switches() {
		return nil
	}
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return os.Lchown(p, int(u.UID), int(u.GID))
	})
	if err != nil {
		return fmt.Errorf("pgrun: chown -R %s to %s: %w", path, u.Name, err)
	}
	return nil
}
