package wal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// A background worker (the restore prefetcher, the archive pusher) holds
// an exclusive flock on a lock file for its whole life, so that only one
// runs per directory. The kernel drops the lock when the process ends, so a
// crashed worker never blocks the next.

// lockFile takes f's exclusive lock without waiting.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// takeWorkerLock creates the lock file at path if needed and takes its
// lock. It returns nil, nil when another worker holds it; closing the file
// releases it.
func takeWorkerLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open worker lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// workerRunning tells whether a worker holds the lock at path right now.
func workerRunning(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
