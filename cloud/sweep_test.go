package cloud_test

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// olderThan is a Stale function that picks what was begun before cutoff,
// and records the keys it was shown.
func olderThan(cutoff time.Time, shown *[]string) func(string, time.Time) bool {
	return func(key string, since time.Time) bool {
		*shown = append(*shown, key)
		return since.Before(cutoff)
	}
}

// A process killed in the middle of a Put leaves incomplete multipart
// uploads; the sweep aborts the old ones under its prefix, through the
// wrappers Open adds, and leaves young ones (a Put that may be running)
// and other prefixes alone.
func TestS3SweepStale(t *testing.T) {
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test-access-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	clock := gofakes3.FixedTimeSource(time.Now().UTC())
	backend := s3mem.New(s3mem.WithTimeSource(clock))
	if err := backend.CreateBucket("gbc-test"); err != nil {
		t.Fatal(err)
	}
	// The fake's clock moves on its own; requests are signed with the real one.
	srv := httptest.NewServer(gofakes3.New(replaceMetadata{backend}, gofakes3.WithTimeSource(clock), gofakes3.WithTimeSkewLimit(0)).Server())
	t.Cleanup(srv.Close)
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("test-access-key", "test-secret-key", ""),
	})
	ctx := t.Context()
	begin := func(key string, size int) {
		t.Helper()
		up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("gbc-test"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			_, err = client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("gbc-test"), Key: aws.String(key),
				UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, size))})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	begin("pre/main/base/20261124T214842Z/data/0.tar.zst", 1000)
	begin("pre/main/wals/0000000100000000/000000010000000000000003.zst", 200)
	begin("pre/other/wals/x", 10)
	begin("elsewhere/main/y", 10)
	clock.Advance(2 * time.Hour)
	begin("pre/main/base/20261126T000000Z/data/0.tar.zst", 10) // young: may be running
	cutoff := clock.Now().Add(-time.Hour)

	s, err := cloud.Open(ctx, "s3://gbc-test/pre", cloud.Options{EndpointURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	left := func() []string {
		t.Helper()
		out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("gbc-test")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		slices.Sort(keys)
		return keys
	}
	all := left()

	var shown []string
	res, err := cloud.SweepStale(ctx, s, "main/", cloud.SweepOptions{Stale: olderThan(cutoff, &shown), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 2 || res.Bytes != 1200 || res.What != "multipart uploads" {
		t.Errorf("dry run: %+v, want 2 multipart uploads of 1200 bytes", res)
	}
	if got := left(); !slices.Equal(got, all) {
		t.Errorf("a dry run aborted uploads: %v left of %v", got, all)
	}
	slices.Sort(shown)
	want := []string{"main/base/20261124T214842Z/data/0.tar.zst", "main/base/20261126T000000Z/data/0.tar.zst", "main/wals/0000000100000000/000000010000000000000003.zst"}
	if !slices.Equal(shown, want) {
		t.Errorf("Stale was shown %v, want the keys under the prefix, relative to the store: %v", shown, want)
	}

	shown = nil
	res, err = cloud.SweepStale(ctx, s, "main/", cloud.SweepOptions{Stale: olderThan(cutoff, &shown)})
	if err != nil || res.Count != 2 || res.Bytes != 1200 {
		t.Fatalf("sweep: %+v, %v; want 2 uploads of 1200 bytes aborted", res, err)
	}
	wantLeft := []string{"elsewhere/main/y", "pre/main/base/20261126T000000Z/data/0.tar.zst", "pre/other/wals/x"}
	if got := left(); !slices.Equal(got, wantLeft) {
		t.Errorf("uploads left: %v, want %v", got, wantLeft)
	}
	// Nothing left to sweep is not an error.
	if res, err := cloud.SweepStale(ctx, s, "main/", cloud.SweepOptions{Stale: olderThan(cutoff, new([]string))}); err != nil || res.Count != 0 {
		t.Errorf("second sweep: %+v, %v", res, err)
	}
}

// A killed Put on file:// leaves a hidden temporary file; the sweep
// removes the old ones under its prefix and the directories they leave
// empty, and nothing else.
func TestFileSweepStale(t *testing.T) {
	root := t.TempDir()
	s, err := cloud.Open(t.Context(), "file://"+root+"/pre", cloud.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.Put(ctx, "main/wals/0000000100000000/000000010000000000000001.zst", cloud.BytesBody([]byte("wal")), cloud.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	plant := func(rel string, mtime time.Time) string {
		t.Helper()
		p := filepath.Join(root, "pre", filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 5000), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldWAL := plant("main/wals/0000000100000000/.000000010000000000000002.zst.tmp-123456", old)
	oldPart := plant("main/base/20261124T214842Z/data/.0.tar.zst.tmp-42", old)
	young := plant("main/base/20261126T000000Z/data/.0.tar.zst.tmp-7", time.Now())
	foreign := plant("main/wals/.not-ours", old)
	almost := plant("main/wals/.x.tmp-12a", old)
	other := plant("other/wals/.x.tmp-1", old)
	cutoff := time.Now().Add(-24 * time.Hour)

	var shown []string
	res, err := cloud.SweepStale(ctx, s, "main/", cloud.SweepOptions{Stale: olderThan(cutoff, &shown), DryRun: true})
	if err != nil || res.Count != 2 || res.Bytes != 10000 || res.What != "temporary files" {
		t.Fatalf("dry run: %+v, %v; want 2 temporary files of 10000 bytes", res, err)
	}
	for _, p := range []string{oldWAL, oldPart} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dry run removed %s: %v", p, err)
		}
	}
	slices.Sort(shown)
	want := []string{"main/base/20261124T214842Z/data/0.tar.zst", "main/base/20261126T000000Z/data/0.tar.zst", "main/wals/0000000100000000/000000010000000000000002.zst"}
	if !slices.Equal(shown, want) {
		t.Errorf("Stale was shown %v, want %v", shown, want)
	}

	res, err = cloud.SweepStale(ctx, s, "main/", cloud.SweepOptions{Stale: olderThan(cutoff, new([]string))})
	if err != nil || res.Count != 2 || res.Bytes != 10000 {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	for _, p := range []string{oldWAL, oldPart} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	for _, p := range []string{young, foreign, almost, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	// The backup directory held only the temporary file: gone with it.
	if _, err := os.Stat(filepath.Join(root, "pre/main/base/20261124T214842Z")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory left behind: %v", err)
	}
	if _, err := s.Stat(ctx, "main/wals/0000000100000000/000000010000000000000001.zst"); err != nil {
		t.Errorf("an object next to a swept file: %v", err)
	}
}

// A store without leftovers to sweep says so.
func TestSweepStaleUnsupported(t *testing.T) {
	_, err := cloud.SweepStale(t.Context(), cloud.WithRetry(cloud.NewMem(), cloud.RetryOptions{}), "", cloud.SweepOptions{Stale: func(string, time.Time) bool { return true }})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("sweep of a mem store: %v, want errors.ErrUnsupported", err)
	}
}
