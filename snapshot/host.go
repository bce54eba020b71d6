package snapshot

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Host is what this machine says about its disks and mounts. LocalHost
// reads the kernel's files; tests point it at a fake tree instead.
type Host interface {
	// Mounts lists the mounted file systems in mount order, each with the
	// whole disks it lies on.
	Mounts() ([]Mount, error)
	// Locate returns the kernel name of an attached disk's block device
	// (e.g. "nvme1n1"), or "" when this machine shows no such device.
	Locate(l Locator) (string, error)
}

// Mount is one line of mountinfo.
type Mount struct {
	MountPoint string
	Source     string // e.g. /dev/nvme1n1p1
	FSType     string
	Options    string // mount and file-system options, as findmnt shows them
	DevNo      string // "major:minor"
	// Disks are the kernel names of the whole disks under the file system:
	// one for a disk or a partition, the volumes under a device-mapper
	// device, none for a file system on no block device (tmpfs, overlay).
	Disks []string
}

// LocalHost reads mountinfo, sysfs and /dev under Root ("" for this
// machine's own "/").
type LocalHost struct {
	Root string
}

func (h LocalHost) path(p string) string { return filepath.Join("/", h.Root, p) }

// Mounts reads /proc/self/mountinfo: unlike /proc/mounts it carries each
// file system's device number, which names its block device even when the
// mount source is a meaningless "/dev/root".
func (h LocalHost) Mounts() ([]Mount, error) {
	name := h.path("/proc/self/mountinfo")
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var ms []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		m, err := parseMountInfo(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		if m.Disks, err = h.disksOf(m.DevNo); err != nil {
			return nil, fmt.Errorf("mount %s: %w", m.MountPoint, err)
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return ms, nil
}

// parseMountInfo reads one line of the form documented in proc(5):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountInfo(line string) (Mount, error) {
	pre, post, ok := strings.Cut(line, " - ")
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if !ok || len(f) < 6 || len(g) < 2 {
		return Mount{}, fmt.Errorf("unexpected mountinfo line %q", line)
	}
	m := Mount{
		DevNo:      f[2],
		MountPoint: unescapeMount(f[4]),
		FSType:     g[0],
		Source:     unescapeMount(g[1]),
	}
	opts := strings.Split(f[5], ",")
	if len(g) > 2 {
		for _, o := range strings.Split(g[2], ",") {
			if !slices.Contains(opts, o) {
				opts = append(opts, o)
			}
		}
	}
	m.Options = strings.Join(opts, ",")
	return m, nil
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space, \011,
// \012, \134) in mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// disksOf finds the whole disks under device number devno through sysfs:
// /sys/dev/block/MAJ:MIN links to the device's directory, a partition's
// directory sits inside its disk's, and a device-mapper device lists the
// devices it is built on in slaves/.
func (h LocalHost) disksOf(devno string) ([]string, error) {
	dir, err := filepath.EvalSymlinks(h.path("/sys/dev/block/" + devno))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // not a block device: tmpfs, proc, overlay, NFS
	}
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", devno, err)
	}
	var disks []string
	if err := h.collectDisks(dir, &disks, 0); err != nil {
		return nil, fmt.Errorf("device %s: %w", devno, err)
	}
	return disks, nil
}

func (h LocalHost) collectDisks(dir string, disks *[]string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("device stack under %s too deep", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		dir = filepath.Dir(dir)
	}
	slaves, err := os.ReadDir(filepath.Join(dir, "slaves"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(slaves) == 0 {
		if name := filepath.Base(dir); !slices.Contains(*disks, name) {
			*disks = append(*disks, name)
		}
		return nil
	}
	for _, s := range slaves {
		sub, err := filepath.EvalSymlinks(filepath.Join(dir, "slaves", s.Name()))
		if err != nil {
			return err
		}
		if err := h.collectDisks(sub, disks, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Locate tries the locator's links, then its serial, then its names.
func (h LocalHost) Locate(l Locator) (string, error) {
	for _, link := range l.Links {
		if name := h.resolveDev(link); name != "" {
			return name, nil
		}
	}
	if l.Serial != "" {
		blocks, err := os.ReadDir(h.path("/sys/block"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("list block devices: %w", err)
		}
		for _, b := range blocks {
			serial, err := os.ReadFile(h.path("/sys/block/" + b.Name() + "/device/serial"))
			if err == nil && strings.TrimSpace(string(serial)) == l.Serial {
				return b.Name(), nil
			}
		}
	}
	for _, n := range l.Names {
		if _, err := os.Stat(h.path("/sys/block/" + n)); err == nil {
			return n, nil
		}
	}
	return "", nil
}

// resolveDev follows a udev link under /dev to the kernel name it points
// to. Only the link is needed, not the device node, so that a fake tree of
// plain links is enough in tests.
func (h LocalHost) resolveDev(link string) string {
	p := h.path("/dev/" + link)
	for i := 0; i < 8; i++ {
		target, err := os.Readlink(p)
		if err != nil {
			if i == 0 {
				return ""
			}
			return filepath.Base(p)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		} else {
			target = h.path(target)
		}
		p = target
	}
	return filepath.Base(p)
}

// mountOf returns the mount holding path: the longest mount point that
// contains it, and among mounts on the same point the last one, which hides
// the others.
func mountOf(mounts []Mount, path string) (Mount, bool) {
	best := -1
	for i, m := range mounts {
		if !within(path, m.MountPoint) {
			continue
		}
		if best < 0 || len(m.MountPoint) >= len(mounts[best].MountPoint) {
			best = i
		}
	}
	if best < 0 {
		return Mount{}, false
	}
	return mounts[best], true
}

// within tells whether path is dir or lies under it.
func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
