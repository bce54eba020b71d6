package backupcmd

import (
	"testing"

	"github.com/gbc-backup/gbc/snapshot"
)

func TestInferProvider(t *testing.T) {
	for _, tc := range []struct {
		c    snapshot.Config
		url  string
		want string
	}{
		{snapshot.Config{Project: "p"}, "s3://b/x", "gcp"},
		{snapshot.Config{Zone: "europe-west1-b"}, "file:///x", "gcp"},
		{snapshot.Config{ResourceGroup: "rg"}, "gs://b", "azure"},
		{snapshot.Config{Region: "eu-west-1"}, "azblob://c", "aws"},
		{snapshot.Config{}, "S3://b/x", "aws"},
		{snapshot.Config{}, "gs://b", "gcp"},
		{snapshot.Config{}, "azblob://c/p", "azure"},
		{snapshot.Config{}, "file:///var/lib/gbc", ""},
	} {
		if got := inferProvider(tc.c, tc.url); got != tc.want {
			t.Errorf("inferProvider(%+v, %s) = %q, want %q", tc.c, tc.url, got, tc.want)
		}
	}
}
