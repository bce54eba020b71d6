package wal

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

// ErrArchiveInUse: the server's WAL area holds files that a new cluster
// archiving there could collide with.
var ErrArchiveInUse = errors.New("the WAL archive is not empty")

// Found is an object that makes a WAL area unusable for a new cluster.
type Found struct {
	Key string
	// Name is the WAL file name the key holds, or "" for an object that
	// is not a WAL file at all.
	Name string
	TLI  uint32
}

// CheckArchive returns nil when the server's WAL area is empty, or holds
// only files of timelines below minTimeline (0: any file counts). Otherwise
// it returns an error wrapping ErrArchiveInUse naming the first such
// object. Listing stops at that object, so the check stays quick on a full
// archive.
func CheckArchive(ctx context.Context, store cloud.Store, layout catalog.Layout, minTimeline uint32) (*Found, error) {
	root := layout.WALRoot()
	var found *Found
	err := store.List(ctx, root, func(a cloud.Attrs) error {
		base, _ := compress.SplitKey(a.Key)
		n, err := ParseName(path.Base(base))
		if err != nil {
			found = &Found{Key: a.Key}
			return errStopList
		}
		if n.TLI >= minTimeline {
			found = &Found{Key: a.Key, Name: n.String(), TLI: n.TLI}
			return errStopList
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopList) {
		return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(root, "/"), err)
	}
	if found == nil {
		return nil, nil
	}
	what := fmt.Sprintf("an object that is not a WAL file (%s)", found.Key)
	if found.Name != "" {
		what = fmt.Sprintf("WAL of timeline %d (%s)", found.TLI, found.Key)
	}
	hint := "point this cluster at another SERVER_NAME or prefix, or empty that area if its content is not needed"
	if minTimeline > 0 {
		hint += fmt.Sprintf(" (only timelines below %d are accepted with --timeline %d)", minTimeline, minTimeline)
	}
	return found, fmt.Errorf("%w: server %q already holds %s: %s", ErrArchiveInUse, layout.Server, what, hint)
}
