package backup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/pg"
	"github.com/gbc-backup/gbc/snapshot"
)

// MethodSnapshot is the method of backups made of provider disk snapshots.
const MethodSnapshot = "snapshot"

// SnapshotOptions are what a snapshot backup needs on top of Options.
type SnapshotOptions struct {
	Provider snapshot.Provider
	// Host shows this machine's mounts and disks; nil is the real one.
	Host     snapshot.Host
	Instance string   // the instance gbc-backup runs on
	Disks    []string // the disks to snapshot, by name or id
	// Timeout bounds the wait for the snapshots to complete; 0 is none
	// beyond ctx.
	Timeout time.Duration
	// Lock, when set, locks each snapshot once complete (AWS).
	Lock *snapshot.Lock
}

// cleanupTimeout bounds the deletion of the snapshots of a failed backup.
const cleanupTimeout = 5 * time.Minute

// RunSnapshot takes a snapshot backup: it checks that the data directory
// and every tablespace lie on the listed disks, then between
// pg_backup_start and pg_backup_stop snapshots the disks in parallel and
// waits until every snapshot is complete. The record keeps the
// backup_label and tablespace_map that a recovery from the snapshots needs,
// and the snapshots' details. As with Run, the record is STARTED first,
// DONE last, and FAILED on error; the snapshots of a failed backup are
// deleted (and listed in its FAILED record in case that fails).
func RunSnapshot(ctx context.Context, o Options, so SnapshotOptions) (*catalog.Backup, error) {
	if o.now == nil {
		o.now = time.Now
	}
	if o.heartbeatEvery == 0 {
		o.heartbeatEvery = heartbeatEvery
	}
	// Nothing is compressed: the record says so.
	codec, err := compress.Lookup("none")
	if err != nil {
		return nil, err
	}
	o.Codec, o.Level = codec, 0
	if err := CheckName(o.Name); err != nil {
		return nil, err
	}
	if so.Provider == nil || so.Instance == "" || len(so.Disks) == 0 {
		return nil, errors.New("a snapshot backup needs a provider, --snapshot-instance and at least one --snapshot-disk")
	}
	if err := so.Lock.Check(); err != nil {
		return nil, err
	}
	if so.Host == nil {
		so.Host = snapshot.LocalHost{}
	}
	r := &run{o: o, layout: catalog.Layout{Server: o.Server}}

	conn, si, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The disks snapshotted are this machine's: the server gbc talks to
	// must be the one whose files are here, or the snapshots would hold
	// another cluster than the record describes.
	ok, err := readableDataDir(si.dataDir, si.systemID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: the data directory %s is not readable here: a snapshot backup runs on the database host, as the data directory's owner or root", ErrRefused, si.dataDir)
	}
	dirs := []string{si.dataDir}
	for _, t := range si.tablespaces {
		dirs = append(dirs, t.Location)
	}
	// Checked before the backup starts, so that a wrong disk list costs
	// no checkpoint and leaves no record.
	targets, err := snapshot.Plan(ctx, so.Provider, so.Host, so.Instance, so.Disks, dirs)
	if err != nil {
		if errors.Is(err, snapshot.ErrMount) {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return nil, err
	}
	for _, t := range targets {
		r.o.logf("disk %s (%s, %s) is mounted at %s", t.Disk.Name, t.Device, t.Mount.Source, t.Mount.MountPoint)
	}
	// WAL comes from the archive at recovery, so pg_wal need not be on the
	// disks; but PostgreSQL will not start if its link leads nowhere.
	if target, err := os.Readlink(filepath.Join(si.dataDir, "pg_wal")); err == nil {
		r.o.warnf("pg_wal is a link to %s: unless that is on a snapshotted disk, create it (empty, owned by PostgreSQL's user) on the recovery instance before starting PostgreSQL", target)
	}
	src := &snapshotSource{r: r, conn: conn, si: si, so: so, targets: targets}
	return r.take(ctx, src, sourceInfo{
		method:  MethodSnapshot,
		what:    fmt.Sprintf("method snapshot, %s instance %s", so.Provider.Name(), so.Instance),
		segSize: si.segSize,
	})
}

// snapshotSource snapshots this host's disks between pg_backup_start and
// pg_backup_stop; it stores no parts.
type snapshotSource struct {
	r       *run
	conn    *pg.Conn
	si      *serverInfo
	so      SnapshotOptions
	targets []snapshot.Target
	snaps   []catalog.Snapshot
}

func (s *snapshotSource) close(context.Context) {} // RunSnapshot closes the session

func (s *snapshotSource) describe(ctx context.Context, rec *catalog.Backup) error {
	return describeHost(ctx, s.conn, s.si, rec)
}

func (s *snapshotSource) start(ctx context.Context, label string) (*began, error) {
	bg, err := startHost(ctx, s.conn, label, !s.r.o.Spread)
	if err != nil {
		return nil, err
	}
	bg.note = fmt.Sprintf("; snapshotting %d disks", len(s.targets))
	return bg, nil
}

func (s *snapshotSource) copy(ctx context.Context, _ *pipeline) error {
	r, so := s.r, s.so
	tctx, cancel := ctx, context.CancelFunc(func() {})
	if so.Timeout > 0 {
		tctx, cancel = context.WithTimeout(ctx, so.Timeout)
	}
	id, server := r.rec.ID, r.o.Server
	tags := maps.Clone(r.o.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	// These tags find the snapshots of a backup from the provider's
	// console, and orphans whose record was lost.
	tags["gbc-server"], tags["gbc-backup-id"] = server, id
	began := time.Now()
	snaps, err := snapshot.Take(tctx, so.Provider, s.targets, func(t snapshot.Target) snapshot.Options {
		return snapshot.Options{
			Name:        snapshot.SnapshotName(server, id, t.Disk.Name),
			Description: fmt.Sprintf("gbc backup %s of server %s, disk %s mounted at %s", id, server, t.Disk.Name, t.Mount.MountPoint),
			Tags:        tags,
			Lock:        so.Lock,
		}
	})
	cancel()
	if len(snaps) > 0 {
		// Recorded at once: if gbc dies from here on, the STARTED record
		// still names the snapshots that gbc-backup-delete must remove.
		s.snaps = snaps
		if uerr := r.update(ctx, func(b *catalog.Backup) { b.Snapshots = snaps }); uerr != nil {
			r.o.warnf("record the snapshots of backup %s: %v", id, uerr)
		}
	}
	if err != nil {
		return err
	}
	r.o.logf("%d snapshots complete in %s; stopping the backup (waits until its last WAL segment is archived)", len(snaps), time.Since(began).Round(time.Second))
	return nil
}

func (s *snapshotSource) stop(ctx context.Context, _ *pipeline) (*ended, error) {
	stop, err := s.conn.BackupStop(ctx, true)
	if err != nil {
		return nil, err
	}
	label, err := pg.ParseBackupLabel(stop.BackupLabel)
	if err != nil {
		return nil, err
	}
	size, err := s.conn.DatabaseSize(ctx)
	if err != nil {
		s.r.o.warnf("database size for the record: %v", err)
	}
	snaps := s.snaps
	return &ended{
		startTLI: label.StartTimeline, startLSN: label.StartLSN,
		endTLI: label.StartTimeline, end: stop.LSN,
		label: stop.BackupLabel, spcMap: stop.TablespaceMap,
		apply: func(b *catalog.Backup) { b.Snapshots, b.DataSize = snaps, size },
	}, nil
}

func (s *snapshotSource) manifest(context.Context, *ended) (*storedManifest, error) { return nil, nil }

// cleanup removes the snapshots of a failed backup: without the
// backup_label of a completed backup they cannot be recovered, and they
// cost money.
func (s *snapshotSource) cleanup(ctx context.Context) {
	if len(s.snaps) > 0 {
		s.r.deleteSnapshots(ctx, s.so.Provider, s.snaps)
	}
}

// deleteSnapshots removes the snapshots of a failed backup: without the
// backup_label of a completed backup they cannot be recovered, and they
// cost money. It runs on a context of its own, since the backup's may be
// what ended.
func (r *run) deleteSnapshots(ctx context.Context, p snapshot.Provider, snaps []catalog.Snapshot) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	rec := &catalog.Backup{ID: r.rec.ID, Snapshots: snaps}
	open := func(context.Context, snapshot.Config) (snapshot.Provider, error) { return p, nil }
	if err := snapshot.DeleteAll(ctx, rec, open); err != nil {
		r.o.warnf("the snapshots of failed backup %s could not all be deleted (%v): delete them with gbc-backup-delete, which finds them in its FAILED record", r.rec.ID, err)
		return
	}
	r.o.logf("deleted the %d snapshots of failed backup %s", len(snaps), r.rec.ID)
}
