package wal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/gbc-backup/gbc/catalog"
)

// Look-ahead: PostgreSQL calls archive_command once per segment, one at a
// time, so a busy server is bound by the latency of one upload. A
// background pusher (pushahead.go) stores the segments PostgreSQL has
// marked .ready before it asks for them, and records each in a marker file.
// When PostgreSQL then asks for one of them, the marker answers at once.
//
// Safety: a marker only says "this content went to this store". It is
// trusted only after the file on disk is fingerprinted again and matches
// the recorded fingerprint and size, the marker names the same store and server,
// and it is younger than markerMaxAge; otherwise the file is pushed as usual
// (which costs little if it is already stored). A marker is written only
// after its object is stored in full, and consumed (removed) on use. gbc
// never renames .ready to .done itself: that stays PostgreSQL's bookkeeping.

const (
	// markerDir lives inside pg_wal, next to the segments, so that it needs
	// no configuration and renames stay within one file system. PostgreSQL
	// ignores entries in pg_wal whose names are not WAL file names.
	markerDir = ".gbc-archived"
	// markerMaxAge bounds how long a marker is trusted. PostgreSQL normally
	// asks within seconds; after hours, something changed (a restore, a
	// failover, an operator's hand) and the usual push decides.
	markerMaxAge = 6 * time.Hour
)

type marker struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	// Fingerprint is the content's xxh3-128: what the file on disk is
	// checked against before the marker is trusted (see digest).
	Fingerprint string    `json:"xxh3"`
	Size        int64     `json:"size"`
	Identity    string    `json:"identity"`
	Time        time.Time `json:"time"`
}

// lookAhead manages the markers of one WAL directory.
type lookAhead struct {
	dir      string // the WAL directory (pg_wal)
	identity string // store and server the markers must name
	log      *slog.Logger
	now      func() time.Time
}

// StoreTarget names a store for look-ahead markers and the prefetch spool
// (ArchiveOptions.Target, RestoreOptions.Target): the URL alone is not
// enough, since one s3:// URL reaches different servers through
// --endpoint-url.
func StoreTarget(storeURL, endpointURL string) string {
	return storeURL + " " + endpointURL
}

// markerIdentity is what markers and the spool must match: the store and
// the server's area in it.
func markerIdentity(target string, layout catalog.Layout) string {
	return target + " " + layout.Root()
}

func (la lookAhead) markerPath(name string) string {
	return filepath.Join(la.dir, markerDir, name)
}

func (la lookAhead) clock() time.Time {
	if la.now != nil {
		return la.now()
	}
	return time.Now()
}

// What a marker says of a file.
const (
	markerAbsent   = iota // no marker
	markerTrusted         // the marker vouches for the file as it is now
	markerRejected        // a marker exists but does not vouch for the file
)

// check tells whether a marker vouches for name's file as it is on disk
// now. A marker that exists is removed whatever the answer: it is either
// used or not to be trusted.
func (la lookAhead) check(name Name) int {
	path := la.markerPath(name.String())
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			debugf(la.log, "ignoring look-ahead marker: %v", err)
			return markerRejected
		}
		return markerAbsent
	}
	defer func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			warnf(la.log, "remove look-ahead marker: %v", err)
		}
	}()
	if la.vouches(path, data, name) {
		return markerTrusted
	}
	return markerRejected
}

// vouches tells whether the marker at path, holding data, vouches for
// name's file as it is on disk now.
func (la lookAhead) vouches(path string, data []byte, name Name) bool {
	var m marker
	if err := json.Unmarshal(data, &m); err != nil {
		debugf(la.log, "ignoring unreadable look-ahead marker %s: %v", path, err)
		return false
	}
	switch age := la.clock().Sub(m.Time); {
	case m.Name != name.String():
		debugf(la.log, "ignoring look-ahead marker %s: it names %q", path, m.Name)
		return false
	case m.Identity != la.identity:
		debugf(la.log, "ignoring look-ahead marker %s: it was written for another store or server (%s)", path, m.Identity)
		return false
	case age < 0 || age > markerMaxAge:
		debugf(la.log, "ignoring look-ahead marker %s: written %s ago", path, age.Round(time.Second))
		return false
	case len(m.Fingerprint) != fingerprintLen:
		debugf(la.log, "ignoring look-ahead marker %s: it has no fingerprint", path)
		return false
	}
	fp, size, err := fingerprintFile(filepath.Join(la.dir, name.String()))
	if err != nil {
		debugf(la.log, "ignoring look-ahead marker %s: %v", path, err)
		return false
	}
	if fp != m.Fingerprint || size != m.Size {
		warnf(la.log, "%s changed on disk since it was pushed ahead (xxh3 %.12s, %d bytes; pushed %.12s, %d bytes): pushing it again",
			name, fp, size, m.Fingerprint, m.Size)
		return false
	}
	return true
}

// mark records that name's content (done) is stored in full. The
// marker is written to a temporary file, synced and renamed, so that it is
// never seen half-written. A marker lost in a crash only costs the usual
// push later, so the directory itself is not synced.
func (la lookAhead) mark(name Name, done pushed) error {
	dir := filepath.Join(la.dir, markerDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create look-ahead marker directory: %w", err)
	}
	data, err := json.Marshal(marker{Name: name.String(), SHA256: done.sum, Fingerprint: done.fingerprint, Size: done.size, Identity: la.identity, Time: la.clock().UTC()})
	if err != nil {
		return fmt.Errorf("encode look-ahead marker: %w", err)
	}
	if err := renameio.WriteFile(la.markerPath(name.String()), data, 0o600, renameio.WithTempDir(dir)); err != nil {
		return fmt.Errorf("write look-ahead marker: %w", err)
	}
	return nil
}

// ready returns up to max segments that PostgreSQL has marked .ready in
// archive_status after the segment after, oldest first, other than those
// that already have a marker. Only complete segments qualify: history,
// .partial and .backup files are rare and small, and PostgreSQL orders
// them specially; the calls for them push them.
func (la lookAhead) ready(after Name, max int) []Name {
	entries, err := os.ReadDir(filepath.Join(la.dir, "archive_status"))
	if err != nil {
		debugf(la.log, "no look-ahead: %v", err)
		return nil
	}
	var names []Name
	for _, e := range entries { // ReadDir sorts by name: oldest first
		base, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || base <= after.String() {
			continue
		}
		n, err := ParseName(base)
		if err != nil || n.Kind != Segment {
			continue
		}
		if _, err := os.Lstat(la.markerPath(base)); err == nil {
			continue
		}
		names = append(names, n)
		if len(names) == max {
			break
		}
	}
	return names
}

// clean removes markers that can no longer be used: their segment is gone
// from the WAL directory, they are too old, or they are not markers
// (leftover temporary files of a crashed writer).
func (la lookAhead) clean() {
	dir := filepath.Join(la.dir, markerDir)
	cleanOldSpool(la.dir, la.log)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	now := la.clock()
	for _, e := range entries {
		switch e.Name() {
		case pusherLockFile, pusherStateFile, PusherLog:
			continue // the pusher's, kept for the next one
		}
		path := filepath.Join(dir, e.Name())
		stale := false
		if _, err := ParseName(e.Name()); err != nil {
			// renameio's temporary files start with a dot; give a writer
			// that is still running time to finish.
			stale = olderThan(e, now, time.Hour)
		} else if _, err := os.Lstat(filepath.Join(la.dir, e.Name())); errors.Is(err, fs.ErrNotExist) {
			stale = true
		} else {
			stale = olderThan(e, now, markerMaxAge)
		}
		if stale {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				debugf(la.log, "remove stale look-ahead marker: %v", err)
			}
		}
	}
}

func olderThan(e fs.DirEntry, now time.Time, age time.Duration) bool {
	fi, err := e.Info()
	return err == nil && now.Sub(fi.ModTime()) > age
}
