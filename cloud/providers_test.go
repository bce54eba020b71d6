package cloud_test

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/cloud/storetest"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// suiteOptions keep the in-process runs quick: big enough to cross the
// default part size and the 1,000-key page, small enough for seconds.
func suiteOptions() storetest.Options {
	o := storetest.Options{LargeSize: 40 << 20, ManyKeys: 1100}
	if testing.Short() {
		o = storetest.Options{}
	}
	return o
}

func TestFileContract(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not", "yet", "there")
	s, err := cloud.Open(t.Context(), "file://"+root, cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Run(t, s, suiteOptions())
}

// The in-memory store stands in for the real ones in other packages' unit
// tests: it must meet the same contract.
func TestMemContract(t *testing.T) {
	s := cloud.NewMem()
	defer s.Close()
	storetest.Run(t, s, suiteOptions())
}

// isolateAWS keeps the host's AWS configuration out of a test.
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	for _, k := range []string{"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(k, "")
	}
}

// fakeS3 starts gofakes3 with one bucket and credentials in the
// environment, and returns its URL.
func fakeS3(t *testing.T, bucket string) string {
	t.Helper()
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test-access-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(replaceMetadata{backend}).Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

// replaceMetadata fixes gofakes3's one departure from S3 that the contract
// notices: on overwrite it merges the old object's metadata into the new
// one, where S3 (and MinIO, and every other provider) replaces it.
type replaceMetadata struct{ *s3mem.Backend }

func (b replaceMetadata) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	if cond == nil || cond.IfNoneMatch == nil {
		_, _ = b.Backend.DeleteObject(bucket, key)
	}
	return b.Backend.PutObject(bucket, key, meta, input, size, cond)
}

func TestS3Contract(t *testing.T) {
	endpoint := fakeS3(t, "gbc-test")
	s, err := cloud.Open(t.Context(), "s3://gbc-test/some/prefix", cloud.Options{EndpointURL: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Run(t, s, suiteOptions())
}

// fakeGCS starts fake-gcs-server in process with one bucket.
func fakeGCS(t *testing.T, bucket string) *fakestorage.Server {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:         "http",
		Host:           "127.0.0.1",
		InitialObjects: nil,
		NoListener:     false,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return srv
}

func TestGCSContract(t *testing.T) {
	srv := fakeGCS(t, "gbc-test")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	s, err := cloud.Open(context.Background(), "gs://gbc-test/pre", cloud.Options{EndpointURL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Run(t, s, suiteOptions())
}
