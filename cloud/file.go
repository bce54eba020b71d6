package cloud

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// The file:// provider is our own small driver rather than gocloud's
// fileblob, because fileblob does not fsync: after a power cut an
// "archived" WAL segment could be empty or missing, and archive_command's
// promise would be a lie.
//
// Each object is one file at <root>/<key>. It starts with a fixed-size
// header holding the user metadata, followed by the object's bytes:
//
//	offset 0: "GBCOBJ1\n"
//	offset 8: big-endian uint32 n, the length of the JSON that follows
//	offset 12: n bytes of JSON, {"metadata":{...}}, then zero padding
//	offset 4096: the object's content
//
// Keeping metadata in the same file (rather than a sidecar) makes data and
// metadata appear together in one rename or link, so a crash or a race
// between two writers can never pair one object's bytes with another's
// metadata. The fixed size lets List compute sizes from directory entries
// without opening files. To read an object by hand: tail -c +4097 FILE.
//
// A Put writes a hidden temporary file (".<name>.tmp-<random>") in the
// target directory, fsyncs it, renames it over the key (or, for
// IfNotExists, hard-links it, which fails atomically if the key exists),
// and fsyncs the directory. Hidden names never appear in Get, Stat or List,
// and keys cannot contain them (see checkKey).
const (
	fileMagic      = "GBCOBJ1\n"
	fileHeaderSize = 4096
	fileDirMode    = 0o750
	fileMode       = 0o640
	// fileCopyBuffer is the copy buffer per Put: large enough for few
	// system calls, small enough to be irrelevant next to cloud parts.
	fileCopyBuffer = 256 << 10
)

type fileHeader struct {
	Metadata map[string]string `json:"metadata"`
}

// fileStore is the file:// provider, rooted at an absolute directory.
type fileStore struct {
	root string
}

// newFileStore returns the file:// provider rooted at dir. The directory is
// created by the first Put; until then Get and Stat report ErrNotFound (with
// ErrNoBucket) and List lists nothing.
func newFileStore(dir string) *fileStore {
	return &fileStore{root: filepath.Clean(dir)}
}

func (s *fileStore) path(key string) string {
	if key == "" {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(key))
}

func (s *fileStore) url(key string) string {
	u := "file://" + filepath.ToSlash(s.root)
	if key != "" {
		u = strings.TrimSuffix(u, "/") + "/" + key
	}
	return u
}

// fail wraps err for op on key, classifying file-system errors; a missing
// root directory also carries ErrNoBucket (an unmounted backup volume must
// not look like a missing object).
func (s *fileStore) fail(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	out := &Error{Op: op, URL: s.url(key), Err: err}
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		out.Kind = ErrNotFound
		if _, serr := os.Stat(s.root); errors.Is(serr, fs.ErrNotExist) {
			out.noBucket = true
		}
	case errors.Is(err, fs.ErrExist):
		out.Kind = ErrExists
	case errors.Is(err, fs.ErrPermission):
		out.Kind = ErrPermission
	default:
		out.Kind, _ = classify(err)
	}
	return out
}

func encodeFileHeader(md map[string]string) ([]byte, error) {
	if md == nil {
		md = map[string]string{}
	}
	js, err := json.Marshal(fileHeader{Metadata: md})
	if err != nil {
		return nil, err
	}
	if len(js) > fileHeaderSize-len(fileMagic)-4 {
		return nil, fmt.Errorf("%w: metadata too large for the file store (%d bytes of JSON)", errInvalid, len(js))
	}
	hdr := make([]byte, fileHeaderSize)
	copy(hdr, fileMagic)
	binary.BigEndian.PutUint32(hdr[len(fileMagic):], uint32(len(js)))
	copy(hdr[len(fileMagic)+4:], js)
	return hdr, nil
}

func readFileHeader(f *os.File) (map[string]string, error) {
	hdr := make([]byte, fileHeaderSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("not a gbc object file (too short)")
		}
		return nil, err
	}
	if !bytes.Equal(hdr[:len(fileMagic)], []byte(fileMagic)) {
		return nil, errors.New("not a gbc object file (bad header)")
	}
	n := binary.BigEndian.Uint32(hdr[len(fileMagic):])
	if int(n) > fileHeaderSize-len(fileMagic)-4 {
		return nil, errors.New("corrupt gbc object header")
	}
	var h fileHeader
	if err := json.Unmarshal(hdr[len(fileMagic)+4:len(fileMagic)+4+int(n)], &h); err != nil {
		return nil, fmt.Errorf("corrupt gbc object header: %w", err)
	}
	if h.Metadata == nil {
		h.Metadata = map[string]string{}
	}
	return h.Metadata, nil
}

// Put implements Store.
func (s *fileStore) Put(ctx context.Context, key string, r Body, opts PutOptions) (err error) {
	if err := checkKey(key); err != nil {
		return s.fail("put", key, err)
	}
	if err := checkMetadata(opts.Metadata); err != nil {
		return s.fail("put", key, err)
	}
	hdr, err := encodeFileHeader(opts.Metadata)
	if err != nil {
		return s.fail("put", key, err)
	}
	final := s.path(key)
	dir := filepath.Dir(final)
	f, err := s.createTemp(dir, filepath.Base(final))
	if err != nil {
		return s.fail("put", key, s.conflict(dir, err))
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()

	if _, err := f.Write(hdr); err != nil {
		return s.fail("put", key, err)
	}
	buf := make([]byte, fileCopyBuffer)
	src := &sourceErrReader{r: r}
	if _, err := io.CopyBuffer(onlyWriter{f}, ctxReader{ctx, src}, buf); err != nil {
		if src.err != nil {
			// The source failed, not the disk: its error keeps its own
			// classification, never the file system's.
			return &Error{Op: "put", URL: s.url(key), Kind: KindOf(src.err), Err: fmt.Errorf("reading source: %w", src.err)}
		}
		return s.fail("put", key, err)
	}
	if err := f.Sync(); err != nil {
		return s.fail("put", key, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return s.fail("put", key, cerr)
	}
	if err := ctx.Err(); err != nil {
		return s.fail("put", key, err)
	}

	if opts.IfNotExists {
		// link(2) fails with EEXIST if the name is taken, which makes the
		// check and the publication one atomic step.
		if err := os.Link(tmp, final); err != nil {
			return s.fail("put", key, s.conflict(final, err))
		}
		_ = os.Remove(tmp)
	} else if err := os.Rename(tmp, final); err != nil {
		return s.fail("put", key, s.conflict(final, err))
	}
	if err := syncDir(dir); err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

// conflict explains the one layout a file system cannot hold and object
// stores can: a key that is also the "directory" of other keys ("a" and
// "a/b"). The errno is deliberately dropped (%v): it would be classified
// as ErrNotFound or ErrExists, which would mislead.
func (s *fileStore) conflict(path string, err error) error {
	isDir := false
	if errors.Is(err, fs.ErrExist) {
		fi, serr := os.Stat(path)
		isDir = serr == nil && fi.IsDir()
	}
	if isDir || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("a key cannot be both an object and a prefix of other keys in a file store: %v", err)
	}
	return err
}

// createTemp makes dir (durably) and a hidden temporary file in it. A
// concurrent Delete may prune the directory between the two steps when it
// momentarily looks empty, so a vanished directory is simply made again.
func (s *fileStore) createTemp(dir, base string) (*os.File, error) {
	var lastErr error
	for range 5 {
		if err := s.mkdirAll(dir); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			// A delete pruned a parent while mkdirAll created it: try
			// again, as for CreateTemp below.
			lastErr = err
			continue
		}
		f, err := os.CreateTemp(dir, "."+base+".tmp-*")
		if err == nil {
			if err := f.Chmod(fileMode); err != nil {
				_ = f.Close()
				_ = os.Remove(f.Name())
				return nil, err
			}
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// mkdirAll is os.MkdirAll that also fsyncs the parent of every directory it
// creates, so that a new object's path survives a crash along with it.
func (s *fileStore) mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := s.mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, fileDirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// open opens key's file and reads its header.
func (s *fileStore) open(key string) (*os.File, fs.FileInfo, map[string]string, error) {
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		// A directory (a key prefix) or something foreign: not an object.
		err = &fs.PathError{Op: "open", Path: f.Name(), Err: fs.ErrNotExist}
	}
	var md map[string]string
	if err == nil {
		md, err = readFileHeader(f)
		if err != nil {
			err = fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, nil, nil, err
	}
	return f, fi, md, nil
}

// Get implements Store.
func (s *fileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.GetRange(ctx, key, 0, -1)
}

// GetRange implements Store. The open file keeps reading the version it
// opened: a Put renames a new file over the key, leaving this one intact.
func (s *fileStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, s.fail("get", key, err)
	}
	if err := checkRange(offset); err != nil {
		return nil, s.fail("get", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail("get", key, err)
	}
	f, fi, _, err := s.open(key)
	if err != nil {
		return nil, s.fail("get", key, err)
	}
	size := fi.Size() - fileHeaderSize
	start, n := clampRange(size, offset, length)
	// open left the offset just past the header.
	if start > 0 {
		if _, err := f.Seek(fileHeaderSize+start, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, s.fail("get", key, err)
		}
	}
	return &fileReader{f: f, r: io.LimitReader(f, n), v: contract.Version{Size: size, ModTime: fi.ModTime()}}, nil
}

// fileReader hides *os.File's other methods (Seek, ReadAt) which would
// expose the header.
type fileReader struct {
	f *os.File
	r io.Reader // f, limited to the range
	v contract.Version
}

func (r *fileReader) Read(p []byte) (int, error)              { return r.r.Read(p) }
func (r *fileReader) Close() error                            { return r.f.Close() }
func (r *fileReader) ObjectVersion() (contract.Version, bool) { return r.v, true }

// Stat implements Store.
func (s *fileStore) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := checkKey(key); err != nil {
		return Attrs{}, s.fail("stat", key, err)
	}
	if err := ctx.Err(); err != nil {
		return Attrs{}, s.fail("stat", key, err)
	}
	f, fi, md, err := s.open(key)
	if err != nil {
		return Attrs{}, s.fail("stat", key, err)
	}
	_ = f.Close()
	return Attrs{Key: key, Size: fi.Size() - fileHeaderSize, ModTime: fi.ModTime(), Metadata: md}, nil
}

// List implements Store. It walks directories depth first, each sorted so
// that the keys come out in lexical order: a directory sorts as its name
// plus "/", so that "a.b" (0x2e) comes before everything under "a/" (0x2f)
// and "a0" after it. Memory is bounded by the largest single directory,
// which gbc's key layout keeps small (WAL goes in one directory per 4 GiB
// of WAL, i.e. at most 256 segments of 16 MiB).
func (s *fileStore) List(ctx context.Context, prefix string, fn func(Attrs) error) error {
	if err := checkPrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	// Start at the deepest directory the prefix names in full.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var fnErr error
	err := s.walk(ctx, start, prefix, func(a Attrs) error {
		if err := fn(a); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return s.fail("list", prefix, err)
}

type fileEntry struct {
	name    string
	sortKey string
	dir     bool
	entry   fs.DirEntry
}

func (s *fileStore) walk(ctx context.Context, dirKey, prefix string, fn func(Attrs) error) error {
	des, err := os.ReadDir(s.path(dirKey))
	if err != nil {
		// A missing directory (or root) holds no objects.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return err
	}
	ents := make([]fileEntry, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue // temporary files, and nothing a key can name
		}
		switch {
		case de.IsDir():
			ents = append(ents, fileEntry{name: name, sortKey: name + "/", dir: true})
		case de.Type().IsRegular():
			ents = append(ents, fileEntry{name: name, sortKey: name, entry: de})
		}
	}
	slices.SortFunc(ents, func(a, b fileEntry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := e.name
		if dirKey != "" {
			key = dirKey + "/" + e.name
		}
		if e.dir {
			if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
				if err := s.walk(ctx, key, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		fi, err := e.entry.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return err
		}
		if fi.Size() < fileHeaderSize {
			// Not written by us (every object has the header). Skipping
			// it keeps one stray file from breaking every listing.
			continue
		}
		if err := fn(Attrs{Key: key, Size: fi.Size() - fileHeaderSize, ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store. Directories left empty are removed, up to (not
// including) the root, so that deleted backups leave no litter.
func (s *fileStore) Delete(ctx context.Context, keys ...string) error {
	var errs []error
	dirs := map[string]bool{}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return s.fail("delete", key, err)
		}
		if err := checkKey(key); err != nil {
			errs = append(errs, s.fail("delete", key, err))
			continue
		}
		p := s.path(key)
		if err := os.Remove(p); err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				errs = append(errs, s.fail("delete", key, err))
			}
			continue
		}
		dirs[filepath.Dir(p)] = true
	}
	errs = append(errs, s.syncAndPrune("delete", dirs)...)
	return errors.Join(errs...)
}

// syncAndPrune makes removals from dirs durable, then removes the
// directories left empty, up to (not including) the root.
func (s *fileStore) syncAndPrune(op string, dirs map[string]bool) []error {
	var errs []error
	for dir := range dirs {
		// Make the removals durable before pruning: a resurrected object
		// after a crash would confuse retention.
		if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, s.fail(op, "", err))
		}
		for d := dir; d != s.root && strings.HasPrefix(d, s.root); d = filepath.Dir(d) {
			// Remove fails on a non-empty directory, which ends the climb.
			if os.Remove(d) != nil {
				break
			}
		}
	}
	return errs
}

// Close implements Store.
func (s *fileStore) Close() error { return nil }

// ctxReader stops a copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// sourceErrReader remembers a failure of the source (io.EOF is none), to
// tell it apart from one of the disk. It has no method but Read, so that
// io.Copy cannot bypass a wrapper through WriterTo/ReaderFrom.
type sourceErrReader struct {
	r   io.Reader
	err error
}

func (s *sourceErrReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// onlyWriter hides every method but Write, so that io.CopyBuffer uses the
// buffer it is given.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
