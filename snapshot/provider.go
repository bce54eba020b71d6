package snapshot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"google.golang.org/api/option"

	"github.com/gbc-backup/gbc/catalog"
)

// Provider is one cloud's disk API, reduced to what a snapshot backup needs.
// Everything else (which disks, the mount check, parallelism, clean-up,
// recovery checks) is written once in this package on top of it.
type Provider interface {
	// Name is the provider's name in records: "aws", "gcp" or "azure".
	Name() string

	// AttachedDisks lists the disks attached to instance (a name or the
	// provider's id), each with how this machine's kernel can recognise it.
	AttachedDisks(ctx context.Context, instance string) ([]Disk, error)

	// Snapshot snapshots disk and returns once the snapshot is complete.
	// When the snapshot was created but then failed or did not complete
	// before ctx ended, the returned record still carries its ID, so that
	// the caller can record it and delete it.
	Snapshot(ctx context.Context, disk Disk, opts Options) (catalog.Snapshot, error)

	// Delete deletes a snapshot made by this provider. A snapshot that is
	// already gone is not an error: deletion is retried by retention runs.
	Delete(ctx context.Context, s catalog.Snapshot) error
}

// Disk is a disk attached to an instance.
type Disk struct {
	// Name is the name an operator uses (AWS: the Name tag, else the volume
	// id; GCP and Azure: the disk name).
	Name string
	// ID is the provider's id (AWS volume id, GCP disk URL, Azure
	// resource id). --snapshot-disk accepts the name or the id.
	ID string
	// SizeGiB is the provisioned size.
	SizeGiB int64
	// SourceSnapshot is the snapshot the disk was created from, if any, as
	// the provider names it in a snapshot record's ID: recovery checks that
	// the disks of a recovery instance come from the backup's snapshots.
	SourceSnapshot string
	// Locator tells how the disk shows on the instance it is attached to.
	Locator Locator
	// Details are provider specific facts kept in the snapshot record:
	// region, zone, project, resource group, attachment name.
	Details map[string]string
}

// Locator says how the kernel of the instance names an attached disk. Each
// cloud has its own convention; any one that matches is enough.
type Locator struct {
	// Links are symbolic links relative to /dev whose target is the disk's
	// block device, e.g. "disk/by-id/google-pgdata" (GCP) or
	// "disk/azure/scsi1/lun0" (Azure), made by the image's udev rules.
	Links []string
	// Serial is the block device's serial number in sysfs: EBS volumes on
	// Nitro instances are NVMe devices whose serial is the volume id
	// without its dash.
	Serial string
	// Names are kernel names the device may have, e.g. "xvdf" for an EBS
	// volume attached as /dev/sdf on a Xen instance.
	Names []string
}

// Options tune one snapshot.
type Options struct {
	// Name is the snapshot's name (a tag where the provider has no names),
	// already unique; providers shorten or clean it to their rules.
	Name string
	// Description is a human note on the snapshot.
	Description string
	// Tags are added to the snapshot (GCP labels); keys and values are
	// cleaned to the provider's rules.
	Tags map[string]string
	// Lock, when set, locks the snapshot against deletion (AWS only).
	Lock *Lock
}

// Lock is an EBS snapshot lock: in compliance mode nobody can delete the
// snapshot before it expires, in governance mode users with the permission
// can unlock it. It guards backups against a stolen credential or a wrong
// retention run.
type Lock struct {
	Mode string // "compliance" or "governance"
	Days int    // lock duration
}

// Check validates the lock on its own, before any snapshot is taken.
func (l *Lock) Check() error {
	if l == nil {
		return nil
	}
	switch l.Mode {
	case "compliance", "governance":
	default:
		return fmt.Errorf("snapshot lock mode %q: use compliance or governance", l.Mode)
	}
	if l.Days < 1 || l.Days > 36500 {
		return fmt.Errorf("snapshot lock duration %d days: use 1 to 36500 days", l.Days)
	}
	return nil
}

// defaultPoll is how often a real cloud is asked about a snapshot: EBS and
// PD snapshots take minutes, and each provider rate-limits its API.
const defaultPoll = 5 * time.Second

func (c Config) poll() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return defaultPoll
}

// Classified errors, tested with errors.Is.
var (
	// ErrNotFound: the instance or a disk does not exist or is not attached.
	ErrNotFound = errors.New("not found")
	// ErrFailed: the provider reports that the snapshot failed.
	ErrFailed = errors.New("snapshot failed")
	// ErrMount: PGDATA or a tablespace is not on the listed disks, or a
	// recovery disk is not where the record says.
	ErrMount = errors.New("mount check failed")
)

// Config selects and configures a provider. Credentials are never part of
// it: each provider uses its SDK's standard chain (environment, profile,
// instance identity).
type Config struct {
	Provider string // aws, gcp or azure

	Region         string // AWS (default: the SDK's configuration)
	Zone           string // GCP: the instance's zone
	Project        string // GCP
	SubscriptionID string // Azure
	ResourceGroup  string // Azure: the instance's, where snapshots are made

	// Endpoint overrides the provider's API endpoint, for private clouds
	// and for tests. An http:// endpoint is accepted only on a loopback
	// address, since tokens would otherwise cross the network in clear.
	Endpoint string

	// PollInterval is how often the provider is asked whether a snapshot
	// or an operation is complete; 0 means a default suited to real
	// clouds. Tests shorten it.
	PollInterval time.Duration
}

// Providers are the names Config.Provider accepts.
var Providers = []string{"aws", "gcp", "azure"}

// Check validates the configuration before anything is contacted, so that
// a missing option is reported before pg_backup_start.
func (c Config) Check() error {
	var missing []string
	switch c.Provider {
	case "aws":
	case "gcp":
		if c.Project == "" {
			missing = append(missing, "--gcp-project")
		}
		if c.Zone == "" {
			missing = append(missing, "--snapshot-zone")
		}
	case "azure":
		if c.SubscriptionID == "" {
			missing = append(missing, "--azure-subscription-id")
		}
		if c.ResourceGroup == "" {
			missing = append(missing, "--azure-resource-group")
		}
	default:
		return fmt.Errorf("snapshot provider %q: use one of %s", c.Provider, strings.Join(Providers, ", "))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s snapshots need %s", c.Provider, strings.Join(missing, " and "))
	}
	if c.Endpoint != "" {
		if _, err := checkEndpoint(c.Endpoint); err != nil {
			return err
		}
	}
	return nil
}

// checkEndpoint parses an endpoint override and tells whether it is plain
// HTTP (allowed on loopback only: emulators and tests).
func checkEndpoint(endpoint string) (plainHTTP bool, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false, fmt.Errorf("snapshot endpoint %q: use a URL such as https://ec2.example.internal", endpoint)
	}
	switch u.Scheme {
	case "https":
		return false, nil
	case "http":
		switch h := u.Hostname(); {
		case h == "localhost", strings.HasPrefix(h, "127."), h == "::1":
			return true, nil
		}
		return false, fmt.Errorf("snapshot endpoint %q: plain http is accepted only on a loopback address; use https", endpoint)
	}
	return false, fmt.Errorf("snapshot endpoint %q: use an https:// URL", endpoint)
}

// Open returns the provider chosen by c, with its SDK's standard
// credentials. It contacts nothing yet.
//
// A plain-http endpoint on loopback is taken for an emulator (a test's
// fake API): GCP and Azure then send it no credentials of the machine's
// own, which an emulator has no use for and which must not leak to it.
// AWS requests are signed with whatever the SDK's chain finds, as its
// emulators expect.
func Open(ctx context.Context, c Config) (Provider, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	emulator := false
	if c.Endpoint != "" {
		emulator, _ = checkEndpoint(c.Endpoint)
	}
	switch c.Provider {
	case "aws":
		return NewAWS(ctx, c)
	case "gcp":
		if emulator {
			return NewGCP(ctx, c, option.WithoutAuthentication())
		}
		return NewGCP(ctx, c)
	default:
		if emulator {
			return NewAzure(c, emulatorCredential{}, nil)
		}
		return NewAzure(c, nil, nil)
	}
}

// emulatorCredential is the token sent to an Azure emulator: azcore
// requires a credential, and an emulator checks none.
type emulatorCredential struct{}

func (emulatorCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "emulator", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// ConfigOf rebuilds the configuration that made s from its record, so that
// a snapshot can be deleted with nothing but the catalog.
func ConfigOf(s catalog.Snapshot) Config {
	d := s.Details
	return Config{
		Provider:       s.Provider,
		Region:         d["region"],
		Zone:           d["zone"],
		Project:        d["project"],
		SubscriptionID: d["subscription_id"],
		ResourceGroup:  d["resource_group"],
	}
}

// ConfigFor is the configuration that reaches rec's snapshots and a
// recovery instance: the record's (provider, region, project,
// subscription, resource group, zone) with the non-empty fields of
// override on top, since the recovery instance may live in another zone
// or resource group than the backed-up one, and an endpoint is never
// recorded.
func ConfigFor(rec *catalog.Backup, override Config) (Config, error) {
	if len(rec.Snapshots) == 0 {
		return Config{}, fmt.Errorf("backup %s is not a snapshot backup", rec.ID)
	}
	c := ConfigOf(rec.Snapshots[0])
	if override.Provider != "" && override.Provider != c.Provider {
		return Config{}, fmt.Errorf("backup %s was taken on %s, not %s", rec.ID, c.Provider, override.Provider)
	}
	c = c.overlay(override)
	return c, c.Check()
}

// overlay returns c with the non-empty fields of o on top, the provider
// excepted: callers decide whether a different provider is an error.
func (c Config) overlay(o Config) Config {
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&c.Region, o.Region}, {&c.Zone, o.Zone}, {&c.Project, o.Project},
		{&c.SubscriptionID, o.SubscriptionID}, {&c.ResourceGroup, o.ResourceGroup},
		{&c.Endpoint, o.Endpoint},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if o.PollInterval > 0 {
		c.PollInterval = o.PollInterval
	}
	return c
}

// OpenWith is the Opener of a command that deletes or checks recorded
// snapshots with options of its own: the non-empty fields of override (an
// endpoint, which records never hold; a poll interval) go over each
// snapshot's recorded configuration, then Open opens it.
func OpenWith(override Config) Opener {
	return func(ctx context.Context, c Config) (Provider, error) {
		return Open(ctx, c.overlay(override))
	}
}

// CheckEndpoint validates an endpoint override on its own, so that a
// command can refuse a bad one before it has a snapshot to reach with it.
func CheckEndpoint(endpoint string) error {
	_, err := checkEndpoint(endpoint)
	return err
}
