package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/gbc-backup/gbc/pgrun"
)

// s3Server is the MinIO server every tool of the run talks to, on TLS with
// a self-signed certificate.
type s3Server struct {
	endpoint string // https://127.0.0.1:PORT
	host     string // 127.0.0.1
	port     int
	caFile   string // the certificate, as a CA bundle
	bucket   string
	key      string
	secret   string
	region   string
	client   *s3.Client
}

// Test credentials of a server that lives for one run on 127.0.0.1.
const (
	s3Key    = "gbcbench"
	s3Secret = "gbcbench-secret"
	s3Region = "us-east-1"
	s3Bucket = "bench"
)

// env returns the variables that give every tool the credentials and the
// CA bundle: the AWS SDKs (gbc, boto3 in barman-cloud) read AWS_*, and
// pgBackRest reads PGBACKREST_* (its CA file is an option in its config).
func (s *s3Server) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.key,
		"AWS_SECRET_ACCESS_KEY=" + s.secret,
		"AWS_REGION=" + s.region,
		"AWS_DEFAULT_REGION=" + s.region,
		"AWS_CA_BUNDLE=" + s.caFile,
		"PGBACKREST_REPO1_S3_KEY=" + s.key,
		"PGBACKREST_REPO1_S3_KEY_SECRET=" + s.secret,
	}
}

// startMinIO starts MinIO from PATH on a free port with a fresh certificate,
// creates the bucket and adds the credentials to the run's environment.
func (e *env) startMinIO(ctx context.Context) error {
	bin, err := exec.LookPath("minio")
	if err != nil {
		return errors.New("bench: minio is not in PATH: run scripts/test-deps.sh and add $GBC_TOOLS/bin to PATH (make bench does)")
	}
	dir := filepath.Join(e.dir, "minio")
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := writeCert(certs); err != nil {
		return err
	}
	port, err := pgrun.FreePort()
	if err != nil {
		return err
	}
	console, err := pgrun.FreePort()
	if err != nil {
		return err
	}
	s := &s3Server{
		host: "127.0.0.1", port: port,
		endpoint: "https://127.0.0.1:" + strconv.Itoa(port),
		caFile:   filepath.Join(certs, "public.crt"),
		bucket:   s3Bucket, key: s3Key, secret: s3Secret, region: s3Region,
	}
	b, err := e.startBackground("minio", []string{bin, "server", filepath.Join(dir, "data"),
		"--address", "127.0.0.1:" + strconv.Itoa(port),
		"--console-address", "127.0.0.1:" + strconv.Itoa(console),
		"--certs-dir", certs, "--quiet"},
		[]string{"MINIO_ROOT_USER=" + s.key, "MINIO_ROOT_PASSWORD=" + s.secret, "MINIO_BROWSER=off"},
		filepath.Join(dir, "minio.log"))
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 8,
	}}
	err = pgrun.WaitFor(ctx, b, 60*time.Second, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health check: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: minio on %s: %w", s.endpoint, err)
	}
	s.client = s3.New(s3.Options{
		Region:       s.region,
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.key, s.secret, ""),
		HTTPClient:   hc,
	})
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("bench: create bucket %s: %w", s.bucket, err)
	}
	e.s3 = s
	e.procEnv = append(e.procEnv, s.env()...)
	e.log.printf("MinIO on %s (TLS, self-signed), bucket %s", s.endpoint, s.bucket)
	return nil
}

// size returns the bytes and the number of objects under a key prefix.
func (s *s3Server) size(ctx context.Context, prefix string) (int64, int, error) {
	var total int64
	n := 0
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("bench: list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			total += aws.ToInt64(o.Size)
			n++
		}
	}
	return total, n, nil
}

// writeCert writes a self-signed certificate and key as MinIO wants them
// (public.crt, private.key). The certificate names 127.0.0.1 both as an IP
// address (what Go and Python check) and as a DNS name: pgBackRest 2.45
// matches the host only against DNS names.
func writeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("bench: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return fmt.Errorf("bench: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1", Organization: []string{"gbc bench"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost", "127.0.0.1"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("bench: certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("bench: key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
