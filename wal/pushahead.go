package wal

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/compress"
)

// Push-ahead: when PostgreSQL's archiver is behind (several segments
// .ready), the call for the oldest starts one pusher in the background
// (gbc-wal-archive runs it as a detached process). The pusher keeps one
// store client, pushes every .ready segment after that call's, in order and
// Jobs at a time, and leaves a marker for each (see lookahead.go); it
// watches archive_status for new ones and exits once none came for a
// while. PostgreSQL's calls for those segments then only check the file
// against its marker, waiting for the pusher if it is still at work on
// theirs. The archiver is thus never bound by one upload's latency, both
// cores stay busy while it walks its queue, and a call that is answered
// costs a process start and a fingerprint (about 1 ms per 16 MiB).
//
// The pusher takes .gbc-archived/.lock (flock) for its whole life, so only
// one runs per WAL directory, and records in .gbc-archived/.pusher which
// store it pushes to and after which segment; a call waits for it only if
// both cover its own segment. Any failure stops the pusher: the calls then
// push their segments themselves and report the error to PostgreSQL.

const (
	pusherLockFile  = ".lock"
	pusherStateFile = ".pusher"
	// PusherLog is where a detached pusher's messages go (inside the marker
	// directory), since it has no terminal and PostgreSQL does not wait for
	// it.
	PusherLog = ".log"

	// pusherIdle is how long a pusher waits for a new .ready segment before
	// it exits: long enough to ride out the gaps of a busy server, short
	// enough that an idle one keeps no process around.
	pusherIdle = 5 * time.Second
	// pusherPoll is how often a pusher looks at archive_status, and how
	// often a waiting call looks for its marker.
	pusherPoll = 10 * time.Millisecond
	// pusherLifetime bounds one pusher's life, so that a changed
	// configuration, credentials or gbc binary is picked up by the next.
	pusherLifetime = 10 * time.Minute
	// pusherWait bounds how long a call waits for a running pusher to store
	// its segment before pushing it itself (which is safe: an identical
	// object already stored counts as success).
	pusherWait = 2 * time.Minute
)

// MarkerDir is the directory of look-ahead markers (and of the pusher's
// lock, state and log) for the WAL directory walDir.
func MarkerDir(walDir string) string { return filepath.Join(walDir, markerDir) }

// pusherState is what a running pusher records for the calls.
type pusherState struct {
	After    string `json:"after"`    // it pushes the segments after this one
	Identity string `json:"identity"` // store and server (markerIdentity)
}

// pusher reports whether a pusher holds the lock now, and its state if it
// has recorded one.
func (la lookAhead) pusher() (pusherState, bool) {
	if !workerRunning(filepath.Join(la.dir, markerDir, pusherLockFile)) {
		return pusherState{}, false
	}
	var st pusherState
	data, err := os.ReadFile(filepath.Join(la.dir, markerDir, pusherStateFile))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		// It has just started and not written its state yet.
		return pusherState{}, true
	}
	return st, true
}

// covers tells whether the running pusher in st will push name.
func (la lookAhead) covers(st pusherState, name Name) bool {
	return st.Identity == la.identity && st.After != "" && name.String() > st.After
}

// await waits while a running pusher covers name for name's marker, and
// reports whether the marker answered for the file. It gives up when the
// pusher stops, when a marker for name does not vouch for the file, when
// name is not .ready (a call by hand, which the pusher would not serve), or
// after pusherWait.
func (la lookAhead) await(ctx context.Context, name Name) bool {
	deadline := time.Now().Add(pusherWait)
	for {
		switch la.check(name) {
		case markerTrusted:
			return true
		case markerRejected:
			return false
		}
		st, running := la.pusher()
		if !running {
			// It may have stored name and stopped since the look above.
			return la.check(name) == markerTrusted
		}
		if st.After != "" && !la.covers(st, name) {
			return false
		}
		if _, err := os.Stat(filepath.Join(la.dir, "archive_status", name.String()+".ready")); err != nil {
			return false
		}
		if time.Now().After(deadline) {
			warnf(la.log, "the background pusher has not stored %s after %s: pushing it here", name, pusherWait)
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pusherPoll):
		}
	}
}

// PushAheadOptions tune PushAhead.
type PushAheadOptions struct {
	Codec  compress.Codec
	Level  int
	Jobs   int    // segments pushed at once
	Target string // as ArchiveOptions.Target
	// Idle is how long to wait for a new .ready segment before returning;
	// 0 means pusherIdle.
	Idle time.Duration
	// Log gets warnings and, at the debug level, details; nil is silent.
	Log *slog.Logger
}

// PushAhead is the background pusher: it pushes the segments of walDir
// that PostgreSQL has marked .ready and that come after after, Jobs at a
// time and oldest first, leaving a marker for each, until none came for
// opts.Idle, the first failure, or pusherLifetime. It returns the names it
// stored. If another pusher runs on walDir, it returns at once.
func PushAhead(ctx context.Context, open Opener, layout catalog.Layout, walDir string, after Name, opts PushAheadOptions) ([]string, error) {
	log := orNop(opts.Log)
	la := lookAhead{dir: walDir, identity: markerIdentity(opts.Target, layout), log: log}
	dir := filepath.Join(walDir, markerDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create look-ahead marker directory: %w", err)
	}
	lock, err := takeWorkerLock(filepath.Join(dir, pusherLockFile))
	if err != nil {
		return nil, err
	}
	if lock == nil {
		debugf(log, "another pusher is running")
		return nil, nil
	}
	defer lock.Close() // releases the lock
	state, err := json.Marshal(pusherState{After: after.String(), Identity: la.identity})
	if err != nil {
		return nil, fmt.Errorf("encode pusher state: %w", err)
	}
	if err := renameio.WriteFile(filepath.Join(dir, pusherStateFile), state, 0o600, renameio.WithTempDir(dir)); err != nil {
		return nil, fmt.Errorf("write pusher state: %w", err)
	}

	store, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	p := pusher{store: store, layout: layout, codec: opts.Codec, level: opts.Level, log: log}

	// The workers stop at the first failure (errgroup cancels gctx), and
	// so does the feeding below: the calls then push their segments
	// themselves and report the error to PostgreSQL.
	g, gctx := errgroup.WithContext(ctx)
	var (
		mu     sync.Mutex
		stored []string
	)
	todo := make(chan Name)
	for range max(1, opts.Jobs) {
		p := p
		p.scratch = &scratch{}
		g.Go(func() error {
			for n := range todo {
				done, err := p.push(gctx, filepath.Join(walDir, n.String()), n)
				if err == nil {
					err = la.mark(n, done)
				}
				if err != nil {
					return fmt.Errorf("push %s ahead: %w", n, err)
				}
				mu.Lock()
				stored = append(stored, n.String())
				mu.Unlock()
			}
			return nil
		})
	}

	// Feed the workers in order. cursor is the newest segment handed out:
	// later scans only look past it, since a segment stays .ready (and may
	// lose its marker to PostgreSQL's call) until its call returns.
	cursor, idleSince, retire := after, time.Now(), time.Now().Add(pusherLifetime)
	idle := cmp.Or(opts.Idle, pusherIdle)
feed:
	for time.Now().Before(retire) {
		names := la.ready(cursor, 64)
		if len(names) == 0 {
			if time.Since(idleSince) > idle {
				break
			}
			select {
			case <-gctx.Done():
				break feed
			case <-time.After(pusherPoll):
			}
			continue
		}
		for _, n := range names {
			select {
			case todo <- n:
				cursor = n
			case <-gctx.Done():
				break feed
			}
		}
		idleSince = time.Now()
	}
	close(todo)
	err = g.Wait()
	if ctx.Err() != nil {
		err = nil // stopped from outside, not a failure to report
	}
	return stored, err
}
