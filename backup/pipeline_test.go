package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
)

type testFile struct {
	name string
	data []byte
}

// someFiles makes files of mixed sizes and compressibility, one of them
// larger than max so that it needs a part of its own.
func someFiles(max int64) []testFile {
	r := rand.New(rand.NewPCG(1, 2))
	var files []testFile
	sizes := []int64{0, 1, 511, 512, 513, 8192, 100_000, max / 3, max / 2, max + 1000, 3 * chunkSize / 2, 17, 8192}
	for i, n := range sizes {
		b := make([]byte, n)
		if i%2 == 0 {
			for j := range b {
				b[j] = byte(r.IntN(256))
			}
		} else {
			for j := range b {
				b[j] = byte(j / 100)
			}
		}
		files = append(files, testFile{name: fmt.Sprintf("base/1/%d", 1000+i), data: b})
	}
	return files
}

// readPart decompresses and reads one stored part.
func readPart(t *testing.T, st cloud.Store, key string, codec compress.Codec) []testFile {
	t.Helper()
	rc, err := st.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := codec.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []testFile
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part %s: %v", key, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("part %s: %v", key, err)
		}
		name := h.Name
		if h.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/") + "/"
		}
		out = append(out, testFile{name: name, data: b})
	}
	return out
}

func TestPartSplitting(t *testing.T) {
	for _, codecName := range compress.Names() {
		t.Run(codecName, func(t *testing.T) {
			codec, err := compress.Lookup(codecName)
			if err != nil {
				t.Fatal(err)
			}
			const max = 3 << 20
			files := someFiles(max)
			st := cloud.NewMem()
			var progressed int64
			p := newPipeline(context.Background(), pipelineConfig{
				Store: st, Layout: catalog.Layout{Server: "srv"}, ID: "20261124T214842Z", Codec: codec,
				Jobs: 3, MaxPartSize: max, Uploads: 2, Progress: func(n int64) { progressed += n },
			})
			a := p.archive("")
			if err := a.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "base/", Mode: 0o700}); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := a.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: int64(len(f.data)), Mode: 0o600}); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Write(f.data); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			ts := p.archive("16384")
			if err := ts.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "PG_15_1/5/6", Size: 3, Mode: 0o600}); err != nil {
				t.Fatal(err)
			}
			ts.Write([]byte("abc"))
			if err := ts.Close(); err != nil {
				t.Fatal(err)
			}
			parts, err := p.wait()
			if err != nil {
				t.Fatal(err)
			}

			var got []testFile
			var total int64
			for i, pt := range parts {
				obj := storedBytes(t, st, pt.Key)
				sum := sha256.Sum256(obj)
				if pt.SHA256 != hex.EncodeToString(sum[:]) || pt.StoredSize != int64(len(obj)) {
					t.Errorf("part %s: record says %d bytes %s, stored %d bytes %x", pt.Key, pt.StoredSize, pt.SHA256, len(obj), sum)
				}
				entries := readPart(t, st, pt.Key, codec)
				regular := 0
				for _, e := range entries {
					if !strings.HasSuffix(e.name, "/") {
						regular++
					}
				}
				if regular != pt.Files {
					t.Errorf("part %s: %d files, record says %d", pt.Key, regular, pt.Files)
				}
				// A part is at most max, unless it holds a single file.
				if pt.Size > max && len(entries) != 1 {
					t.Errorf("part %s: %d bytes with %d entries, max %d", pt.Key, pt.Size, len(entries), max)
				}
				total += pt.Size
				if pt.Tablespace == "" {
					want := fmt.Sprintf("srv/base/20261124T214842Z/data/%d.tar", i+1)
					if ext := codec.Ext(); ext != "" {
						want += "." + ext
					}
					if pt.Key != want {
						t.Errorf("part %d key %s, want %s", i, pt.Key, want)
					}
					got = append(got, entries...)
				}
			}
			if progressed != total {
				t.Errorf("progress reported %d bytes, parts hold %d", progressed, total)
			}
			if len(parts) < 3 {
				t.Errorf("%d parts: the files should need at least 3", len(parts))
			}
			last := parts[len(parts)-1]
			if last.Tablespace != "16384" || !strings.HasPrefix(last.Key, "srv/base/20261124T214842Z/tblspc/16384/1.tar") || last.Files != 1 {
				t.Errorf("tablespace part %+v", last)
			}
			want := append([]testFile{{name: "base/"}}, files...)
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].name != want[i].name || !bytes.Equal(got[i].data, want[i].data) {
					t.Errorf("entry %d: %s (%d bytes), want %s (%d bytes)", i, got[i].name, len(got[i].data), want[i].name, len(want[i].data))
				}
			}
		})
	}
}

// TestPipelineUploadFailure checks that a failed upload stops the producer
// with the store's error instead of hanging, and that nothing is reported
// stored.
func TestPipelineUploadFailure(t *testing.T) {
	codec, _ := compress.Lookup("zstd")
	st := failPuts{Store: cloud.NewMem(), fail: func(key string) error {
		if strings.Contains(key, "/2.tar") {
			return errInjected
		}
		return nil
	}}
	p := newPipeline(context.Background(), pipelineConfig{
		Store: st, Layout: catalog.Layout{Server: "srv"}, ID: "x", Codec: codec, Jobs: 2, MaxPartSize: 1 << 20, Uploads: 2,
	})
	a := p.archive("")
	data := make([]byte, 300_000)
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000 && err == nil; i++ {
			err = a.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprint(i), Size: int64(len(data))})
			if err == nil {
				_, err = a.Write(data)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the producer hangs after an upload failure")
	}
	if !errors.Is(err, errInjected) {
		t.Errorf("producer error %v, want the injected one", err)
	}
	p.abort(err)
	_, werr := p.wait()
	if !errors.Is(werr, errInjected) || !strings.Contains(werr.Error(), "/2.tar") {
		t.Errorf("wait: %v; want the injected error naming the part", werr)
	}
}

// TestConcatenatedFrames guards what the pipeline relies on: every codec
// decompresses concatenated frames as one stream.
func TestConcatenatedFrames(t *testing.T) {
	for _, name := range compress.Names() {
		codec, _ := compress.Lookup(name)
		var stored, want bytes.Buffer
		for i := range 3 {
			data := bytes.Repeat([]byte{byte('a' + i), 'x', byte(i)}, 50_000+i)
			want.Write(data)
			w, err := codec.NewWriter(&stored, 0)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		r, err := codec.NewReader(&stored)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: concatenated frames read back as %d bytes (%v), want %d", name, len(got), err, want.Len())
		}
	}
}
