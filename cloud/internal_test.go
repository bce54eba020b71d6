package cloud

import (
	"strings"
	"testing"
)

func TestParseStoreURL(t *testing.T) {
	for raw, want := range map[string]storeURL{
		"s3://bkt":                   {scheme: "s3", bucket: "bkt"},
		"s3://bkt/":                  {scheme: "s3", bucket: "bkt"},
		"S3://bkt/a/b/":              {scheme: "s3", bucket: "bkt", prefix: "a/b"},
		"gs://bkt/pg/prod":           {scheme: "gs", bucket: "bkt", prefix: "pg/prod"},
		"azblob://container/x":       {scheme: "azblob", bucket: "container", prefix: "x"},
		"file:///var/lib/gbc":        {scheme: "file", dir: "/var/lib/gbc"},
		"file://localhost/srv/b":     {scheme: "file", dir: "/srv/b"},
		"file:///with%20space/x%2Fy": {scheme: "file", dir: "/with space/x/y"},
	} {
		got, err := parseStoreURL(raw)
		if err != nil || got != want {
			t.Errorf("parseStoreURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for raw, why := range map[string]string{
		"":                            "empty",
		"bucket/prefix":               "no scheme",
		"/var/lib/gbc":                "no scheme",
		"http://host/x":               `unknown scheme "http"`,
		"s3:bucket":                   `missing "//"`,
		"s3://":                       "no bucket",
		"s3:///prefix":                "no bucket",
		"s3://user:secret@bkt/p":      "credentials do not belong",
		"s3://bkt/p?region=x":         "query parameters",
		"s3://bkt/p#frag":             "fragments",
		"s3://bkt:9000/p":             "--endpoint-url",
		"gs://bkt/a//b":               "bad prefix",
		"gs://bkt/../b":               "bad prefix",
		"azblob://cnt/.hidden":        "bad prefix",
		"s3://b/pg":                   "3 to 255 characters",
		"azblob://My_Container/pg":    "is not allowed",
		"gs://-bucket/pg":             "start and end with a letter or digit",
		"file://var/lib/gbc":          "file:///var/lib/gbc",
		"file:relative":               `missing "//"`,
		"s3://bkt/%zz":                "invalid URL escape",
		"ftp://host/dir":              `unknown scheme "ftp"`,
		"s3://bkt/p?":                 "query parameters",
		"azblob://cnt/prefix/\x01ctl": "invalid control character",
	} {
		_, err := parseStoreURL(raw)
		if err == nil {
			t.Errorf("parseStoreURL(%q) succeeded, want an error about %q", raw, why)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, why) || !strings.Contains(msg, AcceptedURLs) {
			t.Errorf("parseStoreURL(%q) = %q, want it to mention %q and the accepted forms", raw, msg, why)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, tc := range []struct {
		scheme string
		o      Options
		want   string // "" means valid
	}{
		{"s3", Options{SSE: "AES256"}, ""},
		{"s3", Options{SSE: "aws:kms", SSEKMSKeyID: "arn:aws:kms:x"}, ""},
		{"s3", Options{SSE: "aws:kms:dsse"}, ""},
		{"s3", Options{SSE: "aws:kms:dsse", SSEKMSKeyID: "arn:aws:kms:x"}, ""},
		{"s3", Options{SSE: "aes256"}, "want AES256 or aws:kms"},
		{"s3", Options{SSE: "aws:kms:DSSE"}, "aws:kms:dsse for dual-layer"},
		{"gs", Options{SSE: "aws:kms:dsse"}, "s3:// stores only"},
		{"s3", Options{MaxBandwidth: -1}, "bandwidth limit -1"},
		{"file", Options{MaxBandwidth: 1 << 20}, ""},
		{"s3", Options{SSEKMSKeyID: "k"}, "needs --sse aws:kms"},
		{"s3", Options{SSE: "AES256", SSEKMSKeyID: "k"}, "not AES256"},
		{"gs", Options{SSE: "AES256"}, "s3:// stores only"},
		{"s3", Options{EncryptionScope: "scope"}, "azblob:// stores only"},
		{"azblob", Options{EncryptionScope: "scope"}, ""},
		{"file", Options{EndpointURL: "http://x"}, "does not apply to file://"},
		{"s3", Options{EndpointURL: "127.0.0.1:9000"}, "want http://host:port"},
		{"s3", Options{EndpointURL: "http://127.0.0.1:9000"}, ""},
		{"s3", Options{PartSize: 1 << 20}, "at least 5 MiB"},
		{"s3", Options{PartSize: 6 << 30}, "at most 5 GiB"},
		{"s3", Options{Concurrency: -1}, "want 1 or more"},
		{"gs", Options{Region: "eu-west-1"}, ""}, // harmless, ignored
	} {
		err := tc.o.check(tc.scheme)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %+v: %v, want valid", tc.scheme, tc.o, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %+v: %v, want an error with %q", tc.scheme, tc.o, err, tc.want)
		}
	}
}

// The sweep recognises exactly the names createTemp makes, whatever
// os.CreateTemp's random part looks like in this Go release.
func TestTempTarget(t *testing.T) {
	s := newFileStore(t.TempDir())
	f, err := s.createTemp(s.root, "000000010000000000000001.zst")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	name := f.Name()[strings.LastIndexByte(f.Name(), '/')+1:]
	if got, ok := tempTarget(name); !ok || got != "000000010000000000000001.zst" {
		t.Errorf("tempTarget(%q) = %q, %v", name, got, ok)
	}
	for _, n := range []string{".x", ".tmp-1", "x.tmp-1", ".x.tmp-", ".x.tmp-1a", "..tmp-1"} {
		if got, ok := tempTarget(n); ok {
			t.Errorf("tempTarget(%q) = %q, want not a temporary file", n, got)
		}
	}
}
