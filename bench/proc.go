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

	"github.com/gbc-backup/gbc/pgrun"
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
		e.user.Apply(cmd)
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
	return sampleRSS(func(p pgrun.ProcInfo) bool { return p.PGRP == pgid }, stop)
}

// sampleToolRSS is sampleGroupRSS over every process whose command line
// holds program, whatever its process group or session: detached workers
// (gbc's archive pusher, pgBackRest's async archive-push) count with the
// calls PostgreSQL makes.
func sampleToolRSS(program string, stop <-chan struct{}) int64 {
	self := os.Getpid() // its --tools may name the program
	return sampleRSS(func(p pgrun.ProcInfo) bool {
		if p.PID == self {
			return false
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/cmdline")
		return err == nil && bytes.Contains(b, []byte(program))
	}, stop)
}

// sampleRSS returns the peak, over samples taken every rssInterval until
// stop closes, of the summed resident set of the processes match accepts.
func sampleRSS(match func(pgrun.ProcInfo) bool, stop <-chan struct{}) int64 {
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

// rssPages sums the resident set over the processes match accepts.
func rssPages(match func(pgrun.ProcInfo) bool) int64 {
	var sum int64
	for _, p := range pgrun.ProcTable() {
		if match(p) {
			sum += p.RSSPages
		}
	}
	return sum
}

// startBackground starts a server process (MinIO) as the harness's own
// user, in its own process group, its output going to logPath; close
// stops it.
func (e *env) startBackground(name string, argv []string, extraEnv []string, logPath string) (*pgrun.Process, error) {
	p, err := pgrun.StartProcess(pgrun.ProcessSpec{
		Name:    name,
		Path:    argv[0],
		Args:    argv[1:],
		Env:     append(append([]string{}, e.procEnv...), extraEnv...),
		Dir:     e.dir,
		LogPath: logPath,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e.track(p)
	return p, nil
}
