package cloud

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempMarker separates a temporary file's target name from the random
// part that os.CreateTemp puts in place of the "*" of createTemp's pattern.
const tempMarker = ".tmp-"

// tempTarget returns the name of the object a temporary file of Put
// (".<name>.tmp-<digits>") was to become. Only that exact shape is taken
// for a temporary file: a hidden file of any other name is not ours, and
// is left alone.
func tempTarget(name string) (string, bool) {
	i := strings.LastIndex(name, tempMarker)
	if !strings.HasPrefix(name, ".") || i <= 1 {
		return "", false
	}
	random := name[i+len(tempMarker):]
	if random == "" || strings.Trim(random, "0123456789") != "" {
		return "", false
	}
	return name[1:i], true
}

// SweepStale implements StaleSweeper: it removes the temporary files that
// a process killed in the middle of a Put left, which List and Delete
// never see (their names are hidden, and no key can name them). Keys
// shown to opts.Stale are the objects the files were to become; their
// mtime is when they were last written, so a slow Put that still writes
// looks young. Directories left empty are removed, as by Delete.
func (s *fileStore) SweepStale(ctx context.Context, prefix string, opts SweepOptions) (SweepResult, error) {
	res := SweepResult{What: "temporary files"}
	if err := checkPrefix(prefix); err != nil {
		return res, s.fail("sweep", prefix, err)
	}
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	dirs := map[string]bool{}
	err := s.sweepDir(ctx, start, prefix, opts, &res, dirs)
	errs := append([]error{s.fail("sweep", prefix, err)}, s.syncAndPrune("sweep", dirs)...)
	return res, errors.Join(errs...)
}

func (s *fileStore) sweepDir(ctx context.Context, dirKey, prefix string, opts SweepOptions, res *SweepResult, dirs map[string]bool) error {
	dir := s.path(dirKey)
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	join := func(name string) string {
		if dirKey == "" {
			return name
		}
		return dirKey + "/" + name
	}
	for _, de := range des {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := de.Name()
		if de.IsDir() {
			key := join(name)
			if !strings.HasPrefix(name, ".") && (strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/")) {
				if err := s.sweepDir(ctx, key, prefix, opts, res, dirs); err != nil {
					return err
				}
			}
			continue
		}
		target, ok := tempTarget(name)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		key := join(target)
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // the Put ended meanwhile
		}
		if err != nil {
			return err
		}
		if !opts.Stale(key, fi.ModTime()) {
			continue
		}
		if !opts.DryRun {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			dirs[dir] = true
		}
		res.Count++
		res.Bytes += fi.Size()
	}
	return nil
}
