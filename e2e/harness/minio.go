package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gbc-backup/gbc/pgrun"
)

// S3Region is the region every S3 test server and client uses.
const S3Region = "us-east-1"

// S3Server is a running MinIO server.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Dir       string // MinIO's data directory

	p *proc
}

// StartMinIO starts a MinIO server for this test only; it is killed when
// the test ends. Prefer SharedMinIO unless the test stops or breaks the
// server.
func StartMinIO(t testing.TB) *S3Server {
	t.Helper()
	return startForTest(t, "gbc-minio-", "MinIO", startMinIO, func(s *S3Server) *proc { return s.p })
}

// SharedMinIO returns the MinIO server shared by every test of this test
// binary, starting it on first use. Main stops it.
func SharedMinIO(t testing.TB) *S3Server {
	t.Helper()
	needMain(t)
	s, err := sharedMinIO()
	if err != nil {
		t.Fatalf("harness: shared MinIO: %v", err)
	}
	return s
}

func sharedMinIO() (*S3Server, error) {
	return reg.minio.get(func() (*S3Server, error) { return startShared("gbc-minio-", startMinIO) })
}

func startMinIO(dir string) (*S3Server, error) {
	return withPortRetry(func() (*S3Server, error) { return startMinIOOnce(dir) })
}

func startMinIOOnce(dir string) (*S3Server, error) {
	bin, err := lookTool("minio")
	if err != nil {
		return nil, err
	}
	port, err := pgrun.FreePort()
	if err != nil {
		return nil, err
	}
	cport, err := pgrun.FreePort()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("harness: random secret: %w", err)
	}
	s := &S3Server{
		Endpoint:  "http://127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "gbc-e2e-access",
		SecretKey: hex.EncodeToString(secret),
		Dir:       dir,
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	env := append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
	)
	start := time.Now()
	s.p, err = startProc(pgrun.ProcessSpec{
		Name:    "minio",
		Path:    bin,
		Args:    []string{"server", data, "--quiet", "--address", "127.0.0.1:" + strconv.Itoa(port), "--console-address", "127.0.0.1:" + strconv.Itoa(cport)},
		Env:     env,
		Dir:     dir,
		LogPath: filepath.Join(dir, "minio.log"),
	})
	if err != nil {
		return nil, err
	}
	err = pgrun.WaitFor(context.Background(), s.p.Process, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, s.Endpoint+"/minio/health/live")
	})
	if err != nil {
		s.p.kill()
		return nil, fmt.Errorf("harness: MinIO: %w", err)
	}
	logStart("MinIO", s.Endpoint, start)
	return s, nil
}

// Env returns the credentials environment for a child process: the AWS
// SDK's standard variables.
func (s *S3Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + S3Region,
		"AWS_DEFAULT_REGION=" + S3Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Client returns an S3 client for this server (path-style addressing,
// static credentials), independent of gbc's own blob layer.
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       S3Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// NewBucket creates a fresh, empty bucket and returns its name.
func (s *S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("harness: create S3 bucket %s on %s: %v", name, s.Endpoint, err)
	}
	return name
}

// httpOK succeeds when GET url answers 2xx.
func httpOK(ctx context.Context, url string) error {
	code, err := httpStatus(ctx, url)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return fmt.Errorf("GET %s: HTTP %d", url, code)
	}
	return nil
}

// httpStatus returns the status code of GET url.
func httpStatus(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// logStart notes how long a server took to start, when GBC_E2E_VERBOSE is
// set (the numbers in the harness documentation come from it).
func logStart(what, where string, start time.Time) {
	if os.Getenv("GBC_E2E_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "harness: %s ready at %s in %v\n", what, where, time.Since(start).Round(time.Millisecond))
	}
}
