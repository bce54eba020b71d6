package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/storetest"
	"github.com/gbc-backup/gbc/e2e/harness"
)

// TestCloudContract runs the blob layer's contract suite on every provider
// against its real server: put/get/list/delete, pagination past 1,000 keys,
// a 200 MiB parallel multipart object, metadata, error classification.
func TestCloudContract(t *testing.T) {
	for _, st := range harness.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			s := st.Open(t)
			storetest.Run(t, s, storetest.Options{LargeSize: 200 << 20, ManyKeys: 1100})
		})
	}
}

// TestCloudErrors checks that what an operator gets wrong (URL, bucket,
// credentials) comes back classified, quickly, through cloud.Open and the
// first operation, as a command would see it.
func TestCloudErrors(t *testing.T) {
	t.Run("bad URL", func(t *testing.T) {
		for _, u := range []string{"", "ftp://bucket/x", "s3://", "gs:///prefix", "azblob://", "file://relative/dir", "no-scheme"} {
			s, err := cloud.Open(context.Background(), u, cloud.Options{})
			if err == nil {
				s.Close()
				t.Errorf("Open(%q) succeeded, want an error", u)
				continue
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 300 {
				t.Errorf("Open(%q): error is not one short line: %q", u, msg)
			}
		}
	})

	for _, st := range harness.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			opts := st.Options()
			opts.RetryTimeout = 10 * time.Second

			t.Run("missing key", func(t *testing.T) {
				s := st.OpenWith(t, opts)
				expectClass(t, s, cloud.ErrNotFound, false)
			})

			t.Run("missing bucket", func(t *testing.T) {
				missing := st.WithURL(missingBucketURL(t, st))
				s := missing.OpenWith(t, opts)
				// A file:// store creates its directory on the first Put,
				// and lists a missing one as empty: only reads fail.
				expectClass(t, s, cloud.ErrNotFound, st.Name != "file")
			})

			// file:// has no credentials (and as root no permission can be
			// denied); fake-gcs-server checks none.
			bad, ok := badCredentials(st)
			if !ok {
				return
			}
			t.Run("bad credentials", func(t *testing.T) {
				s := bad.OpenWith(t, opts)
				expectClass(t, s, cloud.ErrPermission, true)
			})
		})
	}
}

// expectClass checks that Get, Stat and (when write) Put fail with class
// within the retry budget.
func expectClass(t *testing.T, s cloud.Store, class error, write bool) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	if _, err := s.Stat(ctx, "no/such/key"); !errors.Is(err, class) {
		t.Errorf("Stat: %v, want %v", err, class)
	}
	if rc, err := s.Get(ctx, "no/such/key"); !errors.Is(err, class) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get: %v, want %v", err, class)
	}
	if write {
		err := s.Put(ctx, "some/key", cloud.BytesBody([]byte("x")), cloud.PutOptions{})
		if !errors.Is(err, class) {
			t.Errorf("Put: %v, want %v", err, class)
		}
		err = s.List(ctx, "", func(cloud.Attrs) error { return nil })
		if !errors.Is(err, class) {
			t.Errorf("List: %v, want %v", err, class)
		}
	}
	// Not-found and permission errors are final: not retried for long.
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("classified errors took %v: were they retried?", d)
	}
}

// missingBucketURL names a bucket (or directory) that does not exist on
// the store's server.
func missingBucketURL(t *testing.T, st harness.Store) string {
	name := "missing-" + harness.UniqueName(t)
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(name, "-")
	switch st.Name {
	case "file":
		return "file://" + st.Bucket + "/" + name + "/sub"
	case "s3":
		return "s3://" + name + "/e2e"
	case "gcs":
		return "gs://" + name + "/e2e"
	case "azure":
		return "azblob://" + name + "/e2e"
	}
	t.Fatalf("unknown provider %s", st.Name)
	return ""
}

// badCredentials returns st with wrong credentials, or false for providers
// that check none (file://, fake-gcs-server).
func badCredentials(st harness.Store) (harness.Store, bool) {
	switch st.Name {
	case "s3":
		return st.WithEnv("AWS_SECRET_ACCESS_KEY=not-the-secret"), true
	case "azure":
		wrongKey := "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
		return st.WithEnv(
			"AZURE_STORAGE_CONNECTION_STRING="+strings.Replace(connString(st), "AccountKey="+harness.AzuriteKey, "AccountKey="+wrongKey, 1),
			"AZURE_STORAGE_KEY="+wrongKey), true
	}
	return st, false
}

func connString(st harness.Store) string {
	for _, kv := range st.Env {
		if v, ok := strings.CutPrefix(kv, "AZURE_STORAGE_CONNECTION_STRING="); ok {
			return v
		}
	}
	return ""
}
