package backup

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is what a backup reports while it runs, to Options.Events: the
// caller decides what to show and how (gbc-backup draws a progress bar on
// a terminal and nothing elsewhere). The backup itself never draws.
type Event interface{ event() }

// Progress: Done bytes of the cluster's files are read, of about Total
// (an estimate; 0 when there is none, and Done may pass it). It is sent
// about twice a second while the files are copied, and once more with End
// set when the copy ends, whether it completed or failed: a display ends
// its line there, before the lines that follow.
type Progress struct {
	Done, Total int64
	End         bool
}

func (Progress) event() {}

// progressEvery is how often Progress is sent: often enough for a display
// to look alive, rarely enough to cost nothing.
const progressEvery = 500 * time.Millisecond

// progress counts the bytes read and, when Options.Events is set, sends
// them as Progress events from one goroutine.
type progress struct {
	total int64
	done  atomic.Int64
	once  sync.Once
	quit  chan struct{}
	ended chan struct{}
	emit  func(Event)
}

func (r *run) startProgress(total int64) *progress {
	p := &progress{total: total, quit: make(chan struct{}), ended: make(chan struct{}), emit: r.o.Events}
	if p.emit == nil {
		close(p.ended)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) add(n int64) { p.done.Add(n) }

func (p *progress) loop() {
	defer close(p.ended)
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			p.emit(Progress{Done: p.done.Load(), Total: p.total, End: true})
			return
		case <-t.C:
			p.emit(Progress{Done: p.done.Load(), Total: p.total})
		}
	}
}

// stop sends the last Progress and waits for it; it may be called more
// than once.
func (p *progress) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.ended
}

// pipelineConfig is the pipeline of this backup.
func (r *run) pipelineConfig(progress func(int64)) pipelineConfig {
	return pipelineConfig{
		Store:       r.o.Store,
		Layout:      r.layout,
		ID:          r.rec.ID,
		Codec:       r.o.Codec,
		Level:       r.o.Level,
		Jobs:        r.o.Jobs,
		MaxPartSize: r.o.MaxPartSize,
		Uploads:     2,
		Progress:    progress,
	}
}
