package cli

import (
	"path/filepath"

	"github.com/gbc-backup/gbc/cloud"
)

// HandOff replaces this process by the full gbc binary, run with argv
// (argv[0] naming the command, as the multi-call binary dispatches on it),
// the same environment and the same open files: exec(2), so that the
// process id, the exit status, signals and stdin, stdout and stderr are
// the full binary's own, as if it had been started in the first place.
// It returns only when that fails.
type HandOff func(argv []string) error

// RunFront is Run for a front binary that links only some of the store
// providers (cmd/gbc-wal, which links file:// alone, so that it starts in
// a fraction of the full binary's time). A command that finds its store
// not linked (Env.Serves, or cloud.ErrNotLinked from Env.OpenStore) ends,
// and handOff runs the full binary in its place with the same arguments.
// Commands must therefore do nothing before they open such a store that
// the full binary would not do again (see Env.Serves).
//
// self is the front's own name: started under it, the front takes the
// command from its first argument, as gbc does.
func RunFront(self string, cmds []*Command, argv []string, handOff HandOff) int {
	return run(cmds, argv, self, handOff)
}

// Serves reports whether this program opens the store at rawURL itself.
// The full gbc binary serves every store; a front (RunFront) serves the
// providers it links, and for the others a command answers only what needs
// no store (a look-ahead marker, a prefetched segment), starts no
// background worker, and returns NotServed, or the error of OpenStore,
// upon which the full binary takes the call over.
func (e *Env) Serves(rawURL string) bool { return cloud.Linked(rawURL) }

// NotServed is the error with which a command hands a call about the store
// at rawURL over to the full binary (see Serves).
func NotServed(rawURL string) error {
	return Usagef("store URL %q: %w", rawURL, cloud.ErrNotLinked)
}

// handOffArgv is the command line the full binary gets: this one, with
// the command's name first where this process was started as the front
// itself (gbc-wal wal-archive ...), since the full binary dispatches on
// argv[0] and knows no command "gbc-wal".
func handOffArgv(name string, argv []string) []string {
	out := append([]string(nil), argv...)
	if filepath.Base(out[0]) != name {
		out[0] = name
	}
	return out
}
