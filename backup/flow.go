package backup

import (
	"context"
	"fmt"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/pg"
)

// One backup flow over sources.
//
// Every method takes a backup the same way: the STARTED record first
// (after the name is checked free), a heartbeat while it runs, the start
// of the backup on the server, the files, the stop, the wait for the
// backup's last WAL segment in the store, and the DONE record last; on any
// error after the STARTED record, a FAILED one. What differs is where the
// files come from, and that is a source: this host's disks between
// pg_backup_start and pg_backup_stop (local), the server's BASE_BACKUP
// stream (stream), or disk snapshots (snapshot). A new kind of backup (an
// incremental one) is a new source, or a source with a new option, and
// inherits every promise of the flow without copying it.

// A source supplies one backup's server facts and files. The flow calls
// its methods in order, each once: describe, start, copy, stop, manifest,
// and cleanup only after a failure. close is always called.
type source interface {
	// describe fills the STARTED record's server facts (version, system
	// identifier, segment size, tablespaces, and a lower bound of the
	// begin LSN for retention) before it is written.
	describe(ctx context.Context, rec *catalog.Backup) error
	// start starts the backup on the server, labelled label.
	start(ctx context.Context, label string) (*began, error)
	// copy sends the files into p (nil for a source without parts).
	copy(ctx context.Context, p *pipeline) error
	// stop ends the backup on the server, and writes what only exists
	// after the stop (backup_label, pg_control) into p.
	stop(ctx context.Context, p *pipeline) (*ended, error)
	// manifest stores the backup_manifest, once every part is stored;
	// nil when the source has none.
	manifest(ctx context.Context, e *ended) (*storedManifest, error)
	// cleanup undoes what the source made outside the store (snapshots)
	// after the backup failed.
	cleanup(ctx context.Context)
	close(ctx context.Context)
}

// sourceInfo is what the flow needs to know of a source before it starts.
type sourceInfo struct {
	method string
	// what completes the "backup ... started" line.
	what string
	// parts tells whether the source stores parts through a pipeline.
	parts bool
	// blocks tells whether the source keeps a block map, and so can take
	// block-level incremental backups.
	blocks bool
	// segSize is the server's WAL segment size.
	segSize int64
	// checkNative, when set, tells whether the server can take a native
	// incremental backup (PostgreSQL 17 and later, summarize_wal on).
	checkNative func(ctx context.Context) error
	// estimate, when set, gives the progress line its total.
	estimate func(ctx context.Context) int64
}

// began is the backup's start as the server reports it.
type began struct {
	tli   uint32
	lsn   pg.LSN
	note  string // completes the "backup started at WAL" line
	apply func(b *catalog.Backup)
}

// ended is what the source knows once the server ended the backup.
type ended struct {
	// startTLI and startLSN, when set, correct the start from the
	// backup_label (the authority for the start of a local backup).
	startTLI        uint32
	startLSN        pg.LSN
	endTLI          uint32
	end             pg.LSN
	label, spcMap   string
	files           int64
	tablespaceBytes map[string]int64
	// parts is the number of parts stored, set by the flow before
	// manifest is called.
	parts int
	// apply, when set, completes the record (a snapshot backup's
	// snapshots and size).
	apply func(b *catalog.Backup)
}

// storedManifest is the backup_manifest object in the store.
type storedManifest struct {
	key, sha256 string
	size        int64
}

// take runs the flow over src, and closes it.
func (r *run) take(ctx context.Context, src source, info sourceInfo) (*catalog.Backup, error) {
	defer src.close(context.WithoutCancel(ctx))
	if err := r.checkNameFree(ctx); err != nil {
		return nil, err
	}
	rec := r.newRecord(info.method)
	if err := src.describe(ctx, rec); err != nil {
		return nil, err
	}
	if err := r.prepareBlocks(ctx, rec, info); err != nil {
		return nil, err
	}
	defer r.closeBlocks()
	if err := r.create(ctx, rec); err != nil {
		return nil, err
	}
	r.o.logf("backup %s of server %s started (%s)", rec.ID, r.o.Server, info.what)
	ctx = r.heartbeat(ctx)
	b, err := r.flow(ctx, src, info)
	if err != nil {
		src.cleanup(ctx)
		return nil, r.fail(ctx, err)
	}
	return b, nil
}

func (r *run) flow(ctx context.Context, src source, info sourceInfo) (*catalog.Backup, error) {
	bg, err := src.start(ctx, r.rec.Label)
	if err != nil {
		return nil, err
	}
	if err := r.update(ctx, func(b *catalog.Backup) {
		setBegin(b, bg.tli, bg.lsn, info.segSize)
		if bg.apply != nil {
			bg.apply(b)
		}
	}); err != nil {
		return nil, err
	}
	r.o.logf("backup started at WAL %s (%s)%s", bg.lsn, r.rec.BeginWAL, bg.note)

	var p *pipeline
	var prog *progress
	if info.parts {
		var total int64
		if r.o.Events != nil && info.estimate != nil {
			// Only an estimate, for the progress line.
			total = info.estimate(ctx)
		}
		prog = r.startProgress(total)
		defer prog.stop()
		p = newPipeline(ctx, r.pipelineConfig(prog.add))
	}
	// stopParts ends the pipeline after an error, so that no upload
	// outlives the backup.
	stopParts := func(err error) error {
		if p != nil {
			return p.stop(err)
		}
		return err
	}
	if err := src.copy(ctx, p); err != nil {
		return nil, stopParts(err)
	}
	if prog != nil {
		prog.stop() // before the next lines, which would land inside the progress line
	}
	e, err := src.stop(ctx, p)
	if err != nil {
		return nil, stopParts(err)
	}
	var parts []catalog.Part
	if p != nil {
		if parts, err = p.wait(); err != nil {
			return nil, err
		}
	}
	e.parts = len(parts)
	man, err := src.manifest(ctx, e)
	if err != nil {
		return nil, err
	}
	bmap, err := r.storeBlockMap(ctx)
	if err != nil {
		return nil, err
	}
	endWAL := pg.SegmentName(e.endTLI, e.end.PrevSegment(info.segSize), info.segSize)
	if err := r.waitWAL(ctx, endWAL); err != nil {
		return nil, err
	}

	r.mu.Lock()
	b := r.rec
	if e.startLSN != 0 {
		setBegin(b, e.startTLI, e.startLSN, info.segSize)
	}
	b.EndLSN, b.EndWAL = e.end.String(), endWAL
	b.BackupLabel, b.TablespaceMap = e.label, e.spcMap
	if p != nil {
		b.Parts = parts
		b.Files = e.files
		b.DataSize, b.StoredSize = 0, 0
		for _, pt := range parts {
			b.DataSize += pt.Size
			b.StoredSize += pt.StoredSize
		}
		for i := range b.Tablespaces {
			b.Tablespaces[i].Size = e.tablespaceBytes[b.Tablespaces[i].OID]
		}
	}
	if man != nil {
		b.ManifestKey, b.ManifestSHA256, b.ManifestStoredSize = man.key, man.sha256, man.size
		b.StoredSize += man.size
	}
	if bmap != nil {
		b.BlockMap = bmap
		b.StoredSize += bmap.StoredSize
	}
	if e.apply != nil {
		e.apply(b)
	}
	r.mu.Unlock()
	return r.done(ctx)
}

// errNotHere is returned by openLocal when the data directory is not
// readable on this host and --method was left to choose.
var errNotHere = fmt.Errorf("the data directory is not readable here")
