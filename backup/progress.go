package backup

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// progress counts the bytes read and, when Options.Progress is set, shows
// them on one line rewritten with \r twice a second.
type progress struct {
	total int64
	done  atomic.Int64
	start time.Time
	once  sync.Once
	quit  chan struct{}
	ended chan struct{}
	show  func(format string, args ...any)
}

func (r *run) startProgress(total int64) *progress {
	p := &progress{total: total, start: time.Now(), quit: make(chan struct{}), ended: make(chan struct{})}
	if r.o.Progress == nil {
		close(p.ended)
		return p
	}
	w := r.o.Progress
	p.show = func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	go p.loop()
	return p
}

func (p *progress) add(n int64) { p.done.Add(n) }

func (p *progress) loop() {
	defer close(p.ended)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			p.print()
			p.show("\n")
			return
		case <-t.C:
			p.print()
		}
	}
}

func (p *progress) print() {
	done := p.done.Load()
	rate := float64(done) / max(time.Since(p.start).Seconds(), 0.001)
	if p.total > 0 {
		pct := min(100*float64(done)/float64(p.total), 99.9)
		p.show("\r%s of about %s (%4.1f%%), %s/s   ", mib(done), mib(p.total), pct, mib(int64(rate)))
		return
	}
	p.show("\r%s, %s/s   ", mib(done), mib(int64(rate)))
}

// stop ends the progress line; it may be called more than once.
func (p *progress) stop() {
	p.once.Do(func() { close(p.quit) })
	<-p.ended
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
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
