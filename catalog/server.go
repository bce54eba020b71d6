package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/gbc-backup/gbc/cloud"
)

// ErrUnknownServer: nothing at all is stored under the server's prefix, no
// backup and no WAL. It carries cloud.ErrNotFound.
var ErrUnknownServer = fmt.Errorf("unknown server: %w", cloud.ErrNotFound)

// errStop ends a listing after its first key.
var errStop = errors.New("stop")

// CheckServer tells a server that has stored something (backups or WAL)
// from a name that has nothing under it: a typo in the server name or
// the store URL must not pass for an empty, healthy store with monitoring.
// A missing bucket, container or file:// root is reported as such
// (cloud.ErrNoBucket).
func CheckServer(ctx context.Context, s cloud.Store, l Layout) error {
	err := s.List(ctx, l.Root(), func(cloud.Attrs) error { return errStop })
	switch {
	case errors.Is(err, errStop):
		return nil
	case err != nil:
		return fmt.Errorf("list server %s: %w", l.Server, err)
	}
	// An empty listing does not tell a missing file:// root (or, on some
	// providers, bucket) from an empty one; a Stat does.
	if _, err := s.Stat(ctx, summaryCacheKey(l)); err != nil && errors.Is(err, cloud.ErrNoBucket) {
		return err
	}
	return fmt.Errorf("%w %q: nothing is stored under it (no backups and no WAL); check the server name and the store URL", ErrUnknownServer, l.Server)
}
