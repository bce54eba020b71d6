package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/gbc-backup/gbc/cloud"
)

// Version and Commit are set at link time (-ldflags -X) by make and goreleaser.
var (
	Version = "dev"
	Commit  = "none"
)

// Command is one gbc-* program.
type Command struct {
	Name        string // program name, e.g. "gbc-wal-archive"
	Usage       string // one line: what it does
	ArgsUsage   string // e.g. "STORE_URL SERVER_NAME WAL_PATH"
	Description string // the longer help, with examples
	MinArgs     int
	MaxArgs     int // -1: no upper bound
	Flags       []ucli.Flag
	// Action does the work. Errors are printed as one line and mapped to an
	// exit code by CodeOf; wrap them with Exit to choose the code.
	Action func(ctx context.Context, e *Env) error
	// ExitCode lets a command override the mapping of its errors, as
	// gbc-wal-restore does to keep "absent" apart from "unreachable".
	ExitCode func(err error) int
	// RetryTimeout is the command's --retry-timeout when none is given;
	// 0 means cloud.DefaultRetryTimeout. PostgreSQL's own commands get a
	// short one, since PostgreSQL waits for them (see Env.Bound).
	RetryTimeout time.Duration
}

// Env is what an Action gets: parsed flags, positional arguments, output.
type Env struct {
	*ucli.Context
	Name   string
	Args   []string
	Stdout io.Writer
	Log    *Logger

	retryDefault time.Duration
	// bound is the limit Bound set on the whole call, or 0.
	bound time.Duration
}

// Run dispatches on the program name (argv[0] is gbc-<cmd> through a link) or,
// for the plain gbc binary, on the first argument, and returns the exit code.
func Run(cmds []*Command, argv []string) int {
	return run(cmds, argv, "gbc", nil)
}

// run is Run for the program self ("gbc", or a front's own name).
func run(cmds []*Command, argv []string, self string, handOff HandOff) int {
	name := filepath.Base(argv[0])
	if name == self || !strings.HasPrefix(name, "gbc-") {
		if len(argv) < 2 || argv[1] == "-h" || argv[1] == "--help" || argv[1] == "help" {
			printTopHelp(os.Stdout, cmds)
			return ExitOK
		}
		switch argv[1] {
		case "--list-commands":
			for _, c := range cmds {
				fmt.Println(c.Name)
			}
			return ExitOK
		case "--version", "-version", "version":
			fmt.Printf("gbc %s\n", versionString())
			return ExitOK
		}
		name = argv[1]
		if !strings.HasPrefix(name, "gbc-") {
			name = "gbc-" + name
		}
		argv = argv[1:]
	}
	for _, c := range cmds {
		if c.Name == name {
			return c.run(argv, handOff)
		}
	}
	fmt.Fprintf(os.Stderr, "gbc: unknown command %q: run \"gbc --help\" for the list\n", name)
	return ExitUsage
}

func versionString() string {
	return fmt.Sprintf("%s (commit %s, %s %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func printTopHelp(w io.Writer, cmds []*Command) {
	fmt.Fprintf(w, "gbc %s: PostgreSQL backup and point-in-time recovery to object storage.\n\n", Version)
	fmt.Fprintln(w, "Commands (run as gbc-<command>, or gbc <command>):")
	sorted := append([]*Command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-24s %s\n", c.Name, c.Usage)
	}
	fmt.Fprintln(w, "\nEach command has --help with examples.")
}

func (c *Command) run(argv []string, handOff HandOff) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var env *Env

	app := &ucli.App{
		Name:            c.Name,
		Usage:           c.Usage,
		ArgsUsage:       c.ArgsUsage,
		Description:     c.Description,
		Version:         versionString(),
		Flags:           append(append([]ucli.Flag(nil), c.Flags...), verbosityFlags()...),
		HideHelpCommand: true,
		// urfave/cli's own --version flag takes -v, which is --verbose
		// here (defining both panics): verbosityFlags has a --version
		// without the alias, handled in Action.
		HideVersion: true,
		// Errors are printed and mapped to exit codes below, in one place,
		// instead of urfave/cli calling os.Exit on its own.
		ExitErrHandler: func(*ucli.Context, error) {},
		OnUsageError: func(_ *ucli.Context, err error, _ bool) error {
			return Exit(ExitUsage, fmt.Errorf("%w (see --help)", explainParseError(c.Flags, err)))
		},
		Action: func(cc *ucli.Context) error {
			if cc.Bool("version") {
				fmt.Printf("%s %s\n", c.Name, versionString())
				return nil
			}
			args := cc.Args().Slice()
			if len(args) < c.MinArgs || (c.MaxArgs >= 0 && len(args) > c.MaxArgs) {
				return Usagef("expected arguments %s, got %d (see --help)", c.ArgsUsage, len(args))
			}
			env = &Env{Context: cc, Name: c.Name, Args: args, Stdout: os.Stdout, Log: newLogger(os.Stderr, c.Name, cc), retryDefault: c.RetryTimeout}
			return c.Action(cc.Context, env)
		},
	}
	err := app.RunContext(ctx, argv)
	if handOff != nil && errors.Is(err, cloud.ErrNotLinked) && ctx.Err() == nil {
		// Nothing was done that the full binary would not do again:
		// it gets the call as this process got it, and on success never
		// returns here (exec resets the signal handlers).
		err = fmt.Errorf("%w; the full gbc binary, which links every provider, could not take over: %w", err, handOff(handOffArgv(c.Name, argv)))
	}
	if err == nil {
		return ExitOK
	}
	if env != nil && env.bound > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		advice := " (check that it is up and reachable)"
		if errors.Is(err, cloud.ErrTransient) {
			advice = "" // the store's error says so already
		}
		err = fmt.Errorf("gave up: the store did not complete the operation within --retry-timeout %v%s: %w", env.bound, advice, err)
	}
	code := CodeOf(err)
	if c.ExitCode != nil {
		code = c.ExitCode(err)
	}
	if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("interrupted: %w", err)
	}
	if !errors.Is(err, errQuiet) {
		printError(os.Stderr, c.Name, err, env != nil && env.Log.Verbose())
	}
	return code
}

// printError writes err as the one line PostgreSQL's log and scripts get.
// A store's error names the operation, the object, the class of failure
// and what to do; the provider's own answer, often hundreds of characters
// of request ids and XML, goes on lines of its own before it, with -v.
func printError(w io.Writer, name string, err error, verbose bool) {
	details := storeDetails(err)
	msg := oneLine(err.Error())
	if len(details) > 0 {
		if verbose {
			for _, d := range details {
				fmt.Fprintf(w, "%s: the store's answer to %s\n", name, oneLine(d))
			}
		} else {
			msg += " (-v shows the store's full answer)"
		}
	}
	fmt.Fprintf(w, "%s: error: %s\n", name, msg)
}

// storeDetails returns the provider's full answer of every store error in
// err's tree, each once.
func storeDetails(err error) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if ce, ok := err.(*cloud.Error); ok {
			if d := ce.Detail(); d != "" && !seen[d] {
				seen[d] = true
				out = append(out, ce.Op+" "+ce.URL+": "+d)
			}
			return // its own tree is the SDK's
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// explainParseError rewords the flag package's "invalid value "5" for
// flag -wal-timeout: parse error" into a line naming the option as it is
// written and what it accepts.
func explainParseError(flags []ucli.Flag, err error) error {
	if m := parseErrRE.FindStringSubmatch(err.Error()); m != nil {
		if want := accepts(flags, m[2]); want != "" {
			return fmt.Errorf("--%s %q: give %s", m[2], m[1], want)
		}
	}
	if m := envErrRE.FindStringSubmatch(err.Error()); m != nil {
		if want := accepts(flags, m[3]); want != "" {
			return fmt.Errorf("%s=%q (--%s): give %s", m[2], m[1], m[3], want)
		}
	}
	return err
}

var (
	parseErrRE = regexp.MustCompile(`^invalid value "(.*)" for flag -([\w-]+): parse error$`)
	envErrRE   = regexp.MustCompile(`^could not parse "(.*)" as \w+ value from environment variable "(\w+)" for flag ([\w-]+): `)
)

// accepts describes the values the named flag takes, or "" if unknown.
func accepts(flags []ucli.Flag, name string) string {
	for _, f := range append(flags, verbosityFlags()...) {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		switch f.(type) {
		case *ucli.DurationFlag:
			return "a duration with its unit, such as 90s, 5m or 1h30m"
		case *ucli.IntFlag:
			return "a whole number"
		case *ucli.BoolFlag:
			return "true or false, or the option alone"
		}
	}
	return ""
}

// oneLine keeps an error to one line, since PostgreSQL's log shows an
// archive or restore command's stderr line by line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
