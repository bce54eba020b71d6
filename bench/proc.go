package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// command is one process the harness runs and waits for.
type command struct {
	argv    []string
	dir     string        // working directory; "" = the run's directory
	env     []string      // added to the run's environment
	timeout time.Duration // 0 = defaultTimeout
	asSelf  bool          // run as the harness's user, not the PostgreSQL user
}

const defaultTimeout = 30 * time.Minute

// measurement is what one command cost.
type measurement struct {
	Wall time.Duration
	// MaxRSS is the peak resident set of the largest single process of the
	// command's tree (getrusage, exact).
	MaxRSS int64
	// TreeRSS is the peak of the sum over every process of the command's
	// process group, sampled every rssInterval: a multi-process tool
	// (pgBackRest's workers, barman's uploaders) uses the sum.
	TreeRSS int64
	Stdout  string
	Stderr  string
}

// PeakRSS is the figure reported: the larger of the two peaks.
func (m measurement) PeakRSS() int64 { return max(m.MaxRSS, m.TreeRSS) }

const rssInterval = 50 * time.Millisecond

// run runs c and measures it. A non-zero exit is an error that quotes the
// end of stderr.
func (e *env) run(ctx context.Context, c command) (measurement, error) {
	var m measurement
	if len(c.argv) == 0 {
		return m, errors.New("bench: empty command")
	}
	timeout := c.timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Dir = c.dir
	if cmd.Dir == "" {
		cmd.Dir = e.dir
	}
	cmd.Env = append(append([]string{}, e.procEnv...), c.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if !c.asSelf {
		cmd.SysProcAttr.Credential = e.cred
	}
	// Kill the whole group on timeout or interrupt, not only the child.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	e.log.debugf("$ %s", strings.Join(c.argv, " "))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return m, fmt.Errorf("bench: start %s: %w", c.argv[0], err)
	}
	stop := make(chan struct{})
	peak := make(chan int64, 1)
	go func() { peak <- sampleGroupRSS(cmd.Process.Pid, stop) }()
	err := cmd.Wait()
	m.Wall = time.Since(start)
	close(stop)
	m.TreeRSS = <-peak
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		}
	}
	m.Stdout, m.Stderr = out.String(), errb.String()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return m, fmt.Errorf("%s: %w%s", strings.Join(shorten(c.argv), " "), err, tail(m.Stderr+m.Stdout, 1500))
	}
	return m, nil
}

// shorten drops the directory of a long first argument, for messages.
func shorten(argv []string) []string {
	if len(argv) == 0 {
		return argv
	}
	out := append([]string{}, argv...)
	out[0] = filepath.Base(out[0])
	return out
}

// tail returns the last n bytes of s, as an indented suffix for an error.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return ":\n\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

// sampleGroupRSS returns the peak, over samples taken until stop closes, of
// the summed resident set of every process in process group pgid.
func sampleGroupRSS(pgid int, stop <-chan struct{}) int64 {
	return sampleRSS(func(_ string, pgrp int) bool { return pgrp == pgid }, stop)
}

// sampleToolRSS is sampleGroupRSS over every process whose command line
// holds program, whatever its process group or session: detached workers
// (gbc's archive pusher, pgBackRest's async archive-push) count with the
// calls PostgreSQL makes.
func sampleToolRSS(program string, stop <-chan struct{}) int64 {
	self := strconv.Itoa(os.Getpid()) // its --tools may name the program
	return sampleRSS(func(pid string, _ int) bool {
		if pid == self {
			return false
		}
		b, err := os.ReadFile("/proc/" + pid + "/cmdline")
		return err == nil && bytes.Contains(b, []byte(program))
	}, stop)
}

// sampleRSS returns the peak, over samples taken every rssInterval until
// stop closes, of the summed resident set of the processes match accepts.
func sampleRSS(match func(pid string, pgrp int) bool, stop <-chan struct{}) int64 {
	page := int64(os.Getpagesize())
	var peak int64
	t := time.NewTicker(rssInterval)
	defer t.Stop()
	for {
		if v := rssPages(match) * page; v > peak {
			peak = v
		}
		select {
		case <-stop:
			return peak
		case <-t.C:
		}
	}
}

// rssPages sums the rss field of /proc/PID/stat over the processes match
// accepts.
func rssPages(match func(pid string, pgrp int) bool) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum int64
	for _, ent := range ents {
		name := ent.Name()
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ... ; comm may contain spaces, so
		// split after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0]=state f[1]=ppid f[2]=pgrp ... f[21]=rss
		if len(f) < 22 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); !match(name, g) {
			continue
		}
		if rss, err := strconv.ParseInt(f[21], 10, 64); err == nil {
			sum += rss
		}
	}
	return sum
}

// background is a long-running process started by the harness (MinIO).
type background struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startBackground starts a server process in its own process group, its
// output going to logPath.
func (e *env) startBackground(name string, argv []string, extraEnv []string, logPath string) (*background, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.dir
	cmd.Env = append(append([]string{}, e.procEnv...), extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	b := &background{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { b.err = cmd.Wait(); close(b.done) }()
	return b, nil
}

// alive reports whether the process still runs.
func (b *background) alive() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after grace.
func (b *background) stop(grace time.Duration) {
	if !b.alive() {
		return
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.done
}
