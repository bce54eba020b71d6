package verify

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"sync/atomic"
)

// manifest is the index of a backup_manifest's Files: what each file of
// the backup must be. Entries are marked as their files are found in the
// parts, from several goroutines.
type manifest struct {
	byPath  map[string]int32
	entries []manifestFile
}

type manifestFile struct {
	path      string
	size      int64
	algorithm string // upper case; "" or "NONE": no checksum
	checksum  string // hex, as the manifest writes it
	seen      atomic.Bool
}

// entry is one line of the Files array, with PostgreSQL's keys.
type entry struct {
	Path        string `json:"Path"`
	EncodedPath string `json:"Encoded-Path"`
	Size        int64  `json:"Size"`
	Algorithm   string `json:"Checksum-Algorithm"`
	Checksum    string `json:"Checksum"`
}

// errManifest wraps every reason a manifest is refused.
var errManifest = errors.New("not a valid backup_manifest")

// parseManifest reads a backup_manifest in PostgreSQL's layout (as
// pg_basebackup and gbc write it, and restore relies on): one file entry
// per line, and the Manifest-Checksum alone on the last line, the SHA-256
// of every byte before that line.
func parseManifest(r io.Reader) (*manifest, error) {
	in := bufio.NewReaderSize(r, 64<<10)
	sum := sha256.New()
	m := &manifest{byPath: map[string]int32{}}
	for n := 1; ; n++ {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if rest, ok := bytes.CutPrefix(line, []byte(`"Manifest-Checksum"`)); ok {
				want := strings.Trim(string(bytes.TrimSpace(rest)), `:"} `)
				if got := hex.EncodeToString(sum.Sum(nil)); got != want {
					return nil, fmt.Errorf("%w: its Manifest-Checksum is %s, but its content has %s", errManifest, want, got)
				}
				return m, nil
			}
			sum.Write(line)
			if bytes.HasPrefix(line, []byte(`{ "Path"`)) || bytes.HasPrefix(line, []byte(`{ "Encoded-Path"`)) {
				if err := m.add(line); err != nil {
					return nil, fmt.Errorf("%w: line %d: %v", errManifest, n, err)
				}
			}
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: no Manifest-Checksum line (truncated?)", errManifest)
		}
		if err != nil {
			return nil, err
		}
	}
}

func (m *manifest) add(line []byte) error {
	body := bytes.TrimSuffix(bytes.TrimRight(line, "\r\n"), []byte(","))
	var e entry
	if err := json.Unmarshal(body, &e); err != nil {
		return err
	}
	p := e.Path
	if e.EncodedPath != "" {
		b, err := hex.DecodeString(e.EncodedPath)
		if err != nil {
			return fmt.Errorf("Encoded-Path %q: %v", e.EncodedPath, err)
		}
		p = string(b)
	}
	if _, dup := m.byPath[p]; dup {
		return fmt.Errorf("file %q is listed twice", p)
	}
	alg := strings.ToUpper(e.Algorithm)
	if _, err := newFileHash(alg); err != nil {
		return err
	}
	m.byPath[p] = int32(len(m.entries))
	m.entries = append(m.entries, manifestFile{path: p, size: e.Size, algorithm: alg, checksum: strings.ToLower(e.Checksum)})
	return nil
}

// lookup returns the entry of a manifest path, or nil.
func (m *manifest) lookup(p string) *manifestFile {
	i, ok := m.byPath[p]
	if !ok {
		return nil
	}
	return &m.entries[i]
}

// unseen returns the paths listed but found in no part.
func (m *manifest) unseen() []string {
	var out []string
	for i := range m.entries {
		if !m.entries[i].seen.Load() {
			out = append(out, m.entries[i].path)
		}
	}
	return out
}

// fileHash computes a manifest checksum as PostgreSQL prints it.
type fileHash interface {
	io.Writer
	hex() string
}

type stdHash struct{ hash.Hash }

func (h stdHash) hex() string { return hex.EncodeToString(h.Sum(nil)) }

// crcHash is CRC-32C, printed as the hex of the 32-bit value in
// little-endian order (pg_checksum_final copies the integer's memory).
type crcHash struct{ sum uint32 }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (h *crcHash) Write(p []byte) (int, error) {
	h.sum = crc32.Update(h.sum, castagnoli, p)
	return len(p), nil
}

func (h *crcHash) hex() string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], h.sum)
	return hex.EncodeToString(b[:])
}

type noHash struct{}

func (noHash) Write(p []byte) (int, error) { return len(p), nil }
func (noHash) hex() string                 { return "" }

func newFileHash(algorithm string) (fileHash, error) {
	switch algorithm {
	case "", "NONE":
		return noHash{}, nil
	case "CRC32C":
		return &crcHash{}, nil
	case "SHA224":
		return stdHash{sha256.New224()}, nil
	case "SHA256":
		return stdHash{sha256.New()}, nil
	case "SHA384":
		return stdHash{sha512.New384()}, nil
	case "SHA512":
		return stdHash{sha512.New()}, nil
	}
	return nil, fmt.Errorf("unknown checksum algorithm %q", algorithm)
}
