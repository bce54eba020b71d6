package backupcmd

import (
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/gbc-backup/gbc/backup"
)

// progressEvents returns what renders a backup's events on stderr: a
// progress bar when stderr is a terminal, and nil otherwise or with -q, so
// that the backup neither estimates its size nor sends events. A log file
// or a cron mail gets no bar; it gets the one summary line that ends a
// backup ("backup X DONE in ..."), which the command logs at every
// verbosity but -q.
func progressEvents(stderr *os.File, quiet bool) func(backup.Event) {
	if quiet || !term.IsTerminal(int(stderr.Fd())) {
		return nil
	}
	return (&progressView{w: stderr}).event
}

// progressView draws backup.Progress events as one bar, rewritten in
// place. Its events come from one goroutine at a time (see
// backup.Options.Events), so it needs no lock.
type progressView struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (v *progressView) event(ev backup.Event) {
	p, ok := ev.(backup.Progress)
	if !ok {
		return
	}
	if v.bar == nil {
		v.bar = newBar(v.w, p.Total)
	}
	// The total is an estimate, which the copy may pass: the bar then
	// stays just short of its end, as "about" the total, rather than
	// claim that the copy is done.
	if p.Total > 0 && p.Done >= v.bar.GetMax64() {
		v.bar.ChangeMax64(p.Done + 1)
	}
	_ = v.bar.Set64(p.Done) // a display's error is no backup's
	if p.End {
		_ = v.bar.Exit()
		fmt.Fprintln(v.w) // the lines that follow start on their own
		v.bar = nil
	}
}

// newBar is a bar of total bytes, or of a count and rate when the total
// is unknown (0).
func newBar(w io.Writer, total int64) *progressbar.ProgressBar {
	if total <= 0 {
		total = -1
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("reading"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetPredictTime(true),
		// No spinner goroutine: the events drive every redraw.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
}
