package azure

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/internal/bucket"
	"github.com/gbc-backup/gbc/cloud/internal/stall"
)

func init() {
	cloud.Register(cloud.Provider{Scheme: "azblob", Open: open, Classify: classify, Summary: summary})
}

const (
	// azureMaxBlocks is Azure's limit on the blocks of one block blob.
	azureMaxBlocks = 50000
	// azureMaxBlockSize is Azure's limit on one block's size.
	azureMaxBlockSize = 4000 << 20
)

// open returns the azblob:// provider. Credentials come from the
// environment only, in this order:
//
//   - AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGEBLOB_CONNECTIONSTRING);
//   - AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY (shared key);
//   - AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_SAS_TOKEN;
//   - AZURE_STORAGE_ACCOUNT alone: DefaultAzureCredential (AZURE_CLIENT_ID
//     and friends, workload or managed identity, az login).
//
// The service URL is https://<account>.blob.core.windows.net (or
// AZURE_STORAGE_DOMAIN), or EndpointURL. With EndpointURL (Azurite, a
// private endpoint), the account and key still come from the environment,
// from the connection string or from AZURE_STORAGE_ACCOUNT/KEY; an
// endpoint without a path whose host does not start with the account name
// gets "/<account>" appended, which is how Azurite addresses accounts.
// Nothing here touches the network.
func open(_ context.Context, containerName string, opts cloud.Options) (cloud.Store, error) {
	client, err := azureContainerClient(containerName, opts.EndpointURL, opts.IOTimeout)
	if err != nil {
		return nil, fmt.Errorf("azblob: %w", err)
	}
	partSize := bucket.PartSize(opts)
	concurrency := bucket.Concurrency(opts)
	return &bucket.Store{
		Base: "azblob://" + containerName,
		Open: func(ctx context.Context) (*blob.Bucket, func() error, error) {
			b, err := azureblob.OpenBucket(ctx, client, nil)
			return b, nil, err
		},
		ReaderTag: func(r *blob.Reader) string {
			var resp azblobblob.DownloadStreamResponse
			if r.As(&resp) && resp.ETag != nil {
				return string(*resp.ETag)
			}
			return ""
		},
		WriterOptions: func(po cloud.PutOptions) *blob.WriterOptions {
			block := min(bucket.PartSizeFor(partSize, po.SizeHint, azureMaxBlocks), azureMaxBlockSize)
			wo := &blob.WriterOptions{
				ContentType:    "application/octet-stream",
				Metadata:       po.Metadata,
				IfNotExist:     po.IfNotExists,
				BufferSize:     int(block),
				MaxConcurrency: concurrency,
			}
			if opts.EncryptionScope != "" {
				scope := opts.EncryptionScope
				wo.BeforeWrite = func(as func(any) bool) error {
					var uo *azblob.UploadStreamOptions
					if !as(&uo) {
						return errors.New("azblob: gocloud did not expose the upload options")
					}
					uo.CPKScopeInfo = &azblobblob.CPKScopeInfo{EncryptionScope: &scope}
					return nil
				}
			}
			return wo
		},
	}, nil
}

func azureContainerClient(containerName, endpoint string, ioTimeout time.Duration) (*container.Client, error) {
	// Every request goes through the stall watchdog (see package stall).
	copts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: stall.Client(ioTimeout)}}
	connStr := os.Getenv("AZURE_STORAGE_CONNECTION_STRING")
	if connStr == "" {
		connStr = os.Getenv("AZURE_STORAGEBLOB_CONNECTIONSTRING")
	}
	account := os.Getenv("AZURE_STORAGE_ACCOUNT")
	key := os.Getenv("AZURE_STORAGE_KEY")
	sas := os.Getenv("AZURE_STORAGE_SAS_TOKEN")
	if connStr != "" {
		if endpoint == "" {
			return container.NewClientFromConnectionString(connStr, containerName, copts)
		}
		// The endpoint overrides the connection string's; keep only its
		// credentials.
		kv := parseConnectionString(connStr)
		account, key, sas = kv["accountname"], kv["accountkey"], kv["sharedaccesssignature"]
		if account == "" {
			return nil, errors.New("AZURE_STORAGE_CONNECTION_STRING has no AccountName")
		}
	}

	var serviceURL string
	if endpoint != "" {
		serviceURL = azureServiceURL(endpoint, account)
	} else {
		if account == "" {
			return nil, errors.New("no storage account: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT (with AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, or Entra ID credentials for DefaultAzureCredential)")
		}
		so := azureblob.NewDefaultServiceURLOptions()
		so.AccountName, so.SASToken = account, ""
		u, err := azureblob.NewServiceURL(so)
		if err != nil {
			return nil, err
		}
		serviceURL = string(u)
	}
	containerURL, err := url.JoinPath(serviceURL, containerName)
	if err != nil {
		return nil, fmt.Errorf("bad service URL %q: %w", serviceURL, err)
	}

	switch {
	case account != "" && key != "":
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("AZURE_STORAGE_KEY: %w", err)
		}
		return container.NewClientWithSharedKeyCredential(containerURL, cred, copts)
	case sas != "":
		return container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(sas, "?"), copts)
	default:
		// Constructing the credential only reads the environment; tokens
		// are fetched on the first request.
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("DefaultAzureCredential: %w", err)
		}
		return container.NewClient(containerURL, cred, copts)
	}
}

// azureServiceURL appends the account to an endpoint that lacks it
// (Azurite: http://127.0.0.1:10000 -> http://127.0.0.1:10000/devstoreaccount1).
func azureServiceURL(endpoint, account string) string {
	u, err := url.Parse(endpoint)
	if err != nil || account == "" {
		return endpoint
	}
	if strings.Trim(u.Path, "/") == "" && !strings.HasPrefix(u.Hostname(), account+".") {
		u.Path = "/" + account
	}
	return u.String()
}

// parseConnectionString splits "Key=Value;..." with lower-cased keys.
// Values may contain "=" (base64 account keys end with it).
func parseConnectionString(s string) map[string]string {
	kv := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			kv[strings.ToLower(k)] = v
		}
	}
	return kv
}
