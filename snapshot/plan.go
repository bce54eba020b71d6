package snapshot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gbc-backup/gbc/catalog"
)

// Target is one disk to snapshot, found attached to the instance and
// mounted on this machine.
type Target struct {
	Disk   Disk
	Device string // kernel name of its block device, e.g. nvme1n1
	Mount  Mount  // where it is mounted
}

// Plan finds the listed disks attached to instance and mounted on this
// machine, and checks that every directory in dirs (PGDATA and every
// tablespace) lies on them, so that the snapshots hold the whole cluster.
// It changes nothing.
func Plan(ctx context.Context, p Provider, h Host, instance string, disks, dirs []string) ([]Target, error) {
	if len(disks) == 0 {
		return nil, errors.New("no disk to snapshot: give --snapshot-disk for each disk holding PGDATA or a tablespace")
	}
	attached, err := p.AttachedDisks(ctx, instance)
	if err != nil {
		return nil, err
	}
	var targets []Target
	for _, name := range disks {
		i := slices.IndexFunc(attached, func(d Disk) bool { return d.Name == name || d.ID == name })
		if i < 0 {
			return nil, fmt.Errorf("%s: disk %s is not attached to instance %s (attached: %s): %w",
				p.Name(), name, instance, diskNames(attached), ErrNotFound)
		}
		d := attached[i]
		if slices.ContainsFunc(targets, func(t Target) bool { return t.Disk.ID == d.ID }) {
			return nil, fmt.Errorf("disk %s is listed twice", name)
		}
		dev, err := h.Locate(d.Locator)
		if err != nil {
			return nil, fmt.Errorf("find the device of disk %s: %w", name, err)
		}
		if dev == "" {
			return nil, fmt.Errorf("disk %s is attached to instance %s but no block device of this machine is it: run gbc-backup on instance %s: %w",
				name, instance, instance, ErrMount)
		}
		targets = append(targets, Target{Disk: d, Device: dev})
	}

	mounts, err := h.Mounts()
	if err != nil {
		return nil, err
	}
	used := map[string]string{} // device -> mount point holding a directory
	for _, dir := range dirs {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return nil, fmt.Errorf("directory %s: %w", dir, err)
		}
		m, ok := mountOf(mounts, real)
		if !ok {
			return nil, fmt.Errorf("directory %s is on no mounted file system: %w", dir, ErrMount)
		}
		if len(m.Disks) == 0 {
			return nil, fmt.Errorf("directory %s is on %s (%s at %s), not on a disk that can be snapshotted: %w",
				dir, m.Source, m.FSType, m.MountPoint, ErrMount)
		}
		if len(m.Disks) > 1 {
			// Snapshots of several disks are taken one by one: a file
			// system striped across them would be torn.
			return nil, fmt.Errorf("directory %s is on %s at %s, which spans disks %s: snapshots of separate disks cannot capture one file system consistently: %w",
				dir, m.Source, m.MountPoint, strings.Join(m.Disks, ", "), ErrMount)
		}
		i := slices.IndexFunc(targets, func(t Target) bool { return t.Device == m.Disks[0] })
		if i < 0 {
			return nil, fmt.Errorf("directory %s is on %s mounted at %s, which is not on a listed disk (%s): add its disk with --snapshot-disk: %w",
				dir, m.Source, m.MountPoint, targetNames(targets), ErrMount)
		}
		if prev, ok := used[m.Disks[0]]; ok && prev != m.MountPoint {
			return nil, fmt.Errorf("disk %s is mounted at both %s and %s: a snapshot record keeps one mount point per disk, so use one file system per disk: %w",
				targets[i].Disk.Name, prev, m.MountPoint, ErrMount)
		}
		used[m.Disks[0]] = m.MountPoint
		targets[i].Mount = m
	}
	for i, t := range targets {
		if t.Mount.MountPoint != "" {
			continue
		}
		// A listed disk holding none of the directories is still taken
		// (pg_wal or configuration may live there), if it is mounted.
		j := slices.IndexFunc(mounts, func(m Mount) bool { return slices.Equal(m.Disks, []string{t.Device}) })
		if j < 0 {
			return nil, fmt.Errorf("disk %s (%s) is not mounted: list only disks holding PGDATA or a tablespace: %w", t.Disk.Name, t.Device, ErrMount)
		}
		targets[i].Mount = mounts[j]
	}
	return targets, nil
}

func diskNames(ds []Disk) string {
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func targetNames(ts []Target) string {
	var names []string
	for _, t := range ts {
		names = append(names, t.Disk.Name+" ("+t.Device+")")
	}
	return strings.Join(names, ", ")
}

// Take snapshots every target in parallel and waits until all are
// complete. opts is called for each target to name and tag its snapshot.
// The records are in the targets' order; on error, the ones returned are
// those of snapshots that exist (complete or not), so that the caller can
// record and delete them.
func Take(ctx context.Context, p Provider, targets []Target, opts func(Target) Options) ([]catalog.Snapshot, error) {
	recs := make([]catalog.Snapshot, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, err := p.Snapshot(ctx, t.Disk, opts(t))
			if err != nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w (raise --snapshot-timeout if snapshots are slow)", err)
			}
			rec.Disk = t.Disk.Name
			rec.Device = t.Mount.Source
			rec.MountPoint = t.Mount.MountPoint
			rec.MountOptions = t.Mount.Options
			if rec.SizeGiB == 0 {
				rec.SizeGiB = t.Disk.SizeGiB
			}
			recs[i], errs[i] = rec, err
		}()
	}
	wg.Wait()
	var made []catalog.Snapshot
	for _, r := range recs {
		if r.ID != "" {
			made = append(made, r)
		}
	}
	if err := joinErrors(errs); err != nil {
		return made, err
	}
	return recs, nil
}

// joinedErrors is errors.Join on one line: commands print errors as one
// line, and errors.Join's newlines would run two disks' errors together.
type joinedErrors []error

func (j joinedErrors) Error() string {
	msgs := make([]string, len(j))
	for i, e := range j {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (j joinedErrors) Unwrap() []error { return j }

func joinErrors(errs []error) error {
	var j joinedErrors
	for _, e := range errs {
		if e != nil {
			j = append(j, e)
		}
	}
	if len(j) == 0 {
		return nil
	}
	return j
}

// Opener makes the provider that deletes or checks a recorded snapshot.
// Open is the real one; tests open providers on fakes.
type Opener func(ctx context.Context, c Config) (Provider, error)

// DeleteAll deletes every provider snapshot of rec. Snapshots already gone
// are not an error, so a failed or interrupted deletion can simply be run
// again. open is nil for the real providers (Open); the configuration each
// snapshot needs (region, project, subscription, resource group) comes
// from its record.
func DeleteAll(ctx context.Context, rec *catalog.Backup, open Opener) error {
	if open == nil {
		open = Open
	}
	providers := map[Config]Provider{}
	var errs []error
	for _, s := range rec.Snapshots {
		if s.ID == "" {
			continue
		}
		c := ConfigOf(s)
		p, ok := providers[c]
		if !ok {
			var err error
			if p, err = open(ctx, c); err != nil {
				errs = append(errs, fmt.Errorf("delete snapshot %s of backup %s: %w", s.ID, rec.ID, err))
				continue
			}
			providers[c] = p
		}
		if err := p.Delete(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("backup %s: %w", rec.ID, err))
		}
	}
	return joinErrors(errs)
}

// sameSnapshot compares a disk's source snapshot with a recorded snapshot
// id. Providers spell the source as an id (AWS), a URL (GCP) or an ARM id
// with any case (Azure).
func sameSnapshot(source, id string) bool {
	if source == "" || id == "" {
		return false
	}
	return strings.EqualFold(source, id) || lastSegment(source) == id
}

// mountAt returns the visible mount at exactly mountPoint.
func mountAt(mounts []Mount, mountPoint string) (Mount, bool) {
	m, ok := mountOf(mounts, mountPoint)
	if !ok || m.MountPoint != filepath.Clean(mountPoint) {
		return Mount{}, false
	}
	return m, true
}

func mountPoints(ss []catalog.Snapshot) string {
	var mps []string
	for _, s := range ss {
		mps = append(mps, s.MountPoint)
	}
	return strings.Join(mps, ", ")
}
