package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/contract"
)

// SweepStale implements cloud.StaleSweeper for the providers that have a sweep
// hook (S3).
func (s *Store) SweepStale(ctx context.Context, prefix string, opts cloud.SweepOptions) (cloud.SweepResult, error) {
	if s.Sweep == nil {
		return cloud.SweepResult{}, fmt.Errorf("sweep %s: %w", s.Base, errors.ErrUnsupported)
	}
	if err := contract.CheckPrefix(prefix); err != nil {
		return cloud.SweepResult{}, s.fail("sweep", prefix, err)
	}
	return s.Sweep(ctx, prefix, opts)
}

// ListLevel implements cloud.LevelLister with gocloud's delimiter listing.
func (s *Store) ListLevel(ctx context.Context, prefix string, fn func(cloud.Attrs) error) error {
	if err := contract.CheckPrefix(prefix); err != nil {
		return s.fail("list", prefix, err)
	}
	b, err := s.get(ctx)
	if err != nil {
		return s.fail("list", prefix, err)
	}
	it := b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return s.fail("list", prefix, err)
		}
		a := cloud.Attrs{Key: obj.Key}
		if !obj.IsDir {
			a.Size, a.ModTime = obj.Size, obj.ModTime
		}
		if err := fn(a); err != nil {
			return err
		}
	}
}
