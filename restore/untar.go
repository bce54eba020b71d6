package restore

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gbc-backup/gbc/pg"
)

// extractor writes tar streams into one directory tree (the data directory
// or one tablespace). Several parts of one backup are extracted at once into
// the same tree, so it is safe for concurrent use.
//
// Every name goes through an os.Root: a name with "..", an absolute name, or
// a path through a symbolic link that leads out of the tree fails instead of
// writing outside it, whatever the archive holds.
type extractor struct {
	root *os.Root
	// held maps names that must not appear under their own name until the
	// whole restore is complete to the name they are written under
	// meanwhile (global/pg_control: without it PostgreSQL refuses to start,
	// so a restore that failed half-way cannot be started by mistake).
	held map[string]string

	mu sync.Mutex
	// dirFDs holds the open directories files are created in.
	dirFDs map[string]*os.File
	// comb, for the newest backup of an incremental chain, receives its
	// INCREMENTAL files; tablespace is the tree's OID ("" for the data
	// directory).
	comb       *combiner
	tablespace string

	// dirs remembers each directory's mode and time, applied once every
	// file is in place: writing into a directory changes its time, and a
	// read-only mode would stop the writes.
	dirs map[string]dirAttrs

	// delta writes over existing files, only the blocks that differ (see
	// delta.go); files and parents then name what the backup holds, so
	// that the rest can be removed at the end.
	delta   bool
	files   map[string]struct{}
	parents map[string]struct{}
}

type dirAttrs struct {
	mode  fs.FileMode
	mtime time.Time
}

func newExtractor(root *os.Root, held map[string]string) *extractor {
	return &extractor{root: root, held: held, dirs: map[string]dirAttrs{}, dirFDs: map[string]*os.File{}}
}

// extractStats counts what one stream wrote.
type extractStats struct {
	Files int64
	Bytes int64
	// Created names every file and link the stream created, so that a
	// part whose download broke can be removed and restored again.
	Created []string
	// Kept counts the files of a delta restore that were already as in
	// the backup.
	Kept int64
}

// extract writes every entry of the tar stream r, using buf to copy file
// contents so that memory stays one buffer per stream.
func (x *extractor) extract(r io.Reader, buf []byte) (extractStats, error) {
	var st extractStats
	var local []byte // a delta restore's copy of the local file's bytes
	if x.delta {
		local = make([]byte, len(buf))
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("read archive: %w", err)
		}
		name, err := entryName(h.Name)
		if err != nil {
			return st, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = x.mkdir(name, h)
		case tar.TypeReg:
			if rel, ok := pg.FromIncrementalName(name); ok && x.comb != nil {
				var n int64
				x.keep(rel)
				n, err = x.comb.incremental(x, rel, manifestPath(x.tablespace, rel), h, tr, buf)
				st.Created = append(st.Created, rel)
				st.Files++
				st.Bytes += n
				break
			}
			if x.delta {
				target := x.target(name)
				x.keep(target)
				n, kept, derr := x.writeDelta(target, h, tr, buf, local)
				st.Files++
				st.Bytes += n
				if kept {
					st.Kept++
				}
				err = derr
				break
			}
			var n int64
			var created string
			created, n, err = x.writeFile(name, h, tr, buf)
			if created != "" {
				st.Created = append(st.Created, created)
			}
			st.Files++
			st.Bytes += n
		case tar.TypeSymlink:
			x.keep(name)
			if err = x.symlink(name, h.Linkname); err == nil {
				st.Created = append(st.Created, name)
			}
		default:
			// PostgreSQL data directories hold only these three kinds;
			// anything else (a device, a FIFO, a hard link) did not come
			// from gbc-backup, and creating it would be unsafe.
			err = fmt.Errorf("unsupported entry type %q", h.Typeflag)
		}
		if err != nil {
			return st, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// entryName turns an archive name into a local, slash-separated name, and
// refuses names that would leave the tree before os.Root is even asked.
func entryName(name string) (string, error) {
	n := path.Clean(name)
	if n == "." {
		return n, nil
	}
	if !filepath.IsLocal(n) {
		return "", fmt.Errorf("unsafe path %q in archive: it would be written outside the restore directory", name)
	}
	return n, nil
}

func (x *extractor) mkdir(name string, h *tar.Header) error {
	// 0700 while files are written; the archived mode comes at the end.
	if name != "." {
		if x.delta {
			if err := x.realDir(name); err != nil {
				return err
			}
		}
		if err := x.root.MkdirAll(name, 0o700); err != nil {
			return err
		}
	}
	x.mu.Lock()
	x.dirs[name] = dirAttrs{mode: fs.FileMode(h.Mode) & fs.ModePerm, mtime: h.ModTime}
	x.mu.Unlock()
	return nil
}

// writeFile returns the name it created (even when writing then failed)
// and the bytes written.
//
// It works on raw descriptors: with 200,000 small files, os.File's set-up
// (non-blocking probes, poller registration) and os.Root's walk from the
// top for each name cost several times the write itself. The directory
// comes from os.Root, so it is inside the tree, and the file is created
// in it by its last name only, with O_EXCL|O_NOFOLLOW: nothing is followed.
func (x *extractor) writeFile(name string, h *tar.Header, r io.Reader, buf []byte) (string, int64, error) {
	target := x.target(name)
	dir, err := x.dir(path.Dir(target))
	if err != nil {
		return "", 0, err
	}
	return x.create(dir, target, h, r, buf)
}

// target is the name an archive entry is written under (see held).
func (x *extractor) target(name string) string {
	if held, ok := x.held[name]; ok {
		return held
	}
	return name
}

// create writes a new file target in the directory dir.
func (x *extractor) create(dir int, target string, h *tar.Header, r io.Reader, buf []byte) (string, int64, error) {
	// O_EXCL: two entries for one file mean a broken backup, and an
	// existing file in a directory gbc checked was empty means someone
	// else is writing there.
	fd, err := unix.Openat(dir, path.Base(target), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", 0, &fs.PathError{Op: "create", Path: target, Err: err}
	}
	n, err := io.CopyBuffer(fdWriter(fd), io.LimitReader(r, h.Size), buf)
	if err == nil && n != h.Size {
		err = fmt.Errorf("archive ends after %d of %d bytes", n, h.Size)
	}
	if err == nil {
		err = finishFile(fd, fs.FileMode(h.Mode)&fs.ModePerm, h.ModTime, n)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		err = &fs.PathError{Op: "write", Path: target, Err: err}
	}
	return target, n, err
}

// dir returns a descriptor of directory name inside the tree, creating it
// when needed: parts are extracted in parallel, so a file may arrive before
// the entry of its directory, which is in another part. Descriptors are
// kept until close: a data directory has few directories and many files.
func (x *extractor) dir(name string) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if f, ok := x.dirFDs[name]; ok {
		return int(f.Fd()), nil
	}
	if x.delta {
		if err := x.realDir(name); err != nil {
			return -1, err
		}
	}
	f, err := x.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		if err = x.root.MkdirAll(name, 0o700); err == nil {
			f, err = x.root.Open(name)
		}
	}
	if err != nil {
		return -1, err
	}
	x.dirFDs[name] = f
	return int(f.Fd()), nil
}

// close releases the directory descriptors and the root.
func (x *extractor) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, f := range x.dirFDs {
		f.Close()
	}
	x.dirFDs = nil
	x.root.Close()
}

// fdWriter writes to a raw descriptor.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, err := unix.Write(int(w), p[written:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// remove deletes what a failed attempt at a part created.
func (x *extractor) remove(names []string) error {
	for _, n := range names {
		if err := x.root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// bigFile is the size from which a file's write-back is started as soon as
// it is written. Starting it for every small file costs a syscall and a
// tiny I/O each; their pages are flushed together at the end instead.
const bigFile = 1 << 20

// finishFile sets the archived mode and time through the descriptor (no
// second path lookup), and starts the write-back of a big file's pages so
// that the sync at the end finds little left to write, the way
// PostgreSQL's own pg_flush_data spreads its I/O.
func finishFile(fd int, mode fs.FileMode, mtime time.Time, size int64) error {
	if err := unix.Fchmod(fd, uint32(mode)); err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	tv := unix.NsecToTimeval(mtime.UnixNano())
	if err := unix.Futimes(fd, []unix.Timeval{tv, tv}); err != nil {
		return fmt.Errorf("set modification time: %w", err)
	}
	if size >= bigFile {
		// Advisory: a file system without it still gets synced later.
		_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return nil
}

func (x *extractor) symlink(name, target string) error {
	if target == "" {
		return errors.New("symbolic link without a target")
	}
	if x.delta {
		if err := x.realDir(path.Dir(name)); err != nil {
			return err
		}
		if fi, err := x.root.Lstat(name); err == nil {
			if cur, err := x.root.Readlink(name); err == nil && cur == target {
				return nil
			}
			if fi.IsDir() {
				err = x.root.RemoveAll(name)
			} else {
				err = x.root.Remove(name)
			}
			if err != nil {
				return fmt.Errorf("replace %s: %w", name, err)
			}
		}
	}
	err := x.root.Symlink(target, name)
	if errors.Is(err, fs.ErrNotExist) {
		if err = x.root.MkdirAll(path.Dir(name), 0o700); err == nil {
			err = x.root.Symlink(target, name)
		}
	}
	return err
}

// finish applies the archived modes and times of directories, in any order:
// changing a directory's attributes does not touch its parent's time. The
// owner keeps full access whatever the archive says, since PostgreSQL must
// write into every directory of its data directory.
func (x *extractor) finish() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, a := range x.dirs {
		if err := x.root.Chmod(name, a.mode|0o700); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !a.mtime.IsZero() {
			if err := x.root.Chtimes(name, a.mtime, a.mtime); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}
