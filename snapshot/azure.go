package snapshot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/gbc-backup/gbc/catalog"
)

// Azure snapshots managed disks.
type Azure struct {
	subscription, group string
	poll                time.Duration

	vms       *armcompute.VirtualMachinesClient
	disks     *armcompute.DisksClient
	snapshots *armcompute.SnapshotsClient
}

// NewAzure returns the managed-disk provider of c.SubscriptionID, for
// instances and snapshots in c.ResourceGroup. A nil cred means
// DefaultAzureCredential (environment, workload identity, managed
// identity, Azure CLI); tests pass a fake one, and a transport through
// opts.
func NewAzure(c Config, cred azcore.TokenCredential, opts *arm.ClientOptions) (*Azure, error) {
	if cred == nil {
		var err error
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			return nil, fmt.Errorf("azure: find credentials: %w", err)
		}
	}
	var o arm.ClientOptions
	if opts != nil {
		o = *opts
	}
	if c.Endpoint != "" {
		plain, err := checkEndpoint(c.Endpoint)
		if err != nil {
			return nil, err
		}
		// A private cloud keeps the public cloud's token audience unless
		// its configuration says otherwise; only the endpoint moves.
		conf := cloud.AzurePublic
		conf.Services = maps.Clone(conf.Services)
		rm := conf.Services[cloud.ResourceManager]
		rm.Endpoint = c.Endpoint
		conf.Services[cloud.ResourceManager] = rm
		o.Cloud = conf
		// azcore refuses to send a token over plain HTTP; checkEndpoint
		// allows that only on loopback, for emulators and tests.
		o.InsecureAllowCredentialWithHTTP = plain
	}
	p := &Azure{subscription: c.SubscriptionID, group: c.ResourceGroup, poll: c.poll()}
	var err error
	if p.vms, err = armcompute.NewVirtualMachinesClient(c.SubscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("azure: virtual machines client: %w", err)
	}
	if p.disks, err = armcompute.NewDisksClient(c.SubscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("azure: disks client: %w", err)
	}
	if p.snapshots, err = armcompute.NewSnapshotsClient(c.SubscriptionID, cred, &o); err != nil {
		return nil, fmt.Errorf("azure: snapshots client: %w", err)
	}
	return p, nil
}

// Name implements Provider.
func (*Azure) Name() string { return "azure" }

// AttachedDisks implements Provider: the OS disk and the managed data
// disks of the virtual machine named instance in the resource group.
func (p *Azure) AttachedDisks(ctx context.Context, instance string) ([]Disk, error) {
	vm, err := p.vms.Get(ctx, p.group, instance, nil)
	if azureStatus(err) == 404 {
		return nil, fmt.Errorf("azure: virtual machine %s in resource group %s: %w", instance, p.group, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("azure: get virtual machine %s: %w", instance, err)
	}
	if vm.Properties == nil || vm.Properties.StorageProfile == nil {
		return nil, nil
	}
	sp := vm.Properties.StorageProfile
	var disks []Disk
	add := func(id string, lun *int32, links []string) error {
		d, err := p.disk(ctx, id)
		if err != nil {
			return err
		}
		d.Locator = Locator{Links: links}
		d.Details["location"] = deref(vm.Location)
		if lun != nil {
			d.Details["lun"] = strconv.Itoa(int(*lun))
		}
		disks = append(disks, d)
		return nil
	}
	if od := sp.OSDisk; od != nil && od.ManagedDisk != nil && od.ManagedDisk.ID != nil {
		// The links of Azure's udev rules (azure-vm-utils and the older
		// waagent rules) for the OS disk.
		if err := add(*od.ManagedDisk.ID, nil, []string{"disk/azure/os", "disk/azure/root"}); err != nil {
			return nil, err
		}
	}
	for _, dd := range sp.DataDisks {
		if dd == nil || dd.ManagedDisk == nil || dd.ManagedDisk.ID == nil || dd.Lun == nil {
			continue // an unmanaged VHD: not a managed disk to snapshot
		}
		lun := strconv.Itoa(int(*dd.Lun))
		if err := add(*dd.ManagedDisk.ID, dd.Lun, []string{"disk/azure/data/by-lun/" + lun, "disk/azure/scsi1/lun" + lun}); err != nil {
			return nil, err
		}
	}
	return disks, nil
}

// disk reads a managed disk by resource id: its size, and the snapshot it
// was created from, which recovery checks.
func (p *Azure) disk(ctx context.Context, id string) (Disk, error) {
	group, name := azureIDParts(id, "disks")
	if group == "" {
		return Disk{}, fmt.Errorf("azure: unexpected disk id %q", id)
	}
	r, err := p.disks.Get(ctx, group, name, nil)
	if err != nil {
		return Disk{}, fmt.Errorf("azure: get disk %s: %w", id, err)
	}
	d := Disk{
		Name: name,
		ID:   id,
		Details: map[string]string{
			"subscription_id": p.subscription,
			"resource_group":  p.group,
		},
	}
	if pr := r.Properties; pr != nil {
		if pr.DiskSizeGB != nil {
			d.SizeGiB = int64(*pr.DiskSizeGB)
		}
		if pr.CreationData != nil {
			d.SourceSnapshot = deref(pr.CreationData.SourceResourceID)
		}
	}
	return d, nil
}

// Snapshot implements Provider. Snapshots are incremental: Azure stores
// only the blocks changed since the disk's previous snapshot, and each
// snapshot can still rebuild the whole disk on its own.
func (p *Azure) Snapshot(ctx context.Context, d Disk, o Options) (catalog.Snapshot, error) {
	name := azureName(o.Name)
	tags := map[string]*string{}
	for k, v := range o.Tags {
		tags[k] = &v
	}
	poller, err := p.snapshots.BeginCreateOrUpdate(ctx, p.group, name, armcompute.Snapshot{
		Location: ptr(d.Details["location"]),
		Tags:     tags,
		Properties: &armcompute.SnapshotProperties{
			CreationData: &armcompute.CreationData{
				CreateOption:     ptr(armcompute.DiskCreateOptionCopy),
				SourceResourceID: ptr(d.ID),
			},
			Incremental: ptr(true),
		},
	}, nil)
	if err != nil {
		return catalog.Snapshot{}, fmt.Errorf("azure: create snapshot %s of disk %s: %w", name, d.Name, err)
	}
	rec := catalog.Snapshot{
		Provider: "azure",
		ID:       fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/snapshots/%s", p.subscription, p.group, name),
		Disk:     d.Name,
		SizeGiB:  d.SizeGiB,
		Details:  maps.Clone(d.Details),
	}
	if err := pollAzure(ctx, poller, p.poll); err != nil {
		if azureFailed(err) {
			err = fmt.Errorf("%w: %w", ErrFailed, err)
		}
		return rec, fmt.Errorf("azure: create snapshot %s of disk %s: %w", name, d.Name, err)
	}
	// An incremental snapshot exists before its data is copied; a disk
	// made from it before the copy ends would be incomplete.
	for {
		s, err := p.snapshots.Get(ctx, p.group, name, nil)
		if err != nil {
			return rec, fmt.Errorf("azure: snapshot %s of disk %s: %w", name, d.Name, err)
		}
		pr := s.Properties
		if pr == nil {
			return rec, fmt.Errorf("azure: snapshot %s of disk %s: no properties in the reply", name, d.Name)
		}
		if st := deref(pr.ProvisioningState); st == "Failed" || pr.CopyCompletionError != nil {
			msg := st
			if e := pr.CopyCompletionError; e != nil {
				msg = fmt.Sprintf("%s: %s", deref((*string)(e.ErrorCode)), deref(e.ErrorMessage))
			}
			return rec, fmt.Errorf("azure: snapshot %s of disk %s: %w: %s", name, d.Name, ErrFailed, msg)
		}
		pct := float32(100)
		if pr.CompletionPercent != nil {
			pct = *pr.CompletionPercent
		}
		if deref(pr.ProvisioningState) == "Succeeded" && pct >= 100 {
			if pr.DiskSizeGB != nil {
				rec.SizeGiB = int64(*pr.DiskSizeGB)
			}
			return rec, nil
		}
		if err := sleep(ctx, p.poll); err != nil {
			return rec, fmt.Errorf("azure: snapshot %s of disk %s still copying (%.0f%%): %w", name, d.Name, pct, err)
		}
	}
}

// pollAzure drives an SDK poller at the provider's interval. The SDK's
// PollUntilDone refuses intervals under a second outside tests' flags and
// defaults to 30 s, too slow to notice a failure early.
func pollAzure[T any](ctx context.Context, poller *runtime.Poller[T], every time.Duration) error {
	for !poller.Done() {
		if _, err := poller.Poll(ctx); err != nil {
			return err
		}
		if poller.Done() {
			break
		}
		if err := sleep(ctx, every); err != nil {
			return err
		}
	}
	_, err := poller.Result(ctx)
	return err
}

// Delete implements Provider.
func (p *Azure) Delete(ctx context.Context, s catalog.Snapshot) error {
	group, name := azureIDParts(s.ID, "snapshots")
	if group == "" {
		group, name = p.group, s.ID
	}
	poller, err := p.snapshots.BeginDelete(ctx, group, name, nil)
	if err == nil {
		err = pollAzure(ctx, poller, p.poll)
	}
	if err != nil && azureStatus(err) != 404 {
		return fmt.Errorf("azure: delete snapshot %s: %w", s.ID, err)
	}
	return nil
}

// azureIDParts returns the resource group and name of an ARM id of the
// form /subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/KIND/NAME.
func azureIDParts(id, kind string) (group, name string) {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		switch {
		case strings.EqualFold(parts[i], "resourceGroups"):
			group = parts[i+1]
		case strings.EqualFold(parts[i], kind):
			name = parts[i+1]
		}
	}
	if name == "" {
		return "", ""
	}
	return group, name
}

func azureStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// azureFailed tells whether a poller ended because the operation failed
// rather than because it could not be asked: azcore reports a terminal
// "Failed" state as a ResponseError carrying the successful status of the
// poll that saw it.
func azureFailed(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode < 400
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
