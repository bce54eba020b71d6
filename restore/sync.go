package restore

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// syncWorkers is how many fsync calls run at once. fsync waits on the
// device, not the CPU, and parallel calls let the file system merge journal
// commits, so it is worth more workers than cores.
const syncWorkers = 16

// syncTrees makes every file and directory under each of dirs durable, and
// each dir's entry in its parent. A restore is not done until then: after a
// crash, a restored data directory with files lost from the page cache
// would start and silently miss data.
//
// The walk keeps nothing but the current directory in memory, whatever the
// number of files.
func syncTrees(ctx context.Context, dirs ...string) error {
	g, gctx := errgroup.WithContext(ctx)
	paths := make(chan string, 256)
	for range syncWorkers {
		g.Go(func() error {
			for p := range paths {
				if err := fsyncPath(p); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(paths)
		for _, root := range dirs {
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				// Symbolic links (pg_tblspc) are synced with their
				// directory; what they point to is another tree of dirs.
				if d.Type()&fs.ModeSymlink != 0 {
					return nil
				}
				select {
				case paths <- p:
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			})
			if err != nil {
				return fmt.Errorf("sync %s: %w", root, err)
			}
			select {
			case paths <- filepath.Dir(root):
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	return g.Wait()
}

// fsyncPath opens a file or directory read-only and fsyncs it; Linux
// accepts fsync on a read-only descriptor for both. Raw descriptors: an
// os.File's set-up costs more than the fsync of a clean small file.
func fsyncPath(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: p, Err: err}
	}
	err = unix.Fsync(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "fsync", Path: p, Err: err}
	}
	return nil
}

// Sync methods, with the names PostgreSQL's own tools give them
// (initdb --sync-method, recovery_init_sync_method).
const (
	SyncFsync  = "fsync"  // syncfs, then fsync of every file and directory
	SyncSyncfs = "syncfs" // syncfs of each file system only
)

// fsWatch holds a descriptor on each restored tree (and its parent) from
// before the first write: syncfs through it flushes the whole file system
// in one call, and reports any write-back error on that file system since
// the descriptor was opened (Linux 5.8 and later).
type fsWatch []int

func watchFileSystems(dirs []string) (fsWatch, error) {
	var w fsWatch
	for _, d := range dirs {
		for _, p := range []string{d, filepath.Dir(d)} {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				w.close()
				return nil, &fs.PathError{Op: "open", Path: p, Err: err}
			}
			w = append(w, fd)
		}
	}
	return w, nil
}

// syncfs flushes every watched file system. Several descriptors on one
// file system cost one real flush: the later calls find nothing dirty.
func (w fsWatch) syncfs() error {
	for _, fd := range w {
		if err := unix.Syncfs(fd); err != nil {
			return fmt.Errorf("syncfs: %w", err)
		}
	}
	return nil
}

func (w fsWatch) close() {
	for _, fd := range w {
		unix.Close(fd)
	}
}
