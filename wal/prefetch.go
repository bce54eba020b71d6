package wal

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
)

// Prefetch: recovery calls restore_command once per segment and waits for
// each, so replay is bound by one round trip per 16 MiB. After a segment is
// restored, the next ones are downloaded in the background into a spool
// directory next to the destination (inside pg_wal), and the calls that ask
// for them find them there.
//
// A spool file is named <segment>.<xxh3-128 of its content> and appears
// only once complete (temporary file, sync, rename), after its sha256 was
// verified against the store's. A call trusts it only after fingerprinting
// it again (see digest), and only if the spool's .source names the same
// store and server; it then renames the file onto the destination, so the
// destination is always a verified full copy. Files for segments older than
// the one asked for, or older than spoolMaxAge, are removed.

const (
	spoolDirName = ".gbc-prefetch"
	// spoolMaxAge bounds how long a prefetched segment waits: after a
	// promotion or a reached recovery target, nothing will ask for it.
	spoolMaxAge = time.Hour
	// spoolSource names the store and server the spool holds files of.
	spoolSource = ".source"
	// spoolLock is held (flock) by the one running prefetcher.
	spoolLock = ".lock"
	// SpoolLog is where a detached prefetcher's messages go, since it has
	// no terminal and PostgreSQL does not wait for it.
	SpoolLog = ".log"
)

// SpoolDir is the prefetch spool used by restores to dest.
func SpoolDir(dest string) string {
	return filepath.Join(filepath.Dir(dest), spoolDirName)
}

type spool struct {
	dir      string
	identity string
	log      *slog.Logger
}

func newSpool(dest, target string, layout catalog.Layout, log *slog.Logger) spool {
	return spool{dir: SpoolDir(dest), identity: markerIdentity(target, layout), log: orNop(log)}
}

// spoolEntry parses a spool file name, <segment>.<fingerprint>.
func spoolEntry(file string) (Name, string, bool) {
	if len(file) != 24+1+fingerprintLen || file[24] != '.' {
		return Name{}, "", false
	}
	n, err := ParseName(file[:24])
	if err != nil || n.Kind != Segment {
		return Name{}, "", false
	}
	sum := file[25:]
	for i := 0; i < len(sum); i++ {
		if c := sum[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return Name{}, "", false
		}
	}
	return n, sum, true
}

// Whose files the spool holds.
const (
	sourceMissing = iota // no .source: nothing was spooled yet
	sourceOther          // another store or server
	sourceOurs
)

// source tells whose files the spool holds.
func (sp spool) source() int {
	data, err := os.ReadFile(filepath.Join(sp.dir, spoolSource))
	switch {
	case err != nil:
		return sourceMissing
	case string(data) != sp.identity:
		return sourceOther
	}
	return sourceOurs
}

// take moves a verified copy of name from the spool onto dest, reporting
// its size. Any spool file for name that does not verify is removed, and so
// are files for segments before name (recovery has moved past them) and
// files older than spoolMaxAge.
func (sp spool) take(name Name, dest string) (int64, bool) {
	entries, err := os.ReadDir(sp.dir)
	if err != nil {
		return 0, false
	}
	// Names of one cluster share one segment size, so the log and segment
	// halves order them as their segment numbers do, whatever the size.
	pos := name.String()[8:]
	sp.remove(entries, func(n Name, _ fs.DirEntry) bool { return n.String()[8:] < pos })
	switch sp.source() {
	case sourceMissing:
		// A prefetcher that has just started has not written it yet.
		return 0, false
	case sourceOther:
		debugf(sp.log, "the prefetch spool holds files of another store or server: emptying it")
		sp.remove(entries, func(Name, fs.DirEntry) bool { return true })
		return 0, false
	}
	prefix := name.String() + "."
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		n, want, ok := spoolEntry(e.Name())
		if !ok || n != name {
			continue
		}
		path := filepath.Join(sp.dir, e.Name())
		fp, size, err := fingerprintFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // too old, removed above
		}
		if err != nil || fp != want || !ValidSegmentSize(size) {
			warnf(sp.log, "prefetched %s does not match its checksum: fetching it again", name)
			os.Remove(path)
			continue
		}
		if err := os.Rename(path, dest); err != nil {
			debugf(sp.log, "move prefetched %s into place: %v", name, err)
			return 0, false
		}
		return size, true
	}
	return 0, false
}

// remove deletes the spool files for which stale says so, and those older
// than spoolMaxAge, including leftover temporary files.
func (sp spool) remove(entries []fs.DirEntry, stale func(Name, fs.DirEntry) bool) {
	now := time.Now()
	for _, e := range entries {
		switch e.Name() {
		case spoolSource, spoolLock, SpoolLog:
			continue
		}
		n, _, ok := spoolEntry(e.Name())
		if (ok && stale(n, e)) || olderThan(e, now, spoolMaxAge) {
			if err := os.Remove(filepath.Join(sp.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				debugf(sp.log, "remove stale prefetched file: %v", err)
			}
		}
	}
}

// cleanOldSpool removes spool files older than spoolMaxAge from the WAL
// directory walDir. gbc-wal-archive calls it: after a promotion, nothing
// restores into that pg_wal any more, and leftovers would stay forever.
func cleanOldSpool(walDir string, log *slog.Logger) {
	sp := spool{dir: filepath.Join(walDir, spoolDirName), log: orNop(log)}
	entries, err := os.ReadDir(sp.dir)
	if err != nil {
		return
	}
	sp.remove(entries, func(Name, fs.DirEntry) bool { return false })
}

// spooled returns the set of segment names present in the spool.
func (sp spool) spooled() map[string]bool {
	entries, err := os.ReadDir(sp.dir)
	if err != nil {
		return nil
	}
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		if n, _, ok := spoolEntry(e.Name()); ok {
			have[n.String()] = true
		}
	}
	return have
}

// wanted lists the count segments after from that are not spooled yet.
func (sp spool) wanted(from Name, segSize int64, count int) ([]Name, error) {
	have := sp.spooled()
	if sp.source() != sourceOurs {
		have = nil
	}
	var todo []Name
	n := from
	for range count {
		next, err := n.Next(segSize)
		if err != nil {
			return todo, err
		}
		n = next
		if !have[n.String()] {
			todo = append(todo, n)
		}
	}
	return todo, nil
}

// busy tells whether a prefetcher holds the spool's lock right now.
func (sp spool) busy() bool { return workerRunning(filepath.Join(sp.dir, spoolLock)) }

// ShouldPrefetch tells whether starting a prefetcher after restoring from to
// dest is worth its cost: none is running, and the next segment or at least
// half of the next count are missing from the spool. Starting one per call
// would cost a process start for each segment; waiting for half keeps
// downloads batched while the spool stays ahead of recovery.
func ShouldPrefetch(dest string, from Name, segSize int64, count int, target string, layout catalog.Layout) bool {
	if count <= 0 || from.Kind != Segment || !ValidSegmentSize(segSize) {
		return false
	}
	sp := newSpool(dest, target, layout, nil)
	todo, err := sp.wanted(from, segSize, count)
	if err != nil || len(todo) == 0 {
		return false
	}
	next, err := from.Next(segSize)
	if err != nil {
		return false
	}
	if todo[0] != next && len(todo) < (count+1)/2 {
		return false
	}
	return !sp.busy()
}

// PrefetchOptions tune Prefetch.
type PrefetchOptions struct {
	Count  int // how many segments after the one restored to fetch
	Jobs   int // parallel downloads
	Target string
	// Log gets warnings and, at the debug level, details; nil is silent.
	Log *slog.Logger
}

// Prefetch downloads the Count segments after from (same timeline,
// segments of segSize bytes) that are not spooled yet into the spool of
// dest, Jobs at a time, and returns the names it fetched. It stops at the
// first segment that is not archived. Only one prefetcher works on a spool:
// if another holds the lock, Prefetch returns at once.
func Prefetch(ctx context.Context, open Opener, layout catalog.Layout, dest string, from Name, segSize int64, opts PrefetchOptions) ([]string, error) {
	log := orNop(opts.Log)
	if err := checkSegmentSize(segSize); err != nil {
		return nil, err
	}
	sp := newSpool(dest, opts.Target, layout, log)
	if err := os.Mkdir(sp.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create prefetch spool: %w", err)
	}
	lock, err := takeWorkerLock(filepath.Join(sp.dir, spoolLock))
	if err != nil {
		return nil, err
	}
	if lock == nil {
		debugf(log, "another prefetcher is running")
		return nil, nil
	}
	defer lock.Close() // releases the lock
	if sp.source() != sourceOurs {
		if entries, err := os.ReadDir(sp.dir); err == nil {
			sp.remove(entries, func(Name, fs.DirEntry) bool { return true })
		}
		if err := renameio.WriteFile(filepath.Join(sp.dir, spoolSource), []byte(sp.identity), 0o600, renameio.WithTempDir(sp.dir)); err != nil {
			return nil, fmt.Errorf("write prefetch spool source: %w", err)
		}
	}
	todo, err := sp.wanted(from, segSize, opts.Count)
	if len(todo) == 0 {
		return nil, err
	}

	store, err := open(ctx)
	if err != nil {
		return nil, err
	}
	defer store.Close()

	jobs := max(1, min(opts.Jobs, len(todo)))
	var (
		mu      sync.Mutex
		stopAt  = len(todo) // index of the first segment not to fetch
		fetched []string
		wg      sync.WaitGroup
	)
	next := make(chan int)
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				mu.Lock()
				skip := i >= stopAt
				mu.Unlock()
				if skip {
					continue
				}
				err := sp.fetch(ctx, store, layout, todo[i])
				mu.Lock()
				if err != nil {
					stopAt = min(stopAt, i)
					if !errors.Is(err, ErrNotArchived) {
						warnf(log, "prefetch %s: %v", todo[i], err)
					}
				} else {
					fetched = append(fetched, todo[i].String())
				}
				mu.Unlock()
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	return fetched, nil
}

// fetch downloads name into the spool under its checksum.
func (sp spool) fetch(ctx context.Context, store cloud.Store, layout catalog.Layout, name Name) error {
	key, attrs, err := locate(ctx, store, layout, name.String())
	if err != nil {
		return err
	}
	tmp, d, err := download(ctx, store, key, attrs, name, sp.dir, sp.log)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(sp.dir, name.String()+"."+d.fingerprint())); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool %s: %w", name, err)
	}
	debugf(sp.log, "prefetched %s", name)
	return nil
}
