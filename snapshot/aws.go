package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/gbc-backup/gbc/catalog"
)

// AWS snapshots EBS volumes.
type AWS struct {
	c      ec2API
	region string
	poll   time.Duration
}

// ec2API holds the EC2 calls gbc makes, as method values of the SDK's
// client. A field of the client's own type would make the linker keep all
// of its ~800 methods (about 20 MB of binary): the binary uses reflection
// (text/template), so every method of a type reachable from an interface
// value is kept.
type ec2API struct {
	DescribeInstances func(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeVolumes   func(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	CreateSnapshot    func(context.Context, *ec2.CreateSnapshotInput, ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	DescribeSnapshots func(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	DeleteSnapshot    func(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	LockSnapshot      func(context.Context, *ec2.LockSnapshotInput, ...func(*ec2.Options)) (*ec2.LockSnapshotOutput, error)
}

// NewAWS returns the EBS provider for c.Region (default: the SDK's
// configuration, then the instance's own region from its metadata). optFns
// change how the SDK loads its configuration; tests pass static
// credentials with them.
func NewAWS(ctx context.Context, c Config, optFns ...func(*config.LoadOptions) error) (*AWS, error) {
	opts := []func(*config.LoadOptions) error{config.WithEC2IMDSRegion()}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, append(opts, optFns...)...)
	if err != nil {
		return nil, fmt.Errorf("aws: load configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("aws: no region: give --aws-region or set AWS_REGION")
	}
	client := ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	api := ec2API{
		DescribeInstances: client.DescribeInstances,
		DescribeVolumes:   client.DescribeVolumes,
		CreateSnapshot:    client.CreateSnapshot,
		DescribeSnapshots: client.DescribeSnapshots,
		DeleteSnapshot:    client.DeleteSnapshot,
		LockSnapshot:      client.LockSnapshot,
	}
	return &AWS{c: api, region: cfg.Region, poll: c.poll()}, nil
}

// Name implements Provider.
func (*AWS) Name() string { return "aws" }

// AttachedDisks implements Provider. instance is an instance id or the
// value of its Name tag.
func (p *AWS) AttachedDisks(ctx context.Context, instance string) ([]Disk, error) {
	in := &ec2.DescribeInstancesInput{}
	if strings.HasPrefix(instance, "i-") {
		in.InstanceIds = []string{instance}
	} else {
		// A terminated instance keeps its Name tag for a while; only a
		// live one can be the instance meant.
		in.Filters = []types.Filter{
			{Name: aws.String("tag:Name"), Values: []string{instance}},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
		}
	}
	var found []types.Instance
	// Paged by hand: the SDK's paginator takes the client as an interface
	// (see ec2API).
	for {
		out, err := p.c.DescribeInstances(ctx, in)
		if err != nil {
			if awsCode(err) == "InvalidInstanceID.NotFound" {
				return nil, fmt.Errorf("aws: instance %s in %s: %w", instance, p.region, ErrNotFound)
			}
			return nil, fmt.Errorf("aws: describe instance %s: %w", instance, err)
		}
		for _, r := range out.Reservations {
			found = append(found, r.Instances...)
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("aws: instance %s in %s: %w", instance, p.region, ErrNotFound)
	case len(found) > 1:
		return nil, fmt.Errorf("aws: %d instances are named %s in %s: give the instance id", len(found), instance, p.region)
	}
	inst := found[0]
	devices := map[string]string{} // volume id -> device name
	var ids []string
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.VolumeId != nil {
			ids = append(ids, *m.Ebs.VolumeId)
			devices[*m.Ebs.VolumeId] = aws.ToString(m.DeviceName)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := p.c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: ids})
	if err != nil {
		return nil, fmt.Errorf("aws: describe volumes of instance %s: %w", instance, err)
	}
	var disks []Disk
	for _, v := range out.Volumes {
		id := aws.ToString(v.VolumeId)
		name := id
		for _, t := range v.Tags {
			if aws.ToString(t.Key) == "Name" && aws.ToString(t.Value) != "" {
				name = aws.ToString(t.Value)
			}
		}
		serial := strings.Replace(id, "-", "", 1)
		disks = append(disks, Disk{
			Name:           name,
			ID:             id,
			SizeGiB:        int64(aws.ToInt32(v.Size)),
			SourceSnapshot: aws.ToString(v.SnapshotId),
			Locator: Locator{
				Links:  []string{"disk/by-id/nvme-Amazon_Elastic_Block_Store_" + serial},
				Serial: serial,
				Names:  xenNames(devices[id]),
			},
			Details: map[string]string{
				"region":            p.region,
				"availability_zone": aws.ToString(v.AvailabilityZone),
				"instance_id":       aws.ToString(inst.InstanceId),
				"device_name":       devices[id],
				"volume_id":         id,
			},
		})
	}
	return disks, nil
}

// xenNames gives the kernel names of a volume attached as /dev/sdX: Xen
// instances show it as xvdX (Nitro ones as NVMe, found by serial).
func xenNames(device string) []string {
	base := strings.TrimPrefix(device, "/dev/")
	if base == "" {
		return nil
	}
	names := []string{base}
	if rest, ok := strings.CutPrefix(base, "sd"); ok {
		names = append(names, "xvd"+rest)
	}
	return names
}

// Snapshot implements Provider.
func (p *AWS) Snapshot(ctx context.Context, d Disk, o Options) (catalog.Snapshot, error) {
	tags := []types.Tag{{Key: aws.String("Name"), Value: aws.String(o.Name)}}
	for _, k := range sortedKeys(o.Tags) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(o.Tags[k])})
	}
	out, err := p.c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{
		VolumeId:    aws.String(d.ID),
		Description: aws.String(o.Description),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeSnapshot,
			Tags:         tags,
		}},
	})
	if err != nil {
		return catalog.Snapshot{}, fmt.Errorf("aws: create snapshot of volume %s: %w", d.ID, err)
	}
	rec := catalog.Snapshot{
		Provider: "aws",
		ID:       aws.ToString(out.SnapshotId),
		Disk:     d.Name,
		SizeGiB:  d.SizeGiB,
		Details:  maps.Clone(d.Details),
	}
	for {
		st, msg, err := p.state(ctx, rec.ID)
		if err != nil {
			return rec, fmt.Errorf("aws: snapshot %s of volume %s: %w", rec.ID, d.ID, err)
		}
		if st == types.SnapshotStateCompleted {
			break
		}
		if st == types.SnapshotStateError {
			return rec, fmt.Errorf("aws: snapshot %s of volume %s: %w: %s", rec.ID, d.ID, ErrFailed, msg)
		}
		if err := sleep(ctx, p.poll); err != nil {
			return rec, fmt.Errorf("aws: snapshot %s of volume %s still %s: %w", rec.ID, d.ID, st, err)
		}
	}
	// Locked only once complete: a lock on a snapshot that then failed
	// would keep an unusable, billed snapshot that nobody can delete.
	if o.Lock != nil {
		lo, err := p.c.LockSnapshot(ctx, &ec2.LockSnapshotInput{
			SnapshotId:   aws.String(rec.ID),
			LockMode:     types.LockMode(o.Lock.Mode),
			LockDuration: aws.Int32(int32(o.Lock.Days)),
		})
		if err != nil {
			return rec, fmt.Errorf("aws: lock snapshot %s: %w", rec.ID, err)
		}
		rec.Details["lock_mode"] = o.Lock.Mode
		if lo.LockExpiresOn != nil {
			rec.Details["lock_expires_on"] = lo.LockExpiresOn.UTC().Format(time.RFC3339)
		}
	}
	return rec, nil
}

// state reads a snapshot's state. Right after CreateSnapshot, EC2 may not
// know the id yet (its API is eventually consistent): that reads as
// pending, and the caller's deadline bounds the wait.
func (p *AWS) state(ctx context.Context, id string) (types.SnapshotState, string, error) {
	out, err := p.c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if awsCode(err) == "InvalidSnapshot.NotFound" {
		return types.SnapshotStatePending, "", nil
	}
	if err != nil {
		return "", "", err
	}
	if len(out.Snapshots) == 0 {
		return types.SnapshotStatePending, "", nil
	}
	s := out.Snapshots[0]
	return s.State, aws.ToString(s.StateMessage), nil
}

// Delete implements Provider.
func (p *AWS) Delete(ctx context.Context, s catalog.Snapshot) error {
	_, err := p.c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s.ID)})
	if awsCode(err) == "InvalidSnapshot.NotFound" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("aws: delete snapshot %s: %w", s.ID, err)
	}
	return nil
}

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
