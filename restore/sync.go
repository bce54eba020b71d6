package restore

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
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
// accepts fsync on a read-only descriptor for both.
func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}
