package pgrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAppendConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postgresql.conf")
	if err := os.WriteFile(path, []byte("port = 5432\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := AppendConf(path, "test", map[string]string{"wal_level": "replica", "archive_command": "cp %p '/x y'/%f"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "port = 5432\n\n# test\narchive_command = 'cp %p ''/x y''/%f'\nwal_level = 'replica'\n"
	if string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
	if err := AppendConf(filepath.Join(t.TempDir(), "missing.conf"), "", nil); err == nil {
		t.Fatal("AppendConf created a missing file")
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := Tail(path, 3), "line 98\nline 99\nline 100"; got != want {
		t.Fatalf("Tail = %q, want %q", got, want)
	}
	if got := Tail(filepath.Join(t.TempDir(), "none"), 3); got != "" {
		t.Fatalf("Tail of a missing file = %q", got)
	}
}

func TestParseMajor(t *testing.T) {
	for in, want := range map[string]int{
		"postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)": 15,
		"postgres (PostgreSQL) 17beta1":                      17,
	} {
		if got, err := parseMajor(in); err != nil || got != want {
			t.Errorf("parseMajor(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseMajor("pg 15"); err == nil {
		t.Error("parseMajor accepted a line without (PostgreSQL)")
	}
}

func TestFindBadBinDir(t *testing.T) {
	_, err := Find(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no postgres program") {
		t.Fatalf("Find(empty dir) = %v, want a no-postgres error", err)
	}
}

// TestKillFamily: Kill also kills a descendant that left the process
// group with setsid, as PostgreSQL's backends do.
func TestKillFamily(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p, err := StartProcess(ProcessSpec{
		Name: "sh", Path: "/bin/sh", LogPath: filepath.Join(dir, "log"),
		Args: []string{"-c", "setsid sleep 300 & echo $! > " + pidFile + "; wait"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0; {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if child == 0 && time.Now().After(deadline) {
			p.Kill()
			t.Fatal("no pid from the child")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !alive(child) {
		t.Fatalf("child %d not running before Kill", child)
	}
	p.Kill()
	if !p.Exited() {
		t.Fatal("process still running after Kill")
	}
	if alive(child) {
		t.Fatalf("setsid child %d survived Kill", child)
	}
}

// execAs prepares a program run as u.
func execAs(u *User, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	u.Apply(cmd)
	return cmd
}

func alive(pid int) bool {
	for _, p := range ProcTable() {
		if p.PID == pid {
			return !p.Zombie()
		}
	}
	return false
}

func TestWaitForPortInUse(t *testing.T) {
	dir := t.TempDir()
	p, err := StartProcess(ProcessSpec{
		Name: "sh", Path: "/bin/sh", LogPath: filepath.Join(dir, "log"),
		Args: []string{"-c", `echo 'LOG:  could not bind IPv4 address "127.0.0.1": Address already in use'; exit 1`},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	err = WaitFor(context.Background(), p, 30*time.Second, func(context.Context) error { return errors.New("not yet") })
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("WaitFor = %v, want ErrPortInUse", err)
	}
	p2, err := StartProcess(ProcessSpec{Name: "sh", Path: "/bin/sh", LogPath: filepath.Join(dir, "log2"),
		Args: []string{"-c", "echo FATAL: something else; exit 1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Kill()
	err = WaitFor(context.Background(), p2, 30*time.Second, func(context.Context) error { return errors.New("not yet") })
	if err == nil || errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "something else") {
		t.Fatalf("WaitFor = %v, want an exit error quoting the log and not ErrPortInUse", err)
	}
}

// TestServer runs real PostgreSQL: initdb, start with command-line
// settings, a query, a refused port, a standby promoted and waited for as
// a restore drill does, stop and restart.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	inst, err := Find(os.Getenv("GBC_PG_BINDIR"))
	if err != nil {
		t.Fatal(err)
	}
	if inst.Major < 10 {
		t.Fatalf("major version %d from %q", inst.Major, inst.Version)
	}
	u, err := ServerUser("postgres", "gbctest")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parents are private: the server user could not enter.
	base, err := os.MkdirTemp("", "pgrun-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := u.Chown(base); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := func(name string) Config {
		return Config{Install: inst, User: u, DataDir: filepath.Join(base, name), SocketDir: base,
			Listen: "127.0.0.1", LogPath: filepath.Join(base, name+".log")}
	}
	a := cfg("a")
	if err := inst.InitDB(ctx, u, a.DataDir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := AppendConf(filepath.Join(a.DataDir, "postgresql.conf"), "test", map[string]string{"work_mem": "3MB"}); err != nil {
		t.Fatal(err)
	}
	a.Settings = map[string]string{"work_mem": "5MB"} // the command line wins
	sa, err := Start(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Halt()
	if v, err := sa.Query(ctx, "SHOW work_mem"); err != nil || v != "5MB" {
		t.Fatalf("work_mem = %q, %v; want 5MB", v, err)
	}
	if err := sa.WaitRecovered(ctx, time.Minute); err != nil {
		t.Fatalf("WaitRecovered on a primary: %v", err)
	}

	// A fixed port that is taken: ErrPortInUse, and nothing left running.
	b := cfg("b")
	if err := inst.InitDB(ctx, u, b.DataDir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	b.Port = sa.Port()
	if s, err := Start(ctx, b); !errors.Is(err, ErrPortInUse) {
		if s != nil {
			s.Halt()
		}
		t.Fatalf("Start on a taken port = %v, want ErrPortInUse", err)
	}

	// A standby made with pg_basebackup -R, promoted: the end of
	// recovery a restore drill waits for.
	c := cfg("c")
	bb, err := inst.Program("pg_basebackup")
	if err != nil {
		t.Fatal(err)
	}
	cmd := execAs(u, bb, "-D", c.DataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-h", base, "-p", strconv.Itoa(sa.Port()), "-U", Superuser)
	cmd.Dir = base
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	c.Chown = true
	sc, err := Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Halt()
	if v, _ := sc.Query(ctx, "SELECT pg_is_in_recovery()"); v != "t" {
		t.Fatalf("standby pg_is_in_recovery = %q", v)
	}
	shortCtx, cancel := context.WithTimeout(ctx, time.Second)
	err = sc.WaitRecovered(shortCtx, time.Minute)
	cancel()
	if err == nil {
		t.Fatal("WaitRecovered returned for a standby still in recovery")
	}
	if _, err := sc.Query(ctx, "SELECT pg_promote(false)"); err != nil {
		t.Fatal(err)
	}
	if err := sc.WaitRecovered(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := sc.Halt(); err != nil {
		t.Fatal(err)
	}
	if !sc.Exited() {
		t.Fatal("standby running after Halt")
	}

	// Stop, then a restart on the same port.
	port := sa.Port()
	if err := sa.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Query(ctx, "SELECT 1"); err == nil {
		t.Fatal("query answered after Stop")
	}
	a.Port = port
	sa2, err := Start(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer sa2.Halt()
	if v, err := sa2.Query(ctx, "SELECT 1 + 1"); err != nil || v != "2" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
	if err := sa2.Stop(time.Minute); err != nil {
		t.Fatal(err)
	}
}
