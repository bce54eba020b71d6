package restore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// Options of one restore.
type Options struct {
	Store  cloud.Store
	Layout catalog.Layout
	Backup *catalog.Backup
	// Chain is what an incremental Backup needs (see Chain): Backup, its
	// parent, and so on down to a full backup. Empty for a full backup.
	Chain []*catalog.Backup
	// Dest is the new data directory: missing or empty, or with Delta a
	// data directory of the backup's system.
	Dest string
	// Delta restores over the data directory (and tablespaces) in Dest,
	// writing only what differs from the backup and removing what it
	// does not hold (see delta.go); into a missing or empty directory it
	// is a plain restore.
	Delta bool
	// Relocate maps a tablespace name or OID to a new location; the other
	// tablespaces go back where they were.
	Relocate map[string]string
	// Jobs is how many parts are restored at once.
	Jobs int
	// Recovery is written into Dest unless nil (--no-recovery-config).
	Recovery *RecoveryConfig
	// SyncMethod is SyncFsync (the default, for "") or SyncSyncfs.
	SyncMethod string
	// Events receives progress and the trouble the restore got over (see
	// Event); nil is silent.
	Events func(Event)
}

// Result says what a restore did.
type Result struct {
	Files       int64
	Bytes       int64 // file contents written
	StoredBytes int64 // bytes downloaded
	Tablespaces []Placement
	// Write is the time to download, verify and write every part, Sync the
	// time to make it durable.
	Write, Sync time.Duration
	// Delta tells that the restore was one over an existing data
	// directory; Kept counts its files that were already as in the
	// backup (nothing written), Removed the files, links and
	// directories it removed because the backup does not hold them.
	Delta         bool
	Kept, Removed int64
}

// Placement is where a tablespace was restored.
type Placement struct {
	OID, Name, Location string
	Relocated           bool
}

// Names inside the data directory that restore reads or writes.
const (
	controlFile    = "global/pg_control"
	heldControl    = "global/pg_control.gbc-restore-incomplete"
	tablespaceMap  = "tablespace_map"
	manifestName   = "backup_manifest"
	autoConf       = "postgresql.auto.conf"
	recoverySignal = "recovery.signal"
	standbySignal  = "standby.signal"
)

// emptyDirs must exist for PostgreSQL to start. A backup holds them as
// empty directories already (their contents are skipped, not the
// directories); creating them again costs nothing and covers a backup made
// by a tool that left them out.
var emptyDirs = []string{
	"pg_wal/archive_status", "pg_commit_ts", "pg_dynshmem", "pg_logical/mappings",
	"pg_logical/snapshots", "pg_multixact/members", "pg_multixact/offsets", "pg_notify",
	"pg_replslot", "pg_serial", "pg_snapshots", "pg_stat", "pg_stat_tmp", "pg_subtrans",
	"pg_tblspc", "pg_twophase", "pg_xact",
}

// Run restores o.Backup into o.Dest.
//
// On failure the directories may hold some files, and the error says so:
// global/pg_control is written under another name and renamed only after
// everything else is durable, so PostgreSQL refuses to start a data
// directory whose restore did not complete.
func Run(ctx context.Context, o Options) (*Result, error) {
	b := o.Backup
	switch o.SyncMethod {
	case "", SyncFsync, SyncSyncfs:
	default:
		return nil, fmt.Errorf("sync method %q: use %s or %s", o.SyncMethod, SyncFsync, SyncSyncfs)
	}
	if b.Status != catalog.StatusDone {
		return nil, fmt.Errorf("backup %s has status %s: only DONE backups can be restored (see gbc-backup-list)", b.ID, b.Status)
	}
	if err := checkChain(o); err != nil {
		return nil, err
	}
	emit := emitter(o.Events)
	places, err := Plan(b, o.Dest, o.Relocate)
	if err != nil {
		return nil, err
	}
	dirs := []string{o.Dest}
	for _, p := range places {
		dirs = append(dirs, p.Location)
	}
	// A delta restore into a missing or empty directory is a plain one.
	delta := false
	if o.Delta {
		err := checkEmpty(o.Dest, LockFile)
		var ne *NotEmptyError
		if delta = errors.As(err, &ne); !delta && err != nil {
			return nil, err
		}
	}
	check := func() error {
		if delta {
			return checkDelta(o.Dest, b, places)
		}
		return checkDirs(dirs)
	}
	// Another restore writing there is told first: the directory may
	// look like anything meanwhile.
	if delta && lockHeld(o.Dest) {
		return nil, &BusyError{Dir: o.Dest}
	}
	// Check them all before creating any, so that a refusal leaves
	// nothing behind.
	if err := check(); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(o.Dest)
	created := errors.Is(statErr, fs.ErrNotExist)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Two restores into one empty directory both pass the check above:
	// the lock makes one of them wait for nothing and refuse, and the
	// check again under the lock finds a restore that finished meanwhile.
	lock, err := lockDest(o.Dest)
	if err != nil {
		return nil, err
	}
	if err := check(); err != nil {
		lock.release()
		if created {
			os.Remove(o.Dest) // only if still empty: it was ours
		}
		return nil, err
	}
	// The lock file goes before the restore returns, whatever the
	// outcome, so that no restored directory holds it.
	defer lock.release()
	if err := os.Chmod(o.Dest, 0o700); err != nil {
		return nil, err
	}
	watch, err := watchFileSystems(dirs)
	if err != nil {
		return nil, err
	}
	defer watch.close()

	res := &Result{Tablespaces: places, Delta: delta}
	r := &run{o: o, emit: emit, res: res, roots: map[string]*extractor{}, delta: delta}
	defer r.close()
	if err := r.openRoots(places); err != nil {
		return nil, err
	}
	incomplete := incomplete
	if delta {
		incomplete = incompleteDelta
		if err := holdControl(r.data.root, o.Dest); err != nil {
			return nil, err
		}
	}
	if b.Kind() != catalog.TypeFull {
		r.comb = newCombiner()
		for oid, x := range r.roots {
			x.comb, x.tablespace = r.comb, oid
		}
		if delta {
			r.comb.delta = true
			if r.comb.blocks, err = r.loadDeltaBlockMap(ctx); err != nil {
				return nil, incomplete(o.Dest, err)
			}
			if r.comb.blocks != nil {
				defer r.comb.blocks.Close()
			}
		}
	}
	start := time.Now()
	if err := r.restoreParts(ctx); err != nil {
		return nil, incomplete(o.Dest, err)
	}
	if r.comb != nil {
		if err := r.restoreOlder(ctx); err != nil {
			return nil, incomplete(o.Dest, err)
		}
		if err := r.comb.finish(); err != nil {
			return nil, incomplete(o.Dest, err)
		}
		if err := r.fixLabel(); err != nil {
			return nil, incomplete(o.Dest, err)
		}
		for _, p := range r.comb.pending {
			if p.stale && !p.wrote {
				res.Kept++
			}
		}
	}
	if delta {
		if err := r.removeExtras(places); err != nil {
			return nil, incomplete(o.Dest, err)
		}
	}
	if err := r.complete(ctx, places); err != nil {
		return nil, incomplete(o.Dest, err)
	}
	res.Write = time.Since(start)
	emit(Written{Files: res.Files, Bytes: res.Bytes, Elapsed: res.Write})

	start = time.Now()
	// syncfs first: one bulk flush, where an fsync per small file would
	// wait for a journal commit each (200,000 files: 2 s instead of 15).
	// The fsync pass then finds clean files, and stays for what syncfs
	// does not promise everywhere (error reports before Linux 5.8, file
	// systems that implement it loosely).
	if err := watch.syncfs(); err != nil {
		return nil, incomplete(o.Dest, err)
	}
	if o.SyncMethod != SyncSyncfs {
		if err := syncTrees(ctx, dirs...); err != nil {
			return nil, incomplete(o.Dest, err)
		}
	}
	// Last: pg_control under its own name, now that everything it
	// vouches for is on disk, then the directory entry of that rename.
	if err := r.data.root.Rename(heldControl, controlFile); err != nil {
		return nil, incomplete(o.Dest, fmt.Errorf("put %s in place: %w", controlFile, err))
	}
	if err := fsyncPath(filepath.Join(o.Dest, path.Dir(controlFile))); err != nil {
		return nil, incomplete(o.Dest, err)
	}
	// The lock file's removal made durable too, so that a crash now
	// cannot bring it back into the finished data directory.
	if err := lock.release(); err != nil {
		return nil, fmt.Errorf("remove %s: %w", filepath.Join(o.Dest, LockFile), err)
	}
	if err := fsyncPath(o.Dest); err != nil {
		return nil, err
	}
	res.Sync = time.Since(start)
	return res, nil
}

// incomplete wraps a failure after files were written, so the one line an
// operator sees says what state the directory is in and what to do.
func incomplete(dest string, err error) error {
	return fmt.Errorf("%w; the restore is incomplete and %s is unusable (PostgreSQL will refuse to start it): remove it, and any tablespace directory restored with it, before trying again", err, dest)
}

// incompleteDelta is incomplete for a delta restore, which another delta
// restore finishes.
func incompleteDelta(dest string, err error) error {
	return fmt.Errorf("%w; the delta restore is incomplete and %s is unusable (PostgreSQL will refuse to start it): run gbc-restore --delta again to finish it", err, dest)
}

// ErrPlan classifies a relocation that cannot be done (an unknown
// tablespace, a relative or overlapping location): a usage error, found
// before anything is written.
var ErrPlan = errors.New("invalid tablespace relocation")

// Plan decides where each tablespace of b goes when restoring into dest.
func Plan(b *catalog.Backup, dest string, relocate map[string]string) ([]Placement, error) {
	dest = filepath.Clean(dest)
	used := map[string]bool{}
	places := make([]Placement, 0, len(b.Tablespaces))
	known := map[string]bool{}
	for _, ts := range b.Tablespaces {
		p := Placement{OID: ts.OID, Name: ts.Name, Location: ts.Location}
		known[ts.OID], known[ts.Name] = true, true
		for _, key := range []string{ts.Name, ts.OID} {
			if loc, ok := relocate[key]; ok && key != "" {
				p.Location, p.Relocated = loc, true
			}
		}
		if !filepath.IsAbs(p.Location) {
			return nil, fmt.Errorf("%w: tablespace %s (oid %s): location %q is not absolute: give --tablespace %s:/absolute/path", ErrPlan, ts.Name, ts.OID, p.Location, ts.Name)
		}
		p.Location = filepath.Clean(p.Location)
		if p.Location == dest || strings.HasPrefix(p.Location, dest+string(filepath.Separator)) || strings.HasPrefix(dest, p.Location+string(filepath.Separator)) {
			return nil, fmt.Errorf("%w: tablespace %s: location %s overlaps the data directory %s: relocate it with --tablespace %s:/other/path", ErrPlan, ts.Name, p.Location, dest, ts.Name)
		}
		if used[p.Location] {
			return nil, fmt.Errorf("%w: two tablespaces would be restored into %s: relocate one with --tablespace NAME:LOCATION", ErrPlan, p.Location)
		}
		used[p.Location] = true
		places = append(places, p)
	}
	for key := range relocate {
		if !known[key] {
			names := make([]string, 0, len(b.Tablespaces))
			for _, ts := range b.Tablespaces {
				names = append(names, ts.Name)
			}
			if len(names) == 0 {
				return nil, fmt.Errorf("%w: --tablespace %s: backup %s has no tablespace besides the data directory", ErrPlan, key, b.ID)
			}
			return nil, fmt.Errorf("%w: --tablespace %s: backup %s has no such tablespace; it has %s", ErrPlan, key, b.ID, strings.Join(names, ", "))
		}
	}
	for _, p := range b.Parts {
		if p.Tablespace != "" && !known[p.Tablespace] {
			return nil, fmt.Errorf("backup %s: part %s belongs to tablespace %s, which the record does not describe", b.ID, p.Key, p.Tablespace)
		}
	}
	return places, nil
}

// checkDirs refuses a restore into dirs (the data directory first, then
// the tablespaces' locations) unless each is missing or empty, and tells
// directories another restore is writing from ones that hold files.
func checkDirs(dirs []string) error {
	for i, d := range dirs {
		ignore := ""
		if i == 0 {
			// A lock file that no restore holds is what a restore killed
			// right after taking it leaves; it is not data.
			ignore = LockFile
		}
		if err := checkEmpty(d, ignore); err != nil {
			// A running restore may have written into a tablespace
			// before the data directory: either way, the files are its.
			if lockHeld(dirs[0]) {
				return &BusyError{Dir: dirs[0]}
			}
			return err
		}
	}
	return nil
}

// checkEmpty refuses a directory that has anything in it but the entry
// named ignore: restoring over an existing cluster would mix two
// clusters' files.
func checkEmpty(dir, ignore string) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(2)
		for _, n := range names {
			if n != ignore {
				return &NotEmptyError{Dir: dir}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
	}
}

// NotEmptyError is the refusal to restore into a directory with files.
type NotEmptyError struct{ Dir string }

func (e *NotEmptyError) Error() string {
	return fmt.Sprintf("directory %s exists and is not empty: restore into a new or empty directory", e.Dir)
}

// BusyError is the refusal to restore into a data directory another
// gbc-restore is writing: its files are that restore's, not debris.
type BusyError struct{ Dir string }

func (e *BusyError) Error() string {
	return fmt.Sprintf("another gbc-restore is restoring into %s (it holds %s): wait for it to finish, or restore into another directory; the directory was left alone", e.Dir, LockFile)
}

// run is the state of one restore.
type run struct {
	o     Options
	emit  func(Event)
	res   *Result
	data  *extractor
	roots map[string]*extractor // by tablespace OID; "" is the data directory
	// comb combines the chain of an incremental backup; nil for a full.
	comb *combiner
	// delta restores over existing files (see delta.go).
	delta bool
}

func (r *run) openRoots(places []Placement) error {
	open := func(dir string, held map[string]string) (*extractor, error) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		x := newExtractor(root, held)
		if r.delta {
			x.delta, x.files, x.parents = true, map[string]struct{}{}, map[string]struct{}{}
		}
		return x, nil
	}
	var err error
	if r.data, err = open(r.o.Dest, map[string]string{controlFile: heldControl}); err != nil {
		return err
	}
	r.roots[""] = r.data
	for _, p := range places {
		if r.roots[p.OID], err = open(p.Location, nil); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) close() {
	for _, x := range r.roots {
		x.close()
	}
}

// restoreParts downloads, verifies and extracts every part, --jobs at once,
// the biggest first so that the last part does not run alone.
func (r *run) restoreParts(ctx context.Context) error {
	parts := append([]catalog.Part(nil), r.o.Backup.Parts...)
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].StoredSize > parts[j].StoredSize })
	jobs := max(r.o.Jobs, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	stats := make([]extractStats, len(parts))
	for i, p := range parts {
		g.Go(func() error {
			st, err := r.restorePart(gctx, p)
			stats[i] = st
			return err
		})
	}
	err := g.Wait()
	for i, st := range stats {
		r.res.Files += st.Files
		r.res.Bytes += st.Bytes
		r.res.Kept += st.Kept
		if err == nil {
			r.res.StoredBytes += parts[i].StoredSize
		}
	}
	if err != nil {
		return err
	}
	if r.res.Files == 0 {
		return fmt.Errorf("backup %s has no files in its parts", r.o.Backup.ID)
	}
	return nil
}

// pipeBuffer is the size of each stage's copy buffer: large enough that the
// stages hand each other few, big chunks.
const pipeBuffer = 1 << 20

// restorePart streams one part through three stages that run at once, so
// that one part uses up to three cores: download (hashing the stored
// bytes), decompression, and extraction (tar and file writes).
func (r *run) restorePart(ctx context.Context, p catalog.Part) (extractStats, error) {
	x := r.roots[p.Tablespace]
	if x == nil {
		return extractStats{}, fmt.Errorf("part %s: unknown tablespace %s", p.Key, p.Tablespace)
	}
	for attempt := 1; ; attempt++ {
		var st extractStats
		err := r.stream(ctx, p.Key, p.SHA256, p.StoredSize, func(tarStream io.Reader) error {
			var err error
			st, err = x.extract(tarStream, make([]byte, pipeBuffer))
			if err != nil {
				return err
			}
			// The rest (tar's end blocks and padding) must still be
			// read for the whole object to be hashed.
			_, err = io.CopyBuffer(io.Discard, tarStream, make([]byte, 64<<10))
			return err
		})
		if err == nil {
			r.emit(PartRestored{Key: p.Key, Files: st.Files, Bytes: st.Bytes})
			return st, nil
		}
		// The store retries failed requests, not a connection that
		// breaks in the middle of a part: that part is restored again
		// from its start, after removing what it had written.
		var dl *downloadError
		if !errors.As(err, &dl) || attempt >= partAttempts || ctx.Err() != nil {
			return st, fmt.Errorf("part %s: %w", p.Key, err)
		}
		r.emit(PartRetry{Key: p.Key, Err: err, Attempt: attempt + 1, Attempts: partAttempts})
		// A delta restore compares again what the attempt wrote: there is
		// nothing to remove, and its files may have been there before.
		if x.delta {
			st.Created = nil
		}
		if rerr := x.remove(st.Created); rerr != nil {
			return st, fmt.Errorf("part %s: %w (and removing its files for another attempt: %v)", p.Key, err, rerr)
		}
		select {
		case <-time.After(time.Duration(attempt) * time.Second):
		case <-ctx.Done():
			return st, fmt.Errorf("part %s: %w", p.Key, err)
		}
	}
}

// partAttempts bounds how often one part is downloaded after its download
// broke off.
const partAttempts = 3

// downloadError is a failure to read a part's stored bytes (as opposed to
// decoding or writing them), which another attempt may not meet.
type downloadError struct{ err error }

func (e *downloadError) Error() string { return "download: " + e.err.Error() }
func (e *downloadError) Unwrap() error { return e.err }

// stream opens key, decompresses it by its extension, and hands the
// decompressed stream to consume; it fails unless the stored bytes have the
// expected sha256 and size. consume must read its stream to the end.
func (r *run) stream(ctx context.Context, key, wantSHA string, wantSize int64, consume func(io.Reader) error) error {
	if wantSHA == "" {
		return errors.New("the record has no checksum for it: cannot verify it")
	}
	_, codec := compress.SplitKey(key)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := r.o.Store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer body.Close()

	var g errgroup.Group
	h := sha256.New()
	var stored int64
	var readErr error // reading the object, not writing into the pipe
	downR, downW := io.Pipe()
	g.Go(func() error {
		tee := &readTracker{r: io.TeeReader(body, h)}
		n, err := io.CopyBuffer(downW, tee, make([]byte, pipeBuffer))
		stored, readErr = n, tee.err
		downW.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		return nil
	})
	plainR, plainW := io.Pipe()
	g.Go(func() error {
		dec, err := codec.NewReader(bufio.NewReaderSize(downR, pipeBuffer))
		if err == nil {
			_, err = io.CopyBuffer(plainW, dec, make([]byte, pipeBuffer))
			if cerr := dec.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			err = fmt.Errorf("decompress (%s): %w", codec.Name(), err)
		}
		plainW.CloseWithError(err)
		// Unblock the download stage when decompression stops early.
		downR.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		return err
	})
	g.Go(func() error {
		// Buffered: a tar reader asks for 512-byte headers and small
		// files, and each read of a pipe is a hand-over between two
		// goroutines.
		err := consume(bufio.NewReaderSize(plainR, pipeBuffer))
		plainR.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		return err
	})
	if err := g.Wait(); err != nil {
		// A broken download makes the later stages fail too; it is
		// the cause to report, and the one worth another attempt.
		if readErr != nil && ctx.Err() == nil {
			return &downloadError{err: readErr}
		}
		return err
	}
	if wantSize > 0 && stored != wantSize {
		return fmt.Errorf("the stored object has %d bytes, the record says %d: the backup in the store is damaged", stored, wantSize)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != wantSHA {
		return checksumError(sum, wantSHA)
	}
	return nil
}

// readTracker remembers the error of its reader, so that a failed copy can
// tell a broken download from a consumer that stopped reading.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func checksumError(got, want string) error {
	return fmt.Errorf("checksum mismatch: the stored bytes have sha256 %s, the record says %s: the backup in the store is damaged", got, want)
}
