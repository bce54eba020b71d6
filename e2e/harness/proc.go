package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one long-running child process: a server. It runs in its own
// process group, so that stopping it also stops everything it started, and
// receives pdeathsig if the test binary dies without cleaning up.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	exitErr error         // valid once done is closed
}

type procSpec struct {
	name      string
	path      string
	args      []string
	env       []string // the whole environment
	dir       string
	logPath   string // stdout and stderr go here (appended)
	asPG      bool   // run as the unprivileged PostgreSQL user when root
	pdeathsig syscall.Signal
}

func startProc(s procSpec) (*proc, error) {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("harness: open log of %s: %w", s.name, err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.path, s.args...)
	cmd.Env = s.env
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	sig := s.pdeathsig
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
	if s.asPG {
		cred, err := pgCredential()
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr.Credential = cred
	}
	p := &proc{name: s.name, cmd: cmd, logPath: s.logPath, done: make(chan struct{})}
	if err := reg.track(p); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		reg.untrack(p)
		return nil, fmt.Errorf("harness: start %s: %w", s.name, err)
	}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process itself (not its group).
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("harness: signal %s: %w", p.name, err)
	}
	return nil
}

// wait waits up to timeout for the process to exit.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill sends SIGKILL to the process, its process group and every
// descendant, and waits until they are gone. PostgreSQL's children each
// call setsid(), so the group alone is not enough; Azurite ignores SIGTERM;
// and a test server's data is throwaway, so servers are simply killed.
func (p *proc) kill() {
	pid := p.cmd.Process.Pid
	var family []int
	if !p.exited() {
		family = descendants(pid)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	for _, c := range family {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	p.wait(10 * time.Second)
	waitGone(pid, family, 10*time.Second)
	reg.untrack(p)
}

// procStat is one line of /proc/PID/stat: "pid (comm) state ppid pgrp ...".
type procStat struct {
	pid, ppid, pgrp int
	zombie          bool
}

// readProcs lists every process. A zombie holds no memory and no port, and
// an init that does not reap may keep it forever, so callers ignore them.
func readProcs() []procStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var ps []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		ps = append(ps, procStat{pid: pid, ppid: ppid, pgrp: pgrp, zombie: f[0] == "Z" || f[0] == "X"})
	}
	return ps
}

// descendants returns the PIDs of every live descendant of pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range readProcs() {
		if !p.zombie {
			children[p.ppid] = append(children[p.ppid], p.pid)
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
// pids, killing stragglers: a killed server's children still hold its
// shared memory and its port until they have exited.
func waitGone(pgid int, pids []int, timeout time.Duration) {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		alive := false
		for _, p := range readProcs() {
			if !p.zombie && (p.pgrp == pgid || want[p.pid]) {
				alive = true
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		if !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail returns the last n lines the process wrote.
func (p *proc) logTail(n int) string { return tailFile(p.logPath, n) }
