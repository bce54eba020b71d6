package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// StatusUnreadable marks, in listings only, a backup whose backup.json
// exists but cannot be decoded. Listing it instead of failing keeps one
// damaged record from hiding every other backup; it is never stored.
const StatusUnreadable Status = "UNREADABLE"

// listConcurrency bounds the record GETs of one listing. Records are a few
// KiB, so the cost of a listing is round trips, not bytes: 32 requests in
// flight turn 2,000 records into about 60 round trips while staying far
// below every provider's per-client request limits.
const listConcurrency = 32

// Special BACKUP_ID values.
const (
	RefLatest = "latest" // the newest DONE backup
	RefOldest = "oldest" // the oldest DONE backup
	RefAuto   = "auto"   // the newest DONE backup that suits a recovery target
)

// ErrNoBackup matches (with errors.Is) every "no such backup" error of Find,
// as does cloud.ErrNotFound, which commands map to their not-found exit code.
var ErrNoBackup = fmt.Errorf("backup %w", cloud.ErrNotFound)

// List returns the record of every backup of the server, whatever its
// status, oldest first (ids are start times, so they sort by time).
//
// One paginated LIST of the server's base/ prefix finds the records, then
// they are read in parallel (see Summaries for the fast listing). A record
// that vanishes between LIST and GET was deleted meanwhile and is left out.
func List(ctx context.Context, s cloud.Store, l Layout) ([]*Backup, error) {
	recs, err := listRecords(ctx, s, l)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.id
	}
	all, err := loadAll(ctx, s, l, ids)
	return compact(all), err
}

// loadAll reads the records of ids in parallel, in the order of ids.
func loadAll(ctx context.Context, s cloud.Store, l Layout, ids []string) ([]*Backup, error) {
	out := make([]*Backup, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(listConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			b, err := Load(gctx, s, l, id)
			switch {
			case errors.Is(err, cloud.ErrNotFound):
				return nil
			case err != nil && gctx.Err() == nil && !isStoreError(err):
				out[i] = &Backup{ID: id, Status: StatusUnreadable, Error: err.Error()}
				return nil
			case err != nil:
				return err
			}
			out[i] = b
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list backups of server %s: %w", l.Server, err)
	}
	return out, nil
}

// compact drops the nil entries of records deleted between LIST and GET.
func compact(bs []*Backup) []*Backup {
	kept := bs[:0]
	for _, b := range bs {
		if b != nil {
			kept = append(kept, b)
		}
	}
	return kept
}

// isStoreError tells a failure to read the object (which must fail the
// listing) from a record that was read but is not valid.
func isStoreError(err error) bool {
	return errors.Is(err, cloud.ErrPermission) || errors.Is(err, cloud.ErrTransient) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// listRecords returns the listing attributes of every backup record, by
// backup id, sorted.
func listRecords(ctx context.Context, s cloud.Store, l Layout) ([]listedRecord, error) {
	root := l.BaseRoot()
	var recs []listedRecord
	err := s.List(ctx, root, func(a cloud.Attrs) error {
		id, rest, ok := strings.Cut(strings.TrimPrefix(a.Key, root), "/")
		if ok && rest == recordName && id != "" {
			recs = append(recs, listedRecord{id: id, size: a.Size, modTime: a.ModTime})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups of server %s: %w", l.Server, err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].id < recs[j].id })
	return recs, nil
}

type listedRecord struct {
	id      string
	size    int64
	modTime time.Time
}

// recordName is the last element of Layout.RecordKey.
const recordName = "backup.json"

// Find resolves a BACKUP_ID argument: a backup id, a backup name, latest,
// oldest or auto. latest, oldest and auto consider DONE backups only; an id
// or a name returns the backup whatever its status, so that gbc-backup-show
// can explain a FAILED one and gbc-restore can refuse it by name.
//
// For auto, suits picks the backups fit for the recovery target (nil: any),
// and the newest of them is returned.
func Find(ctx context.Context, s cloud.Store, l Layout, ref string, suits func(*Backup) bool) (*Backup, error) {
	if ref == "" {
		return nil, errors.New("empty backup id: give an id, a name, latest, oldest or auto")
	}
	// An id is found with one GET; only names and the keywords need a
	// listing. A name that looks like an id is still found below.
	if LooksLikeID(ref) {
		b, err := Load(ctx, s, l, ref)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, cloud.ErrNotFound) {
			return nil, err
		}
	}
	all, err := Summaries(ctx, s, l)
	if err != nil {
		return nil, err
	}
	b, err := pick(all, l, ref, suits)
	if err != nil {
		return nil, err
	}
	// The summary chose it; the record itself is what callers act on.
	return Load(ctx, s, l, b.ID)
}

func pick(all []*Backup, l Layout, ref string, suits func(*Backup) bool) (*Backup, error) {
	var done []*Backup
	for _, b := range all {
		if b.Status == StatusDone {
			done = append(done, b)
		}
	}
	switch ref {
	case RefLatest, RefOldest, RefAuto:
		if ref == RefAuto && suits != nil {
			fit := done[:0:0]
			for _, b := range done {
				if suits(b) {
					fit = append(fit, b)
				}
			}
			if len(fit) == 0 {
				return nil, fmt.Errorf("%w: no DONE backup of server %s suits the recovery target (%d DONE backups in all): see gbc-backup-list", ErrNoBackup, l.Server, len(done))
			}
			done = fit
		}
		if len(done) == 0 {
			return nil, fmt.Errorf("%w: server %s has no DONE backup in this store (%d records in all): check SERVER_NAME and STORE_URL, or see gbc-backup-list", ErrNoBackup, l.Server, len(all))
		}
		if ref == RefOldest {
			return done[0], nil
		}
		return done[len(done)-1], nil
	}
	for _, b := range all {
		if b.Name == ref {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: no backup with id or name %q for server %s: run gbc-backup-list STORE_URL %s to see the ids and names",
		ErrNoBackup, ref, l.Server, l.Server)
}

// IDLayout is the time layout of backup ids (the start time in UTC).
const IDLayout = "20060102T150405Z"

// LooksLikeID tells whether s has the shape of a backup id.
func LooksLikeID(s string) bool {
	_, err := time.Parse(IDLayout, s)
	return err == nil
}

// Summaries returns every backup of the server like List, but without the
// bulky fields a listing does not show (parts, backup_label,
// tablespace_map, snapshots), and fast: each record's summary is taken from
// a cache object when the LIST shows the record unchanged since it was
// cached (same size and modification time), so a listing of thousands of
// backups costs one LIST and one GET instead of one GET per backup.
//
// backup.json stays the only source of truth: the cache is never read
// without that validation, a missing or damaged cache only costs the GETs,
// and Find reads the chosen backup's record itself. The cache is rewritten,
// best effort, when it was stale; a store that refuses the write (read-only
// credentials) just keeps the slower path.
func Summaries(ctx context.Context, s cloud.Store, l Layout) ([]*Backup, error) {
	recs, err := listRecords(ctx, s, l)
	if err != nil {
		return nil, err
	}
	cached := readSummaryCache(ctx, s, l)
	out := make([]*Backup, len(recs))
	var missIdx []int
	var missIDs []string
	for i, r := range recs {
		if e, ok := cached[r.id]; ok && e.Size == r.size && e.ModTime.Equal(r.modTime) {
			out[i] = e.Record
			continue
		}
		missIdx = append(missIdx, i)
		missIDs = append(missIDs, r.id)
	}
	loaded, err := loadAll(ctx, s, l, missIDs)
	if err != nil {
		return nil, err
	}
	// Rewrite the cache only when it would change: unreadable records are
	// never cached, so they alone must not cause a write per listing.
	stale := len(cached) != len(recs)-len(missIDs)
	for j, b := range loaded {
		if b != nil {
			out[missIdx[j]] = summarize(b)
			stale = stale || b.Status != StatusUnreadable
		}
	}
	if stale {
		fresh := summaryCache{Format: summaryCacheFormat, Entries: make([]summaryEntry, 0, len(recs))}
		for i, r := range recs {
			if b := out[i]; b != nil && b.Status != StatusUnreadable {
				fresh.Entries = append(fresh.Entries, summaryEntry{Size: r.size, ModTime: r.modTime, Record: b})
			}
		}
		writeSummaryCache(ctx, s, l, &fresh)
	}
	return compact(out), nil
}

// summarize keeps what a listing shows of a record.
func summarize(b *Backup) *Backup {
	c := *b
	c.Parts, c.BackupLabel, c.TablespaceMap, c.Snapshots = nil, "", "", nil
	return &c
}

// summaryCacheFormat versions the cache object; another number is ignored
// (and rewritten), never misread.
const summaryCacheFormat = 1

type summaryCache struct {
	Format  int            `json:"format"`
	Entries []summaryEntry `json:"entries"`
}

type summaryEntry struct {
	// Size and ModTime are those the LIST showed for the record when it
	// was summarised: a rewritten record differs in one of them.
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Record  *Backup   `json:"record"`
}

// summaryCacheKey sits beside base/, not in it, so that nothing scanning
// base/<id>/ prefixes takes it for a backup.
func summaryCacheKey(l Layout) string { return l.Root() + "catalog-cache.json.zst" }

// readSummaryCache returns the cached summaries by id; any failure yields
// an empty cache, which only means more GETs.
func readSummaryCache(ctx context.Context, s cloud.Store, l Layout) map[string]summaryEntry {
	key := summaryCacheKey(l)
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil
	}
	defer rc.Close()
	_, codec := compress.SplitKey(key)
	dec, err := codec.NewReader(io.LimitReader(rc, maxRecordSize))
	if err != nil {
		return nil
	}
	defer dec.Close()
	var c summaryCache
	if err := json.NewDecoder(dec).Decode(&c); err != nil || c.Format != summaryCacheFormat {
		return nil
	}
	m := make(map[string]summaryEntry, len(c.Entries))
	for _, e := range c.Entries {
		if e.Record != nil && e.Record.Format <= FormatVersion {
			m[e.Record.ID] = e
		}
	}
	return m
}

func writeSummaryCache(ctx context.Context, s cloud.Store, l Layout, c *summaryCache) {
	key := summaryCacheKey(l)
	_, codec := compress.SplitKey(key)
	var buf bytes.Buffer
	w, err := codec.NewWriter(&buf, 0)
	if err != nil {
		return
	}
	if err := json.NewEncoder(w).Encode(c); err != nil {
		return
	}
	if err := w.Close(); err != nil {
		return
	}
	// Best effort by design (see Summaries): the error changes nothing
	// for this listing.
	_ = s.Put(ctx, key, cloud.BytesBody(buf.Bytes()), cloud.PutOptions{})
}
