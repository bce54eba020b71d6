package verify

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// readBuffer is each part reader's buffer: large enough that reading a
// part takes few calls into the store's stream and the decompressor.
const readBuffer = 1 << 20

// maxFileProblems bounds the per-file lines of one part: a part whose
// files all differ is one problem, told in a few lines, not thousands.
const maxFileProblems = 5

type checker struct {
	store    cloud.Store
	layout   catalog.Layout
	jobs     int
	progress Progress
	ps       *problems
}

// backup checks one DONE backup's objects. An error is a failure to
// check (the store), never a problem found.
func (c *checker) backup(ctx context.Context, b *catalog.Backup) (BackupResult, error) {
	res := BackupResult{ID: b.ID, Type: b.Kind(), OK: true}
	bad := false
	report := func(p Problem) {
		p.Backup = b.ID
		c.ps.add(p)
		bad = true
	}
	if b.Method == "snapshot" || len(b.Snapshots) > 0 {
		res.Note = "a snapshot backup: its disk snapshots are not checked, only its WAL"
		c.ps.add(Problem{Kind: KindNotChecked, Object: b.ID, Backup: b.ID,
			What:  "snapshot backups are not read by gbc-verify",
			Means: "only a drill (gbc-restore --snapshot-recovery-instance) proves it restores"})
		return res, nil
	}
	if len(b.Parts) == 0 {
		report(Problem{Kind: KindRecord, Object: c.layout.RecordKey(b.ID), What: "the record lists no part", Means: cannotRestore(b.ID)})
		res.OK = false
		return res, nil
	}

	var m *manifest
	if b.ManifestKey == "" {
		res.Note = "no backup_manifest: the files inside the parts are not checked against one"
	} else {
		var n int64
		var err error
		m, n, err = c.manifest(ctx, b, report)
		if err != nil {
			return res, err
		}
		res.StoredBytes += n
	}
	if b.BlockMap != nil {
		n, err := c.blockMap(ctx, b, report)
		if err != nil {
			return res, err
		}
		res.StoredBytes += n
	}

	parts := append([]catalog.Part(nil), b.Parts...)
	// The biggest first, so that the last part does not run alone.
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].StoredSize > parts[j].StoredSize })
	var files, stored atomic.Int64
	var partsBad atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.jobs)
	for _, p := range parts {
		g.Go(func() error {
			r, err := c.part(gctx, b, p, m)
			if err != nil {
				return fmt.Errorf("verify part %s: %w", p.Key, err)
			}
			files.Add(r.files)
			stored.Add(r.stored)
			for _, pr := range r.problems {
				pr.Backup = b.ID
				c.ps.add(pr)
				partsBad.Store(true)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	res.Parts, res.Files = len(parts), files.Load()
	res.StoredBytes += stored.Load()
	if partsBad.Load() {
		bad = true
	}
	// Listed files that no part holds: only worth saying when every part
	// was read in full (a damaged part hides its files).
	if m != nil && !partsBad.Load() {
		if missing := m.unseen(); len(missing) > 0 {
			shown := missing[:min(len(missing), maxFileProblems)]
			for _, p := range shown {
				report(Problem{Kind: KindFile, Object: p, What: "listed in backup_manifest but in no part", Means: cannotRestore(b.ID)})
			}
			if more := len(missing) - len(shown); more > 0 {
				report(Problem{Kind: KindFile, Object: c.layout.BackupRoot(b.ID), What: fmt.Sprintf("%d more files listed in backup_manifest are in no part", more), Means: cannotRestore(b.ID)})
			}
		}
	}
	res.OK = !bad
	return res, nil
}

// manifest fetches, verifies and indexes the backup_manifest. A problem
// with it is reported and yields a nil manifest.
func (c *checker) manifest(ctx context.Context, b *catalog.Backup, report func(Problem)) (*manifest, int64, error) {
	key := b.ManifestKey
	var m *manifest
	var perr error
	n, err := c.object(ctx, key, b.ManifestSHA256, b.ManifestStoredSize, func(r io.Reader) error {
		m, perr = parseManifest(r)
		if perr != nil {
			// The rest is read for the checksum all the same.
			_, err := io.Copy(io.Discard, r)
			return err
		}
		return nil
	}, func(what string) {
		report(Problem{Kind: KindManifest, Object: key, What: what, Means: cannotRestore(b.ID)})
	})
	if err != nil || n < 0 {
		return nil, max(n, 0), err
	}
	if perr != nil {
		report(Problem{Kind: KindManifest, Object: key, What: perr.Error(), Means: cannotRestore(b.ID)})
		return nil, n, nil
	}
	return m, n, nil
}

// blockMap checks the block map object's bytes and that it decompresses
// to its recorded size.
func (c *checker) blockMap(ctx context.Context, b *catalog.Backup, report func(Problem)) (int64, error) {
	o := b.BlockMap
	means := fmt.Sprintf("no incremental backup can be taken on backup %s, and a --delta restore of it cannot use the map", b.ID)
	var size int64
	n, err := c.object(ctx, o.Key, o.SHA256, o.StoredSize, func(r io.Reader) error {
		var err error
		size, err = io.Copy(io.Discard, r)
		return err
	}, func(what string) {
		report(Problem{Kind: KindBlockMap, Object: o.Key, What: what, Means: means})
	})
	if err != nil || n < 0 {
		return max(n, 0), err
	}
	if o.Size > 0 && size != o.Size {
		report(Problem{Kind: KindBlockMap, Object: o.Key, What: fmt.Sprintf("decompresses to %d bytes, the record says %d", size, o.Size), Means: means})
	}
	return n, nil
}

// object streams a small stored object through consume (decompressed by
// its key's extension) and checks its size and SHA-256. Problems go to
// bad, and n is then -1; an error is a failure of the store.
func (c *checker) object(ctx context.Context, key, wantSHA string, wantSize int64, consume func(io.Reader) error, bad func(string)) (int64, error) {
	body, err := c.store.Get(ctx, key)
	if errors.Is(err, cloud.ErrNotFound) {
		bad("missing from the store")
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	defer body.Close()
	raw := &rawReader{r: body, h: sha256.New(), progress: c.progress}
	_, codec := compress.SplitKey(key)
	dec, derr := codec.NewReader(bufio.NewReaderSize(raw, 64<<10))
	if derr == nil {
		derr = consume(dec)
		if cerr := dec.Close(); derr == nil {
			derr = cerr
		}
	}
	if _, err := io.Copy(io.Discard, raw); err != nil && raw.err == nil {
		raw.err = err
	}
	if raw.err != nil {
		return 0, fmt.Errorf("read %s: %w", key, raw.err)
	}
	if what := raw.verdict(wantSHA, wantSize); what != "" {
		bad(what)
		return -1, nil
	}
	if derr != nil {
		bad(fmt.Sprintf("its stored bytes match the record but do not decompress (%s): %v", codec.Name(), derr))
		return -1, nil
	}
	return raw.n, nil
}

// partResult is what reading one part found.
type partResult struct {
	files, stored int64
	problems      []Problem
}

// part reads one part end to end: the stored bytes through SHA-256, then
// the decompressed tar stream, each file through its manifest checksum.
func (c *checker) part(ctx context.Context, b *catalog.Backup, p catalog.Part, m *manifest) (partResult, error) {
	var res partResult
	means := cannotRestore(b.ID)
	problem := func(kind, object, what string) {
		res.problems = append(res.problems, Problem{Kind: kind, Object: object, What: what, Means: means})
	}
	body, err := c.store.Get(ctx, p.Key)
	if errors.Is(err, cloud.ErrNotFound) {
		problem(KindPart, p.Key, "missing from the store")
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer body.Close()
	raw := &rawReader{r: body, h: sha256.New(), progress: c.progress}
	_, codec := compress.SplitKey(p.Key)
	var fileProblems []Problem
	var tarBytes, files int64
	dec, contentErr := codec.NewReader(bufio.NewReaderSize(raw, readBuffer))
	if contentErr == nil {
		plain := &countReader{r: dec}
		files, fileProblems, contentErr = readTar(plain, p, m, means)
		if contentErr == nil {
			// tar's end blocks and padding count in the part's size.
			_, contentErr = io.Copy(io.Discard, plain)
		}
		tarBytes = plain.n
		if cerr := dec.Close(); contentErr == nil {
			contentErr = cerr
		}
	}
	// Whatever the decoder made of it, every stored byte is hashed.
	if _, err := io.Copy(io.Discard, raw); err != nil && raw.err == nil {
		raw.err = err
	}
	if raw.err != nil {
		return res, raw.err
	}
	res.stored = raw.n
	res.files = files
	switch what := raw.verdict(p.SHA256, p.StoredSize); {
	case what != "":
		problem(KindPart, p.Key, what)
	case contentErr != nil:
		problem(KindPart, p.Key, fmt.Sprintf("its stored bytes match the record but it does not read as a %s-compressed tar stream: %v (it was stored damaged)", codec.Name(), contentErr))
	case p.Size > 0 && tarBytes != p.Size:
		problem(KindPart, p.Key, fmt.Sprintf("decompresses to %d bytes of tar, the record says %d", tarBytes, p.Size))
	case p.Files > 0 && files != int64(p.Files):
		problem(KindPart, p.Key, fmt.Sprintf("holds %d files, the record says %d", files, p.Files))
	default:
		res.problems = append(res.problems, fileProblems...)
	}
	return res, nil
}

// readTar reads the tar stream of part p, checking each regular file
// against the manifest (nil: sizes only against the headers, which tar
// checks itself).
func readTar(r io.Reader, p catalog.Part, m *manifest, means string) (int64, []Problem, error) {
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	var files, extra int64
	var out []Problem
	add := func(object, what string) {
		if len(out) < maxFileProblems {
			out = append(out, Problem{Kind: KindFile, Object: object, What: what + " (in part " + p.Key + ")", Means: means})
		} else {
			extra++
		}
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return files, out, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		files++
		name := path.Clean(h.Name)
		manPath := name
		if p.Tablespace != "" {
			manPath = "pg_tblspc/" + p.Tablespace + "/" + name
		}
		var e *manifestFile
		if m != nil {
			if e = m.lookup(manPath); e == nil {
				add(manPath, "not listed in backup_manifest")
			}
		}
		fh := fileHash(noHash{})
		if e != nil {
			fh, _ = newFileHash(e.algorithm) // checked when parsed
		}
		n, err := io.CopyBuffer(fh, onlyReader{tr}, buf)
		if err != nil {
			return files, out, fmt.Errorf("%s: %w", h.Name, err)
		}
		if e == nil {
			continue
		}
		if e.seen.Swap(true) {
			add(manPath, "stored twice")
		}
		switch {
		case n != e.size:
			add(manPath, fmt.Sprintf("has %d bytes, backup_manifest says %d", n, e.size))
		case e.checksum != "" && fh.hex() != e.checksum:
			add(manPath, fmt.Sprintf("%s checksum %s, backup_manifest says %s", e.algorithm, fh.hex(), e.checksum))
		}
	}
	if extra > 0 {
		out = append(out, Problem{Kind: KindFile, Object: p.Key, What: fmt.Sprintf("%d more files differ from backup_manifest", extra), Means: means})
	}
	return files, out, nil
}

// rawReader hashes and counts the stored bytes as they are read, and
// remembers a read error of the store's stream, so that a broken download
// (a failure to check) is told from damaged content (a problem).
type rawReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	err      error
	progress Progress
}

func (r *rawReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.h.Write(p[:n])
		r.n += int64(n)
		if r.progress != nil {
			r.progress.Add(int64(n))
		}
	}
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// verdict compares what was read with the record: "" when it matches.
func (r *rawReader) verdict(wantSHA string, wantSize int64) string {
	sum := hex.EncodeToString(r.h.Sum(nil))
	switch {
	case wantSize > 0 && r.n != wantSize:
		how := "truncated"
		if r.n > wantSize {
			how = "longer"
		}
		return fmt.Sprintf("%s: %d bytes stored, the record says %d", how, r.n, wantSize)
	case wantSHA == "":
		return "the record has no SHA-256 for it: it cannot be verified (nor restored)"
	case sum != wantSHA:
		return fmt.Sprintf("altered or damaged: the stored bytes have SHA-256 %.16s…, the record says %.16s…", sum, wantSHA)
	}
	return ""
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// onlyReader hides a reader's WriteTo, so that io.CopyBuffer uses the
// buffer given.
type onlyReader struct{ io.Reader }
