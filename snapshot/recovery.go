package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/gbc-backup/gbc/catalog"
)

// CheckRecovery checks, before anything is written, that instance is ready
// to recover rec from its snapshots: for each snapshot, a disk created from
// it is attached to instance and mounted on this machine at the recorded
// mount point, and dataDir, where backup_label will be written, lies on one
// of them and holds a data directory.
func CheckRecovery(ctx context.Context, p Provider, h Host, instance string, rec *catalog.Backup, dataDir string) error {
	if len(rec.Snapshots) == 0 {
		return fmt.Errorf("backup %s is not a snapshot backup: restore it without --snapshot-recovery-instance", rec.ID)
	}
	attached, err := p.AttachedDisks(ctx, instance)
	if err != nil {
		return err
	}
	mounts, err := h.Mounts()
	if err != nil {
		return err
	}
	var problems []string
	for _, s := range rec.Snapshots {
		if s.Provider != p.Name() {
			return fmt.Errorf("snapshot %s was taken on %s, not %s: use a %s instance", s.ID, s.Provider, p.Name(), s.Provider)
		}
		i := slices.IndexFunc(attached, func(d Disk) bool { return sameSnapshot(d.SourceSnapshot, s.ID) })
		if i < 0 {
			problems = append(problems, fmt.Sprintf("no disk created from snapshot %s (of disk %s) is attached to instance %s: create one and attach it", s.ID, s.Disk, instance))
			continue
		}
		d := attached[i]
		dev, err := h.Locate(d.Locator)
		if err != nil {
			return fmt.Errorf("find the device of disk %s: %w", d.Name, err)
		}
		if dev == "" {
			problems = append(problems, fmt.Sprintf("disk %s (from snapshot %s) is attached to instance %s but no block device of this machine is it: run gbc-restore on instance %s", d.Name, s.ID, instance, instance))
			continue
		}
		m, ok := mountAt(mounts, s.MountPoint)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("nothing is mounted at %s: mount disk %s (%s, from snapshot %s) there", s.MountPoint, d.Name, dev, s.ID))
		case !slices.Equal(m.Disks, []string{dev}):
			problems = append(problems, fmt.Sprintf("%s is mounted from %s, not from disk %s (%s, from snapshot %s)", s.MountPoint, m.Source, d.Name, dev, s.ID))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("instance %s is not ready to recover backup %s: %s: %w", instance, rec.ID, strings.Join(problems, "; "), ErrMount)
	}
	real, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	// The disks are mounted where they were, so the data directory is
	// where it was: another directory would get a backup_label that does
	// not belong to it.
	if was := rec.DataDirectory; was != "" && filepath.Clean(was) != real && filepath.Clean(was) != filepath.Clean(dataDir) {
		return fmt.Errorf("backup %s was taken of data directory %s, not %s: give that directory: %w", rec.ID, was, dataDir, ErrMount)
	}
	if !slices.ContainsFunc(rec.Snapshots, func(s catalog.Snapshot) bool { return within(real, s.MountPoint) }) {
		return fmt.Errorf("data directory %s is not on a disk made from the backup's snapshots (mounted at %s): %w", dataDir, mountPoints(rec.Snapshots), ErrMount)
	}
	if _, err := os.Stat(filepath.Join(real, "PG_VERSION")); err != nil {
		return fmt.Errorf("%s holds no PostgreSQL data directory (no PG_VERSION): give the directory that was PGDATA: %w", dataDir, ErrMount)
	}
	return nil
}

// WriteLabelFiles writes the backup_label and tablespace_map of rec into
// dataDir, a data directory on disks made from rec's snapshots (check it
// with CheckRecovery first). A non-exclusive backup leaves neither file in
// the data directory, so the snapshots hold none: without backup_label,
// PostgreSQL would take the snapshot for a crashed server and start from
// its last checkpoint, which may be later than the snapshots' oldest block.
// The recovery configuration is restore's to write.
func WriteLabelFiles(dataDir string, rec *catalog.Backup) error {
	if rec.BackupLabel == "" {
		return fmt.Errorf("backup %s has no backup_label in its record", rec.ID)
	}
	info, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	label := filepath.Join(dataDir, "backup_label")
	if old, err := os.ReadFile(label); err == nil && !bytes.Equal(old, []byte(rec.BackupLabel)) {
		return fmt.Errorf("%s already holds another backup's backup_label: these disks were recovered before; make new disks from the snapshots of backup %s", dataDir, rec.ID)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", label, err)
	}
	files := [][2]string{{"backup_label", rec.BackupLabel}}
	if rec.TablespaceMap != "" {
		files = append(files, [2]string{"tablespace_map", rec.TablespaceMap})
	}
	for _, f := range files {
		if err := writeDurably(filepath.Join(dataDir, f[0]), []byte(f[1]), info); err != nil {
			return err
		}
	}
	return syncDir(dataDir)
}

// writeDurably writes name through a temporary file renamed into place, so
// that a crash leaves the old content or the new, never a torn file. The
// file goes to the data directory's owner: gbc-restore may run as root,
// and PostgreSQL must read it.
func writeDurably(name string, data []byte, dirInfo fs.FileInfo) error {
	tmp := name + ".gbc-tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if st, ok := dirInfo.Sys().(*syscall.Stat_t); ok && err == nil && os.Geteuid() == 0 {
		err = os.Chown(tmp, int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
