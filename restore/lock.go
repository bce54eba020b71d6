package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockFile is the file a restore holds locked (flock) in the data
// directory while it writes there. The kernel drops the lock when the
// process ends, however it ends, so a lock left by a killed restore is
// never taken for a running one. The file goes before the restore
// returns: PostgreSQL never sees it, nor does pg_verifybackup, which would
// report a file the backup manifest does not list.
const LockFile = ".gbc-restore.lock"

// destLock is a held lock on a data directory.
type destLock struct {
	f    *os.File
	path string
}

// lockDest takes the lock of dir, which exists, without waiting: a
// restore that finds it taken refuses at once with a BusyError.
func lockDest(dir string) (*destLock, error) {
	path := filepath.Join(dir, LockFile)
	// The holder removes the file before it lets go of the lock, so a
	// lock taken on a file that is no longer at path protects nothing:
	// try again on the new one. Twice is enough unless restores keep
	// coming and going; a few more tries cost nothing.
	for range 5 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create the lock file %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &BusyError{Dir: dir}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if samePath(f, path) {
			return &destLock{f: f, path: path}, nil
		}
		f.Close()
	}
	return nil, &BusyError{Dir: dir}
}

// samePath tells whether f is still the file at path.
func samePath(f *os.File, path string) bool {
	held, err := f.Stat()
	if err != nil {
		return false
	}
	cur, err := os.Stat(path)
	return err == nil && os.SameFile(held, cur)
}

// release removes the lock file, then lets go of the lock. It may be
// called more than once.
func (l *destLock) release() error {
	if l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// lockHeld tells whether a restore holds the lock of dir now. It changes
// nothing in dir: the lock file is opened only if it exists, and a lock
// taken to find out is dropped at once.
func lockHeld(dir string) bool {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}
