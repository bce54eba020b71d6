package cloud

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// LevelLister is an optional capability (see As): listing one level of the
// key hierarchy, as a delimiter listing does on S3, GCS and Azure and a
// directory read does on file://. Use it through ListLevel, which falls
// back to List where a Store lacks it.
type LevelLister interface {
	ListLevel(ctx context.Context, prefix string, fn func(Attrs) error) error
}

// ListLevel calls fn, in lexical order, once for every entry one level
// below prefix ("" or a prefix ending with "/"): each object directly
// under it, and each "directory", a key prefix ending with "/" under which
// objects are stored, as an Attrs whose Key ends with "/" and that has no
// size or time. An error returned by fn stops the walk and is returned.
//
// Why it exists: finding the servers of a store, or the WAL directories of
// a server, with List reads every key below (100,000 WAL objects are 100
// pages); a level listing costs one request per 1,000 entries of that
// level. It is not retried by WithRetry: callers that must ride out a
// transient failure retry the whole call.
func ListLevel(ctx context.Context, s Store, prefix string, fn func(Attrs) error) error {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return fmt.Errorf("%w: level prefix %q must be empty or end with a slash", errInvalid, prefix)
	}
	if l, ok := As[LevelLister](s); ok {
		return l.ListLevel(ctx, prefix, fn)
	}
	return listLevelByList(ctx, s, prefix, fn)
}

// listLevelByList derives a level listing from a full one: the keys of one
// directory are contiguous in lexical order, so each is reported once.
func listLevelByList(ctx context.Context, s Store, prefix string, fn func(Attrs) error) error {
	last := ""
	return s.List(ctx, prefix, func(a Attrs) error {
		rest := strings.TrimPrefix(a.Key, prefix)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			dir := prefix + rest[:i+1]
			if dir == last {
				return nil
			}
			last = dir
			return fn(Attrs{Key: dir})
		}
		return fn(a)
	})
}

// ListLevel implements LevelLister with one directory read. A directory
// is reported only when it holds an object somewhere below (Delete removes
// the directories it empties, but a crashed Put may leave one behind).
func (s *fileStore) ListLevel(ctx context.Context, prefix string, fn func(Attrs) error) error {
	if err := checkPrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	dirKey := strings.TrimSuffix(prefix, "/")
	des, err := os.ReadDir(s.path(dirKey))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return s.fail("list", prefix, err)
	}
	type entry struct {
		sortKey string
		dir     bool
		de      fs.DirEntry
	}
	ents := make([]entry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, "."):
		case de.IsDir():
			ents = append(ents, entry{sortKey: name + "/", dir: true, de: de})
		case de.Type().IsRegular():
			ents = append(ents, entry{sortKey: name, de: de})
		}
	}
	slices.SortFunc(ents, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range ents {
		key := prefix + e.sortKey
		if e.dir {
			held, err := s.holdsObject(ctx, key)
			if err != nil {
				return s.fail("list", key, err)
			}
			if held {
				if err := fn(Attrs{Key: key}); err != nil {
					return err
				}
			}
			continue
		}
		fi, err := e.de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return s.fail("list", key, err)
		}
		if fi.Size() < fileHeaderSize {
			continue // not an object of ours, as in List
		}
		if err := fn(Attrs{Key: key, Size: fi.Size() - fileHeaderSize, ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// errHeld ends holdsObject's walk at the first object.
var errHeld = errors.New("holds an object")

func (s *fileStore) holdsObject(ctx context.Context, dir string) (bool, error) {
	err := s.walk(ctx, strings.TrimSuffix(dir, "/"), dir, func(Attrs) error { return errHeld })
	if errors.Is(err, errHeld) {
		return true, nil
	}
	return false, err
}

// ListLevel implements LevelLister, translating keys like List.
func (p *prefixStore) ListLevel(ctx context.Context, prefix string, fn func(Attrs) error) error {
	return ListLevel(ctx, p.s, p.prefix+prefix, func(a Attrs) error {
		a.Key = strings.TrimPrefix(a.Key, p.prefix)
		return fn(a)
	})
}
