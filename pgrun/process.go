package pgrun

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessSpec describes a long-running child: a server.
type ProcessSpec struct {
	Name    string   // for messages
	Path    string   // the program
	Args    []string // its arguments
	Env     []string // its whole environment (nil: this process's)
	Dir     string   // working directory ("": this process's)
	LogPath string   // stdout and stderr are appended here
	User    *User    // runs it (nil: the current user)
	// DeathSignal reaches the child when this process dies without
	// stopping it (default SIGKILL; PostgreSQL wants SIGQUIT, an immediate
	// shutdown that also stops its backends).
	DeathSignal syscall.Signal
}

// Process is a started server process, in a process group of its own.
type Process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	exitErr error         // valid once done is closed
}

// StartProcess starts s and returns at once; WaitFor waits until it is
// ready. The caller must Kill (or otherwise stop) it.
func StartProcess(s ProcessSpec) (*Process, error) {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgrun: open log of %s: %w", s.Name, err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	sig := s.DeathSignal
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
	s.User.Apply(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgrun: start %s: %w", s.Name, err)
	}
	p := &Process{name: s.Name, logPath: s.LogPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name is the name given in the ProcessSpec.
func (p *Process) Name() string { return p.name }

// Pid is the process id, also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is where its output goes.
func (p *Process) LogPath() string { return p.logPath }

// LogTail returns the last n lines of its output.
func (p *Process) LogTail(n int) string { return Tail(p.logPath, n) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitErr is how the process ended (nil: exit status 0); valid once Done
// is closed.
func (p *Process) ExitErr() error {
	<-p.done
	return p.exitErr
}

// WaitExit waits up to timeout for the process to exit, and reports
// whether it did.
func (p *Process) WaitExit(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Signal sends sig to the process itself (not its group); a process that
// has exited is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgrun: signal %s: %w", p.name, err)
	}
	return nil
}

// Terminate sends SIGTERM to the process group, and after grace kills
// what is left.
func (p *Process) Terminate(grace time.Duration) {
	if !p.Exited() {
		_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
		p.WaitExit(grace)
	}
	p.Kill()
}

// Kill sends SIGKILL to the process, its process group and every
// descendant, and waits until they are gone: a killed server's children
// still hold its shared memory and its port until they have exited.
// Descendants are found while the process lives: once it has exited, its
// orphans belong to init and only its group is left to find them by.
func (p *Process) Kill() {
	pid := p.Pid()
	var family []int
	if !p.Exited() {
		family = descendants(pid)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	for _, c := range family {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	p.WaitExit(10 * time.Second)
	waitGone(pid, family, 10*time.Second)
}

// ProcInfo is one process of the process table, from /proc/PID/stat.
type ProcInfo struct {
	PID, PPID, PGRP int
	State           byte  // R, S, D, Z...
	RSSPages        int64 // resident set, in pages
}

// Zombie reports whether the process has exited and waits to be reaped: it
// holds no memory and no port, and an init that does not reap may keep it
// forever.
func (pi ProcInfo) Zombie() bool { return pi.State == 'Z' || pi.State == 'X' }

// ProcTable lists every process that can be read now (Linux /proc; empty
// elsewhere).
func ProcTable() []ProcInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var ps []ProcInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and
		// parentheses, so the fields start after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || len(f[0]) == 0 {
			continue
		}
		pi := ProcInfo{PID: pid, State: f[0][0]}
		pi.PPID, _ = strconv.Atoi(f[1])
		pi.PGRP, _ = strconv.Atoi(f[2])
		if len(f) > 21 {
			pi.RSSPages, _ = strconv.ParseInt(f[21], 10, 64)
		}
		ps = append(ps, pi)
	}
	return ps
}

// descendants returns the PIDs of every live descendant of pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range ProcTable() {
		if !p.Zombie() {
			children[p.PPID] = append(children[p.PPID], p.PID)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c)
		}
		queue = queue[1:]
	}
	return out
}

// waitGone waits until no live process is left in group pgid or among
// pids, killing stragglers.
func waitGone(pgid int, pids []int, timeout time.Duration) {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		alive := false
		for _, p := range ProcTable() {
			if !p.Zombie() && (p.PGRP == pgid || want[p.PID]) {
				alive = true
				_ = syscall.Kill(p.PID, syscall.SIGKILL)
			}
		}
		if !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ErrPortInUse: a server could not bind the port chosen for it, because
// something else took it in between (another test binary, or an outgoing
// connection's ephemeral port). A start on another port may succeed.
var ErrPortInUse = errors.New("port taken before the server could bind it")

// portTaken matches the bind failures of PostgreSQL, MinIO, node and Go.
var portTaken = regexp.MustCompile(`(?i)already in use|EADDRINUSE|could not bind`)

// WaitFor polls ready until it returns nil, p exits, ctx ends or timeout
// passes. When p exits first, the error quotes the end of its log and
// wraps ErrPortInUse if the log says its address was taken. p may be nil
// (nothing to watch).
func WaitFor(ctx context.Context, p *Process, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		err := ready(ctx)
		if err == nil && p != nil {
			// Another server may answer on a port ours failed to bind:
			// ours would be exiting by now.
			time.Sleep(50 * time.Millisecond)
			if p.Exited() {
				err = errors.New("exited")
			}
		}
		if err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			tail := p.LogTail(30)
			err := fmt.Errorf("%s exited before it was ready (%v); log tail:\n%s", p.name, p.exitErr, tail)
			if portTaken.MatchString(tail) {
				err = fmt.Errorf("%w: %w", ErrPortInUse, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			msg := ""
			if p != nil {
				msg = "; log tail:\n" + p.LogTail(30)
			}
			return fmt.Errorf("not ready after %v: %v%s", timeout, err, msg)
		case <-time.After(delay):
		}
		if delay < 250*time.Millisecond {
			delay *= 2
		}
	}
}

// Tail returns the last n lines of a file (read from its last 256 KiB,
// enough for any log's last lines), or "" when it cannot be read.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 256<<10 {
		_, _ = f.Seek(st.Size()-256<<10, 0)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
