// Package snapshottest holds local fakes of the three providers' REST APIs
// (the subset gbc uses), over one in-memory model of instances, disks and
// snapshots, and a builder of fake mountinfo/sysfs/dev trees. The real SDK
// clients talk to these fakes in tests, since tests have no cloud access.
package snapshottest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Outcome is how a new snapshot ends once its in-progress reads are over.
type Outcome int

const (
	Complete Outcome = iota // the snapshot becomes complete
	Fail                    // the provider reports it failed
	Hang                    // it stays in progress forever
)

// Cloud is the state the fake servers share. Each server renders it in its
// provider's protocol and ids; tests arrange it and inspect it.
type Cloud struct {
	mu        sync.Mutex
	instances map[string]*instance
	disks     map[string]*Disk
	snapshots map[string]*Snapshot
	faults    map[string][]Fault
	calls     map[string]int
	seq       int

	// PendingReads is how many reads show a new snapshot in progress
	// before its outcome; Outcome is that outcome.
	PendingReads int
	Outcome      Outcome

	// OnSnapshot, when set, is called with the disk's name as a snapshot
	// of it is created, while the create request is being answered: an
	// end-to-end test copies the disk's files then, which is what the
	// snapshot would hold. It must not call the Cloud's methods.
	OnSnapshot func(disk string)
}

type instance struct {
	name        string
	attachments []Attachment
}

// Attachment is a disk attached to an instance.
type Attachment struct {
	Disk   string // disk name
	Device string // AWS device name (/dev/sdf), GCP device name
	LUN    int    // Azure data disk LUN; -1 for the OS disk
}

// Disk is a provider disk.
type Disk struct {
	Name           string
	SizeGiB        int64
	SourceSnapshot string // snapshot name it was made from
}

// Snapshot is a provider snapshot as the fakes keep it.
type Snapshot struct {
	Name        string // the provider's id (AWS) or name (GCP, Azure)
	Disk        string
	Description string
	Tags        map[string]string
	State       string // pending, completed, failed
	LockMode    string
	LockDays    int
	Deleted     bool

	reads   int
	outcome Outcome
	pending int
}

// Fault is an error reply injected into the next request of one action.
type Fault struct {
	Status int    // HTTP status
	Code   string // provider error code
}

// NewCloud returns an empty cloud whose snapshots complete after two
// in-progress reads.
func NewCloud() *Cloud {
	return &Cloud{
		instances:    map[string]*instance{},
		disks:        map[string]*Disk{},
		snapshots:    map[string]*Snapshot{},
		faults:       map[string][]Fault{},
		calls:        map[string]int{},
		PendingReads: 2,
	}
}

// AddDisk creates a disk.
func (c *Cloud) AddDisk(d Disk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disks[d.Name] = &d
}

// Attach attaches disk to instance, creating the instance on first use.
func (c *Cloud) Attach(inst string, a Attachment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.instances[inst]
	if i == nil {
		i = &instance{name: inst}
		c.instances[inst] = i
	}
	i.attachments = append(i.attachments, a)
}

// SetOutcome sets how new snapshots end, and after how many reads.
func (c *Cloud) SetOutcome(o Outcome, pendingReads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Outcome, c.PendingReads = o, pendingReads
}

// Inject makes the next request of action (e.g. "CreateSnapshot",
// "snapshots.insert", "snapshots.put") fail with f.
func (c *Cloud) Inject(action string, f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[action] = append(c.faults[action], f)
}

// Calls is how many requests of action were served.
func (c *Cloud) Calls(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[action]
}

// Snapshots returns a copy of every snapshot ever made, deleted ones
// included (Deleted set), by name.
func (c *Cloud) Snapshots() map[string]Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Snapshot{}
	for k, s := range c.snapshots {
		cp := *s
		cp.Tags = maps.Clone(s.Tags)
		out[k] = cp
	}
	return out
}

// Live returns the names of snapshots not deleted, sorted.
func (c *Cloud) Live() []string {
	var names []string
	for k, s := range c.Snapshots() {
		if !s.Deleted {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// DiskFromSnapshot makes a new disk from a snapshot, as an operator does
// before a snapshot recovery.
func (c *Cloud) DiskFromSnapshot(disk, snapshot string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.snapshots[snapshot]
	if s == nil || s.Deleted || s.State != "completed" {
		return fmt.Errorf("no complete snapshot %s", snapshot)
	}
	src := c.disks[s.Disk]
	c.disks[disk] = &Disk{Name: disk, SizeGiB: src.SizeGiB, SourceSnapshot: snapshot}
	return nil
}

// begin counts a request and returns its injected fault, if any. Callers
// hold no lock.
func (c *Cloud) begin(action string) *Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[action]++
	if fs := c.faults[action]; len(fs) > 0 {
		c.faults[action] = fs[1:]
		return &fs[0]
	}
	return nil
}

// newSnapshot records a snapshot in progress; c.mu is held.
func (c *Cloud) newSnapshot(name, disk, desc string, tags map[string]string) *Snapshot {
	s := &Snapshot{Name: name, Disk: disk, Description: desc, Tags: tags, State: "pending",
		outcome: c.Outcome, pending: c.PendingReads}
	c.snapshots[name] = s
	if c.OnSnapshot != nil {
		c.OnSnapshot(disk)
	}
	return s
}

// read advances a snapshot's state by one read; c.mu is held. This is how
// the fakes make snapshot creation asynchronous.
func (s *Snapshot) read() {
	if s.State != "pending" {
		return
	}
	s.reads++
	if s.reads <= s.pending {
		return
	}
	switch s.outcome {
	case Complete:
		s.State = "completed"
	case Fail:
		s.State = "failed"
	}
}

// nextID returns a fresh id suffix; c.mu is held.
func (c *Cloud) nextID() int {
	c.seq++
	return c.seq
}

// AWSVolumeID is the fake EC2's id of the volume of disk name.
func AWSVolumeID(name string) string { return "vol-0" + hash16(name) }

func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}
