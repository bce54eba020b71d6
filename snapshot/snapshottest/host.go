package snapshottest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tree builds a fake machine under a temporary root: /proc/self/mountinfo,
// the sysfs entries of block devices, and udev links under /dev, laid out
// as the kernel and udev lay them, so that snapshot.LocalHost{Root} reads
// it like a real machine. Device nodes are not needed, so no privilege is.
type Tree struct {
	Root string

	t      testing.TB
	devno  map[string]string // kernel name -> major:minor
	dirs   map[string]string // kernel name -> sysfs device dir
	minor  int
	nextID int
	lines  []string
}

// NewTree starts an empty tree in a temporary directory, with the root
// file system mounted from a virtual device as in a container.
func NewTree(t testing.TB) *Tree { return NewTreeIn(t, t.TempDir()) }

// NewTreeIn is NewTree in root, an empty directory: for a tree that
// another user (the PostgreSQL user running gbc) must read.
func NewTreeIn(t testing.TB, root string) *Tree {
	tr := &Tree{Root: root, t: t, devno: map[string]string{}, dirs: map[string]string{}, nextID: 20}
	tr.Mount("", "/", "overlay", "rw,relatime")
	return tr
}

func (tr *Tree) mkdir(p string) {
	if err := os.MkdirAll(filepath.Join(tr.Root, p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *Tree) write(p, content string) {
	tr.mkdir(filepath.Dir(p))
	if err := os.WriteFile(filepath.Join(tr.Root, p), []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

// link makes the symbolic link p pointing to target, both absolute paths
// of the fake machine, with a relative target as udev and sysfs make them.
func (tr *Tree) link(p, target string) {
	tr.mkdir(filepath.Dir(p))
	rel, err := filepath.Rel(filepath.Dir(p), target)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(tr.Root, p)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *Tree) addDev(name, dir string) {
	tr.minor++
	dn := fmt.Sprintf("259:%d", tr.minor)
	tr.devno[name], tr.dirs[name] = dn, dir
	tr.mkdir(dir)
	tr.write(dir+"/dev", dn+"\n")
	tr.link("/sys/dev/block/"+dn, dir)
	tr.link("/sys/class/block/"+name, dir)
	tr.write("/dev/"+name, "")
}

// Disk adds a whole disk with kernel name name (e.g. "nvme1n1"), its
// serial ("" for none) and udev links relative to /dev (e.g.
// "disk/by-id/google-pgdata").
func (tr *Tree) Disk(name, serial string, links ...string) {
	dir := "/sys/devices/pci0000:00/0000:00:04.0/block/" + name
	tr.addDev(name, dir)
	tr.link("/sys/block/"+name, dir)
	if serial != "" {
		tr.write(dir+"/device/serial", serial+"\n")
	}
	for _, l := range links {
		tr.link("/dev/"+l, "/dev/"+name)
	}
}

// Partition adds partition part (e.g. "nvme1n1p1") of disk.
func (tr *Tree) Partition(disk, part string) {
	dir := tr.dirs[disk] + "/" + part
	tr.addDev(part, dir)
	tr.write(dir+"/partition", "1\n")
}

// Mapper adds a device-mapper device (e.g. "dm-0") built on slaves.
func (tr *Tree) Mapper(name string, slaves ...string) {
	dir := "/sys/devices/virtual/block/" + name
	tr.addDev(name, dir)
	tr.link("/sys/block/"+name, dir)
	tr.mkdir(dir + "/slaves")
	for _, s := range slaves {
		tr.link(dir+"/slaves/"+s, tr.dirs[s])
	}
}

// Mount appends a mountinfo line mounting device dev (a kernel name, or ""
// for a file system on no block device) at mountPoint.
func (tr *Tree) Mount(dev, mountPoint, fsType, options string) {
	dn, source := "0:"+fmt.Sprint(40+tr.nextID), fsType
	if dev != "" {
		var ok bool
		if dn, ok = tr.devno[dev]; !ok {
			tr.t.Fatalf("snapshottest: mount of unknown device %s", dev)
		}
		source = "/dev/" + dev
	}
	tr.nextID++
	esc := strings.NewReplacer(" ", `\040`, "\t", `\011`, "\n", `\012`, `\`, `\134`)
	tr.lines = append(tr.lines, fmt.Sprintf("%d 1 %s / %s %s shared:%d - %s %s rw,seclabel",
		tr.nextID, dn, esc.Replace(mountPoint), options, tr.nextID, fsType, source))
	tr.write("/proc/self/mountinfo", strings.Join(tr.lines, "\n")+"\n")
}
