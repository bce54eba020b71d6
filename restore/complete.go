package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// complete writes what the parts do not hold, once they are all extracted:
// the directories PostgreSQL needs, the tablespace links, the manifest and
// the recovery configuration, then the archived directory attributes.
func (r *run) complete(ctx context.Context, places []Placement) error {
	root := r.data.root
	for _, d := range emptyDirs {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if _, err := root.Stat(heldControl); err != nil {
		return fmt.Errorf("backup %s: no %s in its parts: %w", r.o.Backup.ID, controlFile, err)
	}
	mapChanged, err := r.linkTablespaces(places)
	if err != nil {
		return err
	}
	if err := r.writeManifest(ctx, mapChanged); err != nil {
		return err
	}
	if c := r.o.Recovery; c != nil {
		if err := writeRecovery(root, *c); err != nil {
			return err
		}
	} else if err := removeSignal(root, standbySignal); err != nil {
		return err
	}
	for _, x := range r.roots {
		if err := x.finish(); err != nil {
			return err
		}
	}
	return nil
}

// linkTablespaces points pg_tblspc/<oid> at each tablespace's location and,
// when the backup has a tablespace_map (PostgreSQL recreates the links from
// it at the start of recovery), rewrites the map with the same locations.
// It returns the new map's content when it differs from the archived one.
func (r *run) linkTablespaces(places []Placement) ([]byte, error) {
	root := r.data.root
	for _, p := range places {
		link := path.Join("pg_tblspc", p.OID)
		if err := root.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("replace %s: %w", link, err)
		}
		if err := root.Symlink(p.Location, link); err != nil {
			return nil, fmt.Errorf("link tablespace %s: %w", p.Name, err)
		}
	}
	old, err := root.ReadFile(tablespaceMap)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	updated, err := rewriteTablespaceMap(old, places)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(old, updated) {
		return nil, nil
	}
	fi, err := root.Stat(tablespaceMap)
	if err != nil {
		return nil, err
	}
	if err := root.WriteFile(tablespaceMap+".gbc-new", updated, fi.Mode().Perm()); err != nil {
		return nil, err
	}
	if err := root.Chtimes(tablespaceMap+".gbc-new", fi.ModTime(), fi.ModTime()); err != nil {
		return nil, err
	}
	if err := root.Rename(tablespaceMap+".gbc-new", tablespaceMap); err != nil {
		return nil, err
	}
	return updated, nil
}

// rewriteTablespaceMap replaces the location of every tablespace in a
// tablespace_map ("<oid> <location>" lines, where a backslash escapes the
// next character, as PostgreSQL's read_tablespace_map reads them).
func rewriteTablespaceMap(old []byte, places []Placement) ([]byte, error) {
	loc := map[string]string{}
	for _, p := range places {
		loc[p.OID] = p.Location
	}
	var out bytes.Buffer
	for _, line := range splitMapLines(string(old)) {
		oid, _, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not \"OID LOCATION\"", tablespaceMap, line)
		}
		l, known := loc[oid]
		if !known {
			return nil, fmt.Errorf("%s names tablespace %s, which the backup record does not describe", tablespaceMap, oid)
		}
		out.WriteString(oid + " " + escapeMapPath(l) + "\n")
	}
	return out.Bytes(), nil
}

// splitMapLines splits on unescaped line ends, keeping escapes as they are.
func splitMapLines(s string) []string {
	var lines []string
	start, escaped := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case escaped:
			escaped = false
		case s[i] == '\\':
			escaped = true
		case s[i] == '\n' || s[i] == '\r':
			if i > start {
				lines = append(lines, s[start:i])
			}
			start = i + 1
		}
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

func escapeMapPath(p string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", "\\\n", "\r", "\\\r")
	return r.Replace(p)
}

// writeManifest stores the backup's PostgreSQL-format backup_manifest in the
// data directory, verified against the record's checksum, so that
// pg_verifybackup can check the restored files. When tablespace_map was
// rewritten, its manifest entry and the manifest checksum are updated to
// describe the file actually restored.
func (r *run) writeManifest(ctx context.Context, newMap []byte) error {
	b := r.o.Backup
	if b.ManifestKey == "" {
		r.emit(NoManifest{BackupID: b.ID})
		return nil
	}
	f, err := r.data.root.OpenFile(manifestName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", manifestName, err)
	}
	err = r.stream(ctx, b.ManifestKey, b.ManifestSHA256, b.ManifestStoredSize, func(src io.Reader) error {
		if newMap == nil && r.comb == nil {
			_, err := io.CopyBuffer(struct{ io.Writer }{f}, src, make([]byte, 256<<10))
			return err
		}
		return rewriteManifest(f, src, func(line []byte) ([]byte, error) {
			if r.comb != nil {
				var err error
				if line, err = r.rewriteIncrementalEntry(line); err != nil {
					return nil, err
				}
				if r.comb.label != nil {
					if line, err = patchEntry(line, labelFile, r.comb.label); err != nil {
						return nil, err
					}
				}
			}
			if newMap != nil {
				return patchEntry(line, tablespaceMap, newMap)
			}
			return line, nil
		})
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup_manifest %s: %w", b.ManifestKey, err)
	}
	return nil
}

// writeRecovery creates the signal file of c's recovery mode, removes the
// other one, and appends the recovery settings to postgresql.auto.conf,
// which PostgreSQL reads after postgresql.conf. A backup taken from a
// standby holds that standby's standby.signal (pg_basebackup copies it
// too), which would win over recovery.signal and make the restored server
// a standby of the old primary that never ends recovery: it goes. The
// signal file is always created anew, so that what ends up in the data
// directory is never a file from the backup.
func writeRecovery(root *os.Root, c RecoveryConfig) error {
	for _, name := range []string{standbySignal, recoverySignal} {
		if err := removeSignal(root, name); err != nil {
			return err
		}
	}
	sig, err := root.OpenFile(c.SignalFile(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", c.SignalFile(), err)
	}
	if err := sig.Close(); err != nil {
		return fmt.Errorf("write %s: %w", c.SignalFile(), err)
	}
	f, err := root.OpenFile(autoConf, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", autoConf, err)
	}
	_, err = io.WriteString(f, c.Render())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", autoConf, err)
	}
	return nil
}

// removeSignal removes a signal file, if there is one.
func removeSignal(root *os.Root, name string) error {
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// WriteRecovery writes c into the data directory dir as Run does after
// extracting a backup, for a data directory that is already in place:
// disks made from a snapshot backup's snapshots. Run makes its files
// durable with the rest of the restore; here nothing else follows, so
// both files and dir are synced now. gbc-restore may run as root on a
// directory that PostgreSQL's user owns, and PostgreSQL must be able to
// read postgresql.auto.conf (and rewrite it on ALTER SYSTEM): the files
// go to the directory's owner.
func WriteRecovery(dir string, c RecoveryConfig) error {
	root, dir, err := openDataDir(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := writeRecovery(root, c); err != nil {
		return err
	}
	info, err := root.Stat(".")
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, name := range []string{c.SignalFile(), autoConf} {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := root.Chown(name, int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("give %s to the data directory's owner: %w", name, err)
			}
		}
		if err := fsyncPath(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return fsyncPath(dir)
}

// RemoveStandbySignal removes standby.signal from the data directory dir,
// already in place (disks made from a snapshot backup's snapshots), when
// no recovery configuration is written there (--no-recovery-config): the
// snapshot of a standby's disk holds its standby.signal, and a restored
// server must not start as a standby of the old primary unless asked to.
// The removal is made durable.
func RemoveStandbySignal(dir string) error {
	root, dir, err := openDataDir(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := removeSignal(root, standbySignal); err != nil {
		return err
	}
	return fsyncPath(dir)
}

// openDataDir opens the data directory dir as a root, and returns the
// path it resolves to: a data directory given through a symbolic link is
// still synced (fsyncPath follows no link).
func openDataDir(dir string) (*os.Root, string, error) {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, "", fmt.Errorf("data directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", fmt.Errorf("data directory: %w", err)
	}
	return root, dir, nil
}
