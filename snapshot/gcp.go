package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/gbc-backup/gbc/catalog"
)

// GCP snapshots persistent disks through the Compute Engine JSON API.
//
// It uses Google's discovery-based REST client (google.golang.org/api),
// not cloud.google.com/go/compute/apiv1: both are official and REST, but
// the latter registers every Compute Engine protobuf type at start-up and
// adds about 12 MB to the binary, against a quarter of a megabyte.
type GCP struct {
	project, zone string
	poll          time.Duration
	api           gceAPI
}

// gceAPI holds the Compute Engine calls gbc makes, as closures over the
// SDK's service: a field of the service's type would make the linker keep
// every method of its ~150 sub-services (about 5 MB), as with ec2API.
type gceAPI struct {
	instance       func(ctx context.Context, project, zone, name string) (*compute.Instance, error)
	disk           func(ctx context.Context, project, zone, name string) (*compute.Disk, error)
	regionDisk     func(ctx context.Context, project, region, name string) (*compute.Disk, error)
	insertSnapshot func(ctx context.Context, project string, s *compute.Snapshot) (*compute.Operation, error)
	snapshot       func(ctx context.Context, project, name string) (*compute.Snapshot, error)
	deleteSnapshot func(ctx context.Context, project, name string) (*compute.Operation, error)
	operation      func(ctx context.Context, project, name string) (*compute.Operation, error)
}

func newGCEAPI(s *compute.Service) gceAPI {
	return gceAPI{
		instance: func(ctx context.Context, project, zone, name string) (*compute.Instance, error) {
			return s.Instances.Get(project, zone, name).Context(ctx).Do()
		},
		disk: func(ctx context.Context, project, zone, name string) (*compute.Disk, error) {
			return s.Disks.Get(project, zone, name).Context(ctx).Do()
		},
		regionDisk: func(ctx context.Context, project, region, name string) (*compute.Disk, error) {
			return s.RegionDisks.Get(project, region, name).Context(ctx).Do()
		},
		insertSnapshot: func(ctx context.Context, project string, snap *compute.Snapshot) (*compute.Operation, error) {
			return s.Snapshots.Insert(project, snap).Context(ctx).Do()
		},
		snapshot: func(ctx context.Context, project, name string) (*compute.Snapshot, error) {
			return s.Snapshots.Get(project, name).Context(ctx).Do()
		},
		deleteSnapshot: func(ctx context.Context, project, name string) (*compute.Operation, error) {
			return s.Snapshots.Delete(project, name).Context(ctx).Do()
		},
		operation: func(ctx context.Context, project, name string) (*compute.Operation, error) {
			return s.GlobalOperations.Get(project, name).Context(ctx).Do()
		},
	}
}

// NewGCP returns the persistent-disk provider of c.Project, for instances
// in c.Zone. Without opts it uses Application Default Credentials; tests
// pass option.WithoutAuthentication.
func NewGCP(ctx context.Context, c Config, opts ...option.ClientOption) (*GCP, error) {
	if c.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(gcpBasePath(c.Endpoint)))
	}
	s, err := compute.NewService(ctx, append([]option.ClientOption{option.WithScopes(compute.ComputeScope)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("gcp: compute client: %w", err)
	}
	return &GCP{project: c.Project, zone: c.Zone, poll: c.poll(), api: newGCEAPI(s)}, nil
}

// gcpBasePath turns an endpoint given as a host ("https://compute.example")
// into the API's base path, which the client expects in full.
func gcpBasePath(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Path == "" || u.Path == "/" {
		return strings.TrimSuffix(endpoint, "/") + "/compute/v1/"
	}
	return strings.TrimSuffix(endpoint, "/") + "/"
}

// Name implements Provider.
func (*GCP) Name() string { return "gcp" }

// AttachedDisks implements Provider.
func (p *GCP) AttachedDisks(ctx context.Context, instance string) ([]Disk, error) {
	inst, err := p.api.instance(ctx, p.project, p.zone, instance)
	if httpCode(err) == 404 {
		return nil, fmt.Errorf("gcp: instance %s in project %s zone %s: %w", instance, p.project, p.zone, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("gcp: get instance %s: %w", instance, err)
	}
	var disks []Disk
	for _, ad := range inst.Disks {
		if ad.Source == "" {
			continue // a local SSD: nothing to snapshot
		}
		d := Disk{
			Name:    lastSegment(ad.Source),
			ID:      ad.Source,
			SizeGiB: ad.DiskSizeGb,
			Locator: Locator{Links: []string{"disk/by-id/google-" + ad.DeviceName}},
			Details: map[string]string{
				"project":     p.project,
				"zone":        p.zone,
				"device_name": ad.DeviceName,
			},
		}
		// The disk itself says which snapshot it was made from, which
		// recovery checks; its size is there too when the attachment
		// omits it.
		disk, err := p.getDisk(ctx, ad.Source)
		if err != nil {
			return nil, err
		}
		d.SourceSnapshot = lastSegment(disk.SourceSnapshot)
		if d.SizeGiB == 0 {
			d.SizeGiB = disk.SizeGb
		}
		disks = append(disks, d)
	}
	return disks, nil
}

// getDisk reads a zonal or regional disk from its URL,
// .../projects/P/zones/Z/disks/D or .../projects/P/regions/R/disks/D.
func (p *GCP) getDisk(ctx context.Context, src string) (*compute.Disk, error) {
	parts := strings.Split(src, "/")
	at := func(key string) string {
		for i := 0; i+1 < len(parts); i++ {
			if parts[i] == key {
				return parts[i+1]
			}
		}
		return ""
	}
	project, name := at("projects"), lastSegment(src)
	var (
		d   *compute.Disk
		err error
	)
	if region := at("regions"); region != "" {
		d, err = p.api.regionDisk(ctx, project, region, name)
	} else {
		d, err = p.api.disk(ctx, project, at("zones"), name)
	}
	if err != nil {
		return nil, fmt.Errorf("gcp: get disk %s: %w", src, err)
	}
	return d, nil
}

// Snapshot implements Provider. snapshots.insert takes the disk's URL, so
// zonal and regional disks are snapshotted alike.
func (p *GCP) Snapshot(ctx context.Context, d Disk, o Options) (catalog.Snapshot, error) {
	name := gcpName(o.Name)
	op, err := p.api.insertSnapshot(ctx, p.project, &compute.Snapshot{
		Name:        name,
		SourceDisk:  d.ID,
		Description: o.Description,
		Labels:      gcpLabels(o.Tags),
	})
	if err != nil {
		return catalog.Snapshot{}, fmt.Errorf("gcp: create snapshot %s of disk %s: %w", name, d.Name, err)
	}
	rec := catalog.Snapshot{
		Provider: "gcp",
		ID:       name,
		Disk:     d.Name,
		SizeGiB:  d.SizeGiB,
		Details:  maps.Clone(d.Details),
	}
	if err := p.wait(ctx, p.project, op); err != nil {
		return rec, fmt.Errorf("gcp: create snapshot %s of disk %s: %w", name, d.Name, err)
	}
	for {
		s, err := p.api.snapshot(ctx, p.project, name)
		if err != nil && httpCode(err) != 404 {
			return rec, fmt.Errorf("gcp: snapshot %s of disk %s: %w", name, d.Name, err)
		}
		st := ""
		if s != nil {
			st = s.Status
		}
		switch st {
		case "READY":
			if s.DiskSizeGb > 0 {
				rec.SizeGiB = s.DiskSizeGb
			}
			return rec, nil
		case "FAILED":
			return rec, fmt.Errorf("gcp: snapshot %s of disk %s: %w", name, d.Name, ErrFailed)
		}
		if err := sleep(ctx, p.poll); err != nil {
			return rec, fmt.Errorf("gcp: snapshot %s of disk %s still %s: %w", name, d.Name, strings.ToLower(st), err)
		}
	}
}

// wait polls a global operation until it is done, and turns an operation
// that ended in error into one.
func (p *GCP) wait(ctx context.Context, project string, op *compute.Operation) error {
	for op.Status != "DONE" {
		if err := sleep(ctx, p.poll); err != nil {
			return fmt.Errorf("operation %s: %w", op.Name, err)
		}
		next, err := p.api.operation(ctx, project, op.Name)
		if err != nil {
			return fmt.Errorf("operation %s: %w", op.Name, err)
		}
		op = next
	}
	if op.Error != nil && len(op.Error.Errors) > 0 {
		var msgs []string
		for _, x := range op.Error.Errors {
			msgs = append(msgs, x.Code+": "+x.Message)
		}
		return fmt.Errorf("operation %s: %w: %s", op.Name, ErrFailed, strings.Join(msgs, "; "))
	}
	return nil
}

// Delete implements Provider.
func (p *GCP) Delete(ctx context.Context, s catalog.Snapshot) error {
	project := p.project
	if v := s.Details["project"]; v != "" {
		project = v
	}
	op, err := p.api.deleteSnapshot(ctx, project, s.ID)
	if httpCode(err) == 404 {
		return nil
	}
	if err == nil {
		err = p.wait(ctx, project, op)
	}
	if err != nil {
		return fmt.Errorf("gcp: delete snapshot %s: %w", s.ID, err)
	}
	return nil
}

// httpCode is the HTTP status of a Google API error, or 0.
func httpCode(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}
