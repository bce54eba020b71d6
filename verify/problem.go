package verify

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Problem is one thing found wrong, on one line: the object (a part's key,
// a WAL segment or history file name, a backup id), what is wrong with it,
// and what that means for a restore. The Kind strings are stable, for
// scripts and tests; the texts are for people.
type Problem struct {
	Kind   string `json:"kind"`
	Object string `json:"object"`
	// Backup is the backup the object belongs to, "" for WAL.
	Backup string `json:"backup,omitempty"`
	What   string `json:"what"`
	Means  string `json:"means"`
}

// Problem kinds.
const (
	KindRecord     = "record"      // a backup's record cannot be read or is not DONE
	KindPart       = "part"        // a part is missing, truncated, altered or unreadable
	KindManifest   = "manifest"    // the backup_manifest object is missing or damaged
	KindFile       = "file"        // a file inside a part differs from the manifest
	KindBlockMap   = "block-map"   // the block map is missing or damaged
	KindChain      = "chain"       // an incremental backup's chain is incomplete or damaged
	KindWALBackup  = "wal-backup"  // WAL a backup needs to become consistent is missing
	KindWALGap     = "wal-gap"     // segments missing between the oldest backup and the newest WAL
	KindHistory    = "history"     // a timeline history file is missing or damaged
	KindNotChecked = "not-checked" // a backup that cannot be checked this way (snapshot)
)

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.Object, p.What, p.Means)
}

// cannotRestore is the usual meaning of a damaged backup object.
func cannotRestore(id string) string {
	return fmt.Sprintf("backup %s cannot be restored", id)
}

// problems collects problems from several goroutines.
type problems struct {
	mu  sync.Mutex
	all []Problem
}

func (ps *problems) add(p Problem) {
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
}

func (ps *problems) list() []Problem {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := append([]Problem(nil), ps.all...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Backup != out[j].Backup {
			return out[i].Backup < out[j].Backup
		}
		return out[i].Object < out[j].Object
	})
	return out
}

// joinIDs lists backup ids for a message, the first few only.
func joinIDs(ids []string) string {
	const show = 5
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(ids[:show], ", "), len(ids)-show)
}
