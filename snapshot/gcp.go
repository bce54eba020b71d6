package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"cloud.google.com/go/auth/credentials"
	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"

	"github.com/gbc-backup/gbc/catalog"
)

// GCP snapshots persistent disks. It uses the compute REST clients (not
// gRPC: the Compute Engine API is REST only, and gRPC would only add size).
type GCP struct {
	project, zone string
	poll          time.Duration

	instances   *compute.InstancesClient
	disks       *compute.DisksClient
	regionDisks *compute.RegionDisksClient
	snapshots   *compute.SnapshotsClient
}

// NewGCP returns the persistent-disk provider of c.Project, for instances
// in c.Zone. Without opts it finds Application Default Credentials once and
// shares them between its clients; tests pass option.WithoutAuthentication.
func NewGCP(ctx context.Context, c Config, opts ...option.ClientOption) (*GCP, error) {
	if len(opts) == 0 {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: compute.DefaultAuthScopes()})
		if err != nil {
			return nil, fmt.Errorf("gcp: find credentials: %w", err)
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	if c.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(c.Endpoint))
	}
	p := &GCP{project: c.Project, zone: c.Zone, poll: c.poll()}
	var err error
	if p.instances, err = compute.NewInstancesRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("gcp: instances client: %w", err)
	}
	if p.disks, err = compute.NewDisksRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("gcp: disks client: %w", err)
	}
	if p.regionDisks, err = compute.NewRegionDisksRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("gcp: region disks client: %w", err)
	}
	if p.snapshots, err = compute.NewSnapshotsRESTClient(ctx, opts...); err != nil {
		return nil, fmt.Errorf("gcp: snapshots client: %w", err)
	}
	return p, nil
}

// Name implements Provider.
func (*GCP) Name() string { return "gcp" }

// AttachedDisks implements Provider.
func (p *GCP) AttachedDisks(ctx context.Context, instance string) ([]Disk, error) {
	inst, err := p.instances.Get(ctx, &computepb.GetInstanceRequest{Project: p.project, Zone: p.zone, Instance: instance})
	if httpCode(err) == 404 {
		return nil, fmt.Errorf("gcp: instance %s in project %s zone %s: %w", instance, p.project, p.zone, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("gcp: get instance %s: %w", instance, err)
	}
	var disks []Disk
	for _, ad := range inst.GetDisks() {
		if ad.GetSource() == "" {
			continue // a local SSD: nothing to snapshot
		}
		src := ad.GetSource()
		d := Disk{
			Name:    lastSegment(src),
			ID:      src,
			SizeGiB: ad.GetDiskSizeGb(),
			Locator: Locator{Links: []string{"disk/by-id/google-" + ad.GetDeviceName()}},
			Details: map[string]string{
				"project":     p.project,
				"zone":        p.zone,
				"device_name": ad.GetDeviceName(),
			},
		}
		// The disk itself says which snapshot it was made from, which
		// recovery checks; its size is there too when the attachment
		// omits it.
		disk, err := p.getDisk(ctx, src)
		if err != nil {
			return nil, err
		}
		d.SourceSnapshot = lastSegment(disk.sourceSnapshot)
		if d.SizeGiB == 0 {
			d.SizeGiB = disk.sizeGiB
		}
		disks = append(disks, d)
	}
	return disks, nil
}

type gcpDisk struct {
	sourceSnapshot string
	sizeGiB        int64
}

// getDisk reads a zonal or regional disk from its URL,
// .../projects/P/zones/Z/disks/D or .../projects/P/regions/R/disks/D.
func (p *GCP) getDisk(ctx context.Context, src string) (gcpDisk, error) {
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
		d   *computepb.Disk
		err error
	)
	if region := at("regions"); region != "" {
		d, err = p.regionDisks.Get(ctx, &computepb.GetRegionDiskRequest{Project: project, Region: region, Disk: name})
	} else {
		d, err = p.disks.Get(ctx, &computepb.GetDiskRequest{Project: project, Zone: at("zones"), Disk: name})
	}
	if err != nil {
		return gcpDisk{}, fmt.Errorf("gcp: get disk %s: %w", src, err)
	}
	return gcpDisk{sourceSnapshot: d.GetSourceSnapshot(), sizeGiB: d.GetSizeGb()}, nil
}

// Snapshot implements Provider. snapshots.insert takes the disk's URL, so
// zonal and regional disks are snapshotted alike.
func (p *GCP) Snapshot(ctx context.Context, d Disk, o Options) (catalog.Snapshot, error) {
	name := gcpName(o.Name)
	op, err := p.snapshots.Insert(ctx, &computepb.InsertSnapshotRequest{
		Project: p.project,
		SnapshotResource: &computepb.Snapshot{
			Name:        proto.String(name),
			SourceDisk:  proto.String(d.ID),
			Description: proto.String(o.Description),
			Labels:      gcpLabels(o.Tags),
		},
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
	if err := p.wait(ctx, op); err != nil {
		return rec, fmt.Errorf("gcp: create snapshot %s of disk %s: %w", name, d.Name, err)
	}
	for {
		s, err := p.snapshots.Get(ctx, &computepb.GetSnapshotRequest{Project: p.project, Snapshot: name})
		if err != nil && httpCode(err) != 404 {
			return rec, fmt.Errorf("gcp: snapshot %s of disk %s: %w", name, d.Name, err)
		}
		switch st := s.GetStatus(); st {
		case "READY":
			if s.GetDiskSizeGb() > 0 {
				rec.SizeGiB = s.GetDiskSizeGb()
			}
			return rec, nil
		case "FAILED":
			return rec, fmt.Errorf("gcp: snapshot %s of disk %s: %w", name, d.Name, ErrFailed)
		default:
			if err := sleep(ctx, p.poll); err != nil {
				return rec, fmt.Errorf("gcp: snapshot %s of disk %s still %s: %w", name, d.Name, strings.ToLower(st), err)
			}
		}
	}
}

// wait polls a long-running operation at the provider's interval (the
// SDK's own Wait starts at a second, too slow for tests) and turns an
// operation that ended in error into one.
func (p *GCP) wait(ctx context.Context, op *compute.Operation) error {
	for !op.Done() {
		if err := sleep(ctx, p.poll); err != nil {
			return fmt.Errorf("operation %s: %w", op.Name(), err)
		}
		if err := op.Poll(ctx); err != nil {
			return fmt.Errorf("operation %s: %w", op.Name(), err)
		}
	}
	if e := op.Proto().GetError(); e != nil && len(e.GetErrors()) > 0 {
		var msgs []string
		for _, x := range e.GetErrors() {
			msgs = append(msgs, x.GetCode()+": "+x.GetMessage())
		}
		return fmt.Errorf("operation %s: %w: %s", op.Name(), ErrFailed, strings.Join(msgs, "; "))
	}
	return nil
}

// Delete implements Provider.
func (p *GCP) Delete(ctx context.Context, s catalog.Snapshot) error {
	project := p.project
	if v := s.Details["project"]; v != "" {
		project = v
	}
	op, err := p.snapshots.Delete(ctx, &computepb.DeleteSnapshotRequest{Project: project, Snapshot: s.ID})
	if httpCode(err) == 404 {
		return nil
	}
	if err == nil {
		err = p.wait(ctx, op)
	}
	if err != nil {
		return fmt.Errorf("gcp: delete snapshot %s: %w", s.ID, err)
	}
	return nil
}

// httpCode is the HTTP status of a Google API error, or 0.
func httpCode(err error) int {
	var ae *apierror.APIError
	if errors.As(err, &ae) && ae.HTTPCode() > 0 {
		return ae.HTTPCode()
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}
