package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gbc-backup/gbc/blockmap"
	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/pg"
)

// Delta restores (Options.Delta): restoring into an existing data
// directory of the same system, a failed primary or a lagging standby,
// writing only what differs from the backup.
//
// # What is compared, and why not the manifest's checksums
//
// A part is the unit of download and verification, so a delta restore
// downloads every part of the backup as a restore into an empty directory
// does: the backup's bytes of every file pass by anyway. Each regular file
// of the part is compared with the local file of the same name block by
// block (8 KiB) as its bytes arrive, and only the blocks that differ are
// written, in place; a file that matches is left alone entirely (not even
// its mode and time are set again when they are already right). The
// comparison is exact: a file whose size and backup_manifest checksum
// match would be taken as unchanged with a CRC-32C, one changed file in
// 2^32 let through, and it would rewrite a whole 1 GiB segment for one
// changed block. pgBackRest compares whole files by checksum; this costs
// the same reads and writes less. No manifest is kept in memory: what is
// kept is the set of names the backup holds (about 100 bytes per file),
// to remove at the end what it does not hold.
//
// # Incremental chains
//
// A relation file stored as INCREMENTAL in the newest backup is made from
// the blocks of several backups, and the older ones are downloaded only
// for the blocks still missing (see chain.go). The newest backup's block
// map holds the XXH3 hash of every block of that file as the restore
// writes it: each local block whose hash matches is taken as already
// right, so older backups are asked only for the blocks that differ
// locally, and are not downloaded at all when none does. A block is then
// trusted on a 64-bit hash, as an incremental backup trusts it (see
// package blockmap). Without a block map (a chain of another tool), the
// blocks are compared with the local file as they arrive, as for a whole
// file.
//
// # What is removed
//
// Every file, link or directory of the data directory and the tablespaces
// that the backup does not hold, after the parts are written: the result
// is what a restore into an empty directory gives, where pg_wal is empty
// (the WAL comes from the archive at recovery), as are pg_replslot,
// pg_stat_tmp and the other directories a backup keeps empty. A directory
// where the backup has a file (or the reverse), or a symbolic link where
// the backup has a directory (pg_wal as a link: the backup holds a
// directory), is replaced.
//
// # Safety
//
// Before anything is written, the delta restore refuses a directory that
// is not a PostgreSQL data directory (no PG_VERSION, no pg_control), one
// of another system (its pg_control's system identifier), one a server
// is running on (the process in postmaster.pid is alive, as PostgreSQL's
// own check at start decides, or backends of a server that died are still
// attached to its shared memory), and a non-empty tablespace location
// that the data directory's pg_tblspc does not link to. Then pg_control
// is moved to the name a restore writes it under, so that a delta restore
// interrupted half-way leaves a directory PostgreSQL refuses to start,
// and that another --delta run still recognises as the same system. A
// hard-linked file (pg_upgrade --link, a copy made with cp -al) is
// replaced, never written through.

// postmasterPID is the lock file of a running server.
const postmasterPID = "postmaster.pid"

// DeltaRefusal is a refusal of a delta restore: the directory is not a
// data directory of the backup's system, or a server runs on it.
type DeltaRefusal struct{ msg string }

func (e *DeltaRefusal) Error() string { return e.msg }

func deltaRefusal(format string, args ...any) error {
	return &DeltaRefusal{msg: fmt.Sprintf(format, args...)}
}

// checkDelta refuses a delta restore of b into dest (which is not empty)
// and the tablespaces' places, unless dest is a data directory of b's
// system that no server runs on. It writes nothing. The caller holds
// dest's lock, or has made sure that no restore holds it.
func checkDelta(dest string, b *catalog.Backup, places []Placement) error {
	if _, err := os.Lstat(filepath.Join(dest, "PG_VERSION")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return deltaRefusal("directory %s is not empty and is not a PostgreSQL data directory (it has no PG_VERSION): --delta restores only over a data directory of the backup's system; check the path, or restore into a new or empty directory", dest)
		}
		return err
	}
	if err := checkSystem(dest, b); err != nil {
		return err
	}
	if err := checkNoServer(dest); err != nil {
		return err
	}
	for _, p := range places {
		if err := checkEmpty(p.Location, ""); err == nil {
			continue
		} else if _, ok := err.(*NotEmptyError); !ok {
			return err
		}
		linked, err1 := os.Stat(filepath.Join(dest, "pg_tblspc", p.OID))
		here, err2 := os.Stat(p.Location)
		if err1 != nil || err2 != nil || !os.SameFile(linked, here) {
			return deltaRefusal("tablespace %s (oid %s): %s is not empty and %s/pg_tblspc/%s does not link to it, so it may be another cluster's: give an empty location with --tablespace %s:/new/path, or empty it", p.Name, p.OID, p.Location, dest, p.OID, p.Name)
		}
	}
	return nil
}

// checkSystem refuses a data directory whose pg_control (or the one an
// interrupted restore holds under another name) is of another system
// than b.
func checkSystem(dest string, b *catalog.Backup) error {
	raw, _, err := pg.ReadControlFile(dest)
	if errors.Is(err, fs.ErrNotExist) {
		raw, err = readHeldControl(dest)
		if errors.Is(err, fs.ErrNotExist) {
			return deltaRefusal("directory %s is not empty and is not a PostgreSQL data directory (it has no %s): --delta restores only over a data directory of the backup's system; check the path, or restore into a new or empty directory", dest, controlFile)
		}
	}
	if err != nil {
		return err
	}
	cd, err := pg.ParseControl(raw)
	if err != nil {
		return deltaRefusal("%s: %v: --delta cannot tell which system the directory holds; restore into a new or empty directory", filepath.Join(dest, controlFile), err)
	}
	if b.SystemIdentifier == "" {
		return deltaRefusal("backup %s records no system identifier, so --delta cannot check that %s holds the same system; restore into a new or empty directory", b.ID, dest)
	}
	if cd.SystemIdentifier != b.SystemIdentifier {
		return deltaRefusal("directory %s holds another system (system identifier %s) than backup %s (%s): --delta restores only over the same system; restore into a new or empty directory", dest, cd.SystemIdentifier, b.ID, b.SystemIdentifier)
	}
	return nil
}

func readHeldControl(dest string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dest, heldControl))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// checkNoServer refuses a data directory a server may be running on, as
// PostgreSQL decides at its own start (CreateLockFile and
// PGSharedMemoryIsInUse): the process postmaster.pid names is alive (a
// process id may be reused, and PostgreSQL takes that risk on the safe
// side too), or processes are still attached to the shared memory
// segment it names (backends that outlived a postmaster killed with
// SIGKILL). A postmaster.pid of a server that is gone is removed with the
// other files the backup does not hold.
func checkNoServer(dest string) error {
	file := filepath.Join(dest, postmasterPID)
	raw, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid == 0 {
		return deltaRefusal("%s holds no process id, so a server may be starting on %s: if none is, remove %s and try again", file, dest, file)
	}
	if pid < 0 {
		pid = -pid // a single-user backend writes its pid negated
	}
	// Our own process id or our parent's: left by a server that ran in
	// a container before it restarted with the same numbers.
	if pid != os.Getpid() && pid != os.Getppid() {
		if err := unix.Kill(pid, 0); err == nil || errors.Is(err, unix.EPERM) {
			return deltaRefusal("PostgreSQL is running on %s (process %d%s, in %s): stop it first (pg_ctl -D %s stop -m fast); if no server runs there, remove %s and try again", dest, pid, processName(pid), postmasterPID, dest, file)
		}
	}
	// Line 7 (LOCK_FILE_LINE_SHMEM_KEY): the key and id of the System V
	// segment every backend stays attached to.
	if len(lines) >= 7 {
		f := strings.Fields(lines[6])
		if len(f) == 2 {
			key, err1 := strconv.ParseUint(f[0], 10, 32)
			id, err2 := strconv.Atoi(f[1])
			var ds unix.SysvShmDesc
			if err1 == nil && err2 == nil && id >= 0 {
				if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err == nil && uint32(ds.Perm.Key) == uint32(key) && ds.Nattch > 0 {
					return deltaRefusal("%d processes of a PostgreSQL that stopped are still attached to the shared memory of %s (segment %d, named in %s): end every postgres process of that server first", ds.Nattch, dest, id, postmasterPID)
				}
			}
		}
	}
	return nil
}

// processName is ` "name"` of a process, or nothing when it cannot be
// read.
func processName(pid int) string {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" %q", strings.TrimSpace(string(comm)))
}

// holdControl moves pg_control to the name a restore writes it under, and
// makes the move durable, before any other file changes: from then until
// the restore completes, PostgreSQL refuses to start the directory. A
// server that started between the checks and the move is caught by a
// second look at postmaster.pid, and pg_control goes back.
func holdControl(root *os.Root, dest string) error {
	if _, err := root.Lstat(controlFile); err == nil {
		if err := root.Rename(controlFile, heldControl); err != nil {
			return fmt.Errorf("move %s aside: %w", controlFile, err)
		}
		if err := fsyncPath(filepath.Join(dest, path.Dir(controlFile))); err != nil {
			return err
		}
		if err := checkNoServer(dest); err != nil {
			if rerr := root.Rename(heldControl, controlFile); rerr != nil {
				return fmt.Errorf("%w (and putting %s back failed: %v)", err, controlFile, rerr)
			}
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// loadDeltaBlockMap downloads and indexes the block map of the newest
// backup of a chain, verified as a part is. nil when it has none.
func (r *run) loadDeltaBlockMap(ctx context.Context) (*blockmap.Index, error) {
	o := r.o.Backup.BlockMap
	if o == nil {
		return nil, nil
	}
	var ix *blockmap.Index
	err := r.stream(ctx, o.Key, o.SHA256, o.StoredSize, func(src io.Reader) error {
		var err error
		if ix, err = blockmap.Load(src, ""); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, src)
		return err
	})
	if err != nil {
		if ix != nil {
			ix.Close()
		}
		return nil, fmt.Errorf("block map %s: %w", o.Key, err)
	}
	r.res.StoredBytes += o.StoredSize
	return ix, nil
}

// existing makes the entry target of the tree ready for a delta write: it
// returns a read-write descriptor of the regular file there, or -1 when
// there is none (any other kind of entry there, or a file with other hard
// links, is removed first: a write must not go through to another name).
func (x *extractor) existing(dir int, target string) (int, error) {
	base := path.Base(target)
	var st unix.Stat_t
	err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return -1, nil
	}
	if err != nil {
		return -1, &fs.PathError{Op: "stat", Path: target, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1:
		fd, err := unix.Openat(dir, base, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: target, Err: err}
		}
		return fd, nil
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		if err := x.root.RemoveAll(target); err != nil {
			return -1, fmt.Errorf("replace directory %s with a file: %w", target, err)
		}
	default:
		if err := unix.Unlinkat(dir, base, 0); err != nil {
			return -1, &fs.PathError{Op: "replace", Path: target, Err: err}
		}
	}
	return -1, nil
}

// writeDelta writes the tar entry h (its contents in r) over the existing
// file target, writing only the blocks that differ from the local file's.
// It returns the bytes written; kept tells that none was.
func (x *extractor) writeDelta(target string, h *tar.Header, r io.Reader, buf, local []byte) (n int64, kept bool, err error) {
	dir, err := x.dir(path.Dir(target))
	if err != nil {
		return 0, false, err
	}
	fd, err := x.existing(dir, target)
	if err != nil {
		return 0, false, err
	}
	if fd < 0 {
		_, n, err := x.create(dir, target, h, r, buf)
		return n, false, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, &fs.PathError{Op: "stat", Path: target, Err: err}
	}
	n, err = compareWrite(fd, st.Size, io.LimitReader(r, h.Size), h.Size, buf, local)
	// A file that only gets shorter is changed, with no byte written.
	if err == nil && st.Size != h.Size {
		err = unix.Ftruncate(fd, h.Size)
	}
	if err == nil {
		err = finishDelta(fd, &st, fs.FileMode(h.Mode)&fs.ModePerm, h.ModTime, n, n > 0 || st.Size != h.Size)
	}
	if err != nil {
		return n, false, &fs.PathError{Op: "write", Path: target, Err: err}
	}
	return n, n == 0 && st.Size == h.Size, nil
}

// compareWrite reads want bytes from r, compares them with the file fd
// (of size have) block by block, and writes the runs of blocks that
// differ at their offsets. It returns the bytes written.
func compareWrite(fd int, have int64, r io.Reader, want int64, buf, local []byte) (int64, error) {
	var written, off int64
	for off < want {
		n := int(min(int64(len(buf)), want-off))
		got, err := io.ReadFull(r, buf[:n])
		if err != nil {
			return written, fmt.Errorf("archive ends after %d of %d bytes", off+int64(got), want)
		}
		m := 0
		if off < have {
			if m, err = preadFull(fd, local[:min(int64(n), have-off)], off); err != nil {
				return written, err
			}
		}
		// Runs of differing blocks, each written with one call.
		for i := 0; i < n; {
			j := min(i+pg.BlockSize, n)
			if j <= m && bytes.Equal(buf[i:j], local[i:j]) {
				i = j
				continue
			}
			end := j
			for end < n {
				next := min(end+pg.BlockSize, n)
				if next <= m && bytes.Equal(buf[end:next], local[end:next]) {
					break
				}
				end = next
			}
			if _, err := unix.Pwrite(fd, buf[i:end], off+int64(i)); err != nil {
				return written, err
			}
			written += int64(end - i)
			i = end
		}
		off += int64(n)
	}
	return written, nil
}

// preadFull reads len(p) bytes at off, or up to the end of the file.
func preadFull(fd int, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pread(fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			break
		}
		n += k
	}
	return n, nil
}

// finishDelta is finishFile for a file that existed, st as it was before
// the restore changed it (if changed): the mode and time are set only when
// they differ, so that a file left alone is not touched at all (its change
// time says so).
func finishDelta(fd int, st *unix.Stat_t, mode fs.FileMode, mtime time.Time, written int64, changed bool) error {
	if fs.FileMode(st.Mode)&fs.ModePerm != mode {
		if err := unix.Fchmod(fd, uint32(mode)); err != nil {
			return fmt.Errorf("set mode: %w", err)
		}
	}
	tv := unix.NsecToTimeval(mtime.UnixNano())
	if cur := unix.NsecToTimeval(st.Mtim.Nano()); changed || cur != tv {
		if err := unix.Futimes(fd, []unix.Timeval{tv, tv}); err != nil {
			return fmt.Errorf("set modification time: %w", err)
		}
	}
	if written >= bigFile {
		_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return nil
}

// realDir makes sure every component of the directory name is a directory
// (not a symbolic link, nor a file), removing what is in the way, so that
// a delta restore writes into the tree and not through a link.
func (x *extractor) realDir(name string) error {
	if name == "." || name == "" {
		return nil
	}
	parts := strings.Split(name, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := x.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			continue
		}
		if err := x.root.Remove(p); err != nil {
			return fmt.Errorf("replace %s with a directory: %w", p, err)
		}
		return nil
	}
	return nil
}

// keep records a name the backup holds (delta restores only), and its
// parent directories.
func (x *extractor) keep(name string) {
	if !x.delta {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.files[name] = struct{}{}
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := x.parents[d]; ok {
			break
		}
		x.parents[d] = struct{}{}
	}
}

// removeExtras removes from the tree everything the backup does not hold
// but the names in also (for a directory: itself, not what it holds), and
// returns how many entries it removed. A
// directory the backup does not hold goes with its contents; nothing is
// followed through a symbolic link.
func (x *extractor) removeExtras(also map[string]bool) (int64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var removed int64
	err := fs.WalkDir(x.root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		if also[name] {
			return nil
		}
		if d.IsDir() {
			_, inBackup := x.dirs[name]
			_, parent := x.parents[name]
			if inBackup || parent {
				return nil
			}
			if err := x.root.RemoveAll(name); err != nil {
				return fmt.Errorf("remove %s, which the backup does not hold: %w", name, err)
			}
			removed++
			return fs.SkipDir
		}
		if _, ok := x.files[name]; ok {
			return nil
		}
		if err := x.root.Remove(name); err != nil {
			return fmt.Errorf("remove %s, which the backup does not hold: %w", name, err)
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, err
	}
	// Descriptors of directories removed: they must not be written into.
	for name, f := range x.dirFDs {
		if _, err := x.root.Lstat(name); err != nil {
			f.Close()
			delete(x.dirFDs, name)
		}
	}
	return removed, nil
}

// removeExtras removes from every tree what the backup does not hold (see
// the comment at the top of this file).
func (r *run) removeExtras(places []Placement) error {
	// Kept in the data directory besides the backup's files: the lock,
	// and the links of the backup's tablespaces, which complete puts
	// back anyway; kept meanwhile, an interrupted restore can be run
	// again (a non-empty tablespace location must be linked from here).
	also := map[string]bool{LockFile: true}
	// The directories a restore creates (their contents still go).
	for _, d := range emptyDirs {
		for ; d != "."; d = path.Dir(d) {
			also[d] = true
		}
	}
	for _, p := range places {
		link := path.Join("pg_tblspc", p.OID)
		if fi, err := r.data.root.Lstat(link); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			also[link] = true
		}
	}
	n, err := r.data.removeExtras(also)
	r.res.Removed += n
	if err != nil {
		return err
	}
	for oid, x := range r.roots {
		if oid == "" {
			continue
		}
		n, err := x.removeExtras(nil)
		r.res.Removed += n
		if err != nil {
			return fmt.Errorf("tablespace %s: %w", oid, err)
		}
	}
	return nil
}

// prepareDelta readies a pending file of a delta restore, before the
// newest backup's blocks of it are written: with the block map, every
// local block that already holds what the restore would write is marked
// written, so that no backup of the chain is asked for it (see the
// comment at the top of this file).
func (c *combiner) prepareDelta(p *pendingFile) error {
	dir, err := p.x.dir(path.Dir(p.name))
	if err != nil {
		return err
	}
	fd, err := p.x.existing(dir, p.name)
	if err != nil || fd < 0 {
		return err // none: written as into an empty directory
	}
	defer unix.Close(fd)
	p.stale = true
	var e *blockmap.Entry
	if c.blocks != nil {
		if e, err = c.blocks.Lookup(p.manPath); err != nil {
			return err
		}
	}
	if e == nil || len(e.Hashes) != int(p.length) {
		p.compare = true
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: p.name, Err: err}
	}
	have := uint32(min(st.Size/pg.BlockSize, int64(p.length)))
	buf := make([]byte, 32*pg.BlockSize)
	for b := uint32(0); b < have; {
		k := min(have-b, uint32(len(buf)/pg.BlockSize))
		m, err := preadFull(fd, buf[:k*pg.BlockSize], int64(b)*pg.BlockSize)
		if err != nil {
			return &fs.PathError{Op: "read", Path: p.name, Err: err}
		}
		for i := uint32(0); int(i+1)*pg.BlockSize <= m; i++ {
			if blockmap.Hash(buf[i*pg.BlockSize:(i+1)*pg.BlockSize]) == e.Hashes[b+i] {
				p.set(b + i)
			}
		}
		if m < int(k)*pg.BlockSize {
			break
		}
		b += k
	}
	return nil
}

// finishDelta completes a pending file that existed: the blocks no backup
// of the chain wrote are zeros in a restore into an empty directory, so
// they are made zeros here too; then its length, mode and time.
func (p *pendingFile) finishDelta(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	size := int64(p.length) * pg.BlockSize
	zero := make([]byte, pg.BlockSize)
	local := make([]byte, pg.BlockSize)
	for b := uint32(0); b < p.length && int64(b)*pg.BlockSize < st.Size; b++ {
		if p.has(b) {
			continue
		}
		m, err := preadFull(fd, local, int64(b)*pg.BlockSize)
		if err != nil {
			return err
		}
		if bytes.Equal(local[:m], zero[:m]) {
			continue
		}
		if _, err := unix.Pwrite(fd, zero, int64(b)*pg.BlockSize); err != nil {
			return err
		}
		p.wrote = true
	}
	if st.Size != size {
		if err := unix.Ftruncate(fd, size); err != nil {
			return err
		}
		p.wrote = true
	}
	var written int64
	if p.wrote {
		written = size
	}
	return finishDelta(fd, &st, p.mode, p.mtime, written, p.wrote)
}
