package harness

import (
	"github.com/gbc-backup/gbc/pgrun"
)

// proc is one long-running child process of the harness: a server, run
// by pgrun (its own process group, a parent-death signal, every
// descendant killed with it) and known to the registry, so that Main stops
// it whatever happens.
type proc struct{ *pgrun.Process }

// startProc starts a server process and registers it.
func startProc(s pgrun.ProcessSpec) (*proc, error) {
	p, err := pgrun.StartProcess(s)
	if err != nil {
		return nil, err
	}
	if err := reg.track(p); err != nil {
		return nil, err
	}
	return &proc{p}, nil
}

// kill kills the process and everything it started, and forgets it.
func (p *proc) kill() {
	p.Kill()
	reg.untrack(p.Process)
}
