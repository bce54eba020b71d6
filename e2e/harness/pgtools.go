package harness

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Command prepares a PostgreSQL program (from BinDir, else PATH) to run as
// PGUser with the server's environment (so PGHOST etc. point at this
// cluster), in its own process group. Use it when the test wants the exit
// status; Run for the common case.
func (c *Cluster) Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	path, err := c.pg.Program(name)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = c.serverEnv()
	cmd.Dir = c.base
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.user.Apply(cmd)
	return cmd
}

// Run runs a PostgreSQL program (pg_verifybackup, pg_amcheck, psql,
// initdb...) as PGUser against this cluster and returns its combined
// output. A non-zero exit fails the test.
func (c *Cluster) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := c.Command(t, name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("harness: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("$ %s %s  # %v", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return string(out)
}

// PgBench runs pgbench against this cluster, e.g. PgBench(t, "-i", "-s",
// "5") or PgBench(t, "-c", "4", "-T", "10").
func (c *Cluster) PgBench(t testing.TB, args ...string) string {
	t.Helper()
	return c.Run(t, "pgbench", args...)
}

// RunGBC runs a gbc command as PGUser, the way PostgreSQL or the DBA's cron
// job would, in the cluster's directory, with this cluster's libpq
// variables (PGHOST, PGPORT...) and its Env, plus env. See the package
// RunGBC.
func (c *Cluster) RunGBC(t testing.TB, env []string, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	r := c.RunGBCWith(t, RunOptions{Env: env}, args...)
	return r.Stdout, r.Stderr, r.ExitCode
}

// RunGBCWith is Cluster.RunGBC with options; AsPG is implied, and Dir
// defaults to the cluster's directory.
func (c *Cluster) RunGBCWith(t testing.TB, opts RunOptions, args ...string) Result {
	t.Helper()
	opts.AsPG = true
	opts.Env = append(append(append([]string{"HOME=" + c.base}, c.Env()...), c.opts.Env...), opts.Env...)
	if opts.Dir == "" {
		opts.Dir = c.base
	}
	return RunGBCWith(t, opts, args...)
}
