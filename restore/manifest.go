package restore

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
	"hash/crc32"
	"io"
	"strings"
)

// patchManifest copies a PostgreSQL backup_manifest from src to dst with
// the entry of file name describing content instead, and the final
// Manifest-Checksum recomputed. It relies on the layout PostgreSQL writes
// and pg_verifybackup checks: one file entry per line, and the checksum
// alone on the last line, covering every byte before that line.
func patchManifest(dst io.Writer, src io.Reader, name string, content []byte) error {
	return rewriteManifest(dst, src, func(line []byte) ([]byte, error) { return patchEntry(line, name, content) })
}

// rewriteManifest copies a backup_manifest with every line passed through
// fix, and the Manifest-Checksum recomputed.
func rewriteManifest(dst io.Writer, src io.Reader, fix func(line []byte) ([]byte, error)) error {
	in := bufio.NewReaderSize(src, 64<<10)
	out := bufio.NewWriterSize(dst, 64<<10)
	sum := sha256.New()
	w := io.MultiWriter(out, sum)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if bytes.HasPrefix(line, []byte(`"Manifest-Checksum"`)) {
				if _, err := fmt.Fprintf(out, "\"Manifest-Checksum\": \"%x\"}\n", sum.Sum(nil)); err != nil {
					return err
				}
				return out.Flush()
			}
			var ferr error
			if line, ferr = fix(line); ferr != nil {
				return ferr
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return errors.New("no Manifest-Checksum line: not a PostgreSQL backup_manifest")
		}
		if err != nil {
			return err
		}
	}
}

// manifestEntry is one line of the Files array, with PostgreSQL's keys.
type manifestEntry struct {
	Path         string `json:"Path"`
	Size         int64  `json:"Size"`
	LastModified string `json:"Last-Modified"`
	Algorithm    string `json:"Checksum-Algorithm"`
	Checksum     string `json:"Checksum"`
}

// patchEntry returns line unchanged unless it is the entry of name, which
// it renders again as PostgreSQL does, with content's size and checksum.
func patchEntry(line []byte, name string, content []byte) ([]byte, error) {
	quoted, _ := json.Marshal(name)
	if !bytes.HasPrefix(line, []byte(`{ "Path": `+string(quoted)+`,`)) {
		return line, nil
	}
	body := bytes.TrimRight(line, "\r\n")
	comma := bytes.HasSuffix(body, []byte(","))
	var e manifestEntry
	if err := json.Unmarshal(bytes.TrimSuffix(body, []byte(",")), &e); err != nil {
		return nil, fmt.Errorf("backup_manifest entry of %s: %w", name, err)
	}
	e.Size = int64(len(content))
	sum, err := fileChecksum(e.Algorithm, content)
	if err != nil {
		return nil, err
	}
	e.Checksum = sum
	var b strings.Builder
	fmt.Fprintf(&b, `{ "Path": %s, "Size": %d, "Last-Modified": %q`, quoted, e.Size, e.LastModified)
	if e.Algorithm != "" && !strings.EqualFold(e.Algorithm, "NONE") {
		fmt.Fprintf(&b, `, "Checksum-Algorithm": %q, "Checksum": %q`, e.Algorithm, e.Checksum)
	}
	b.WriteString(" }")
	if comma {
		b.WriteString(",")
	}
	b.WriteString("\n")
	return []byte(b.String()), nil
}

// fileChecksum computes a manifest file checksum as PostgreSQL writes it:
// the hex of the digest's bytes, which for CRC32C is the 32-bit value in
// little-endian order (pg_checksum_final copies the integer's memory).
func fileChecksum(algorithm string, content []byte) (string, error) {
	switch strings.ToUpper(algorithm) {
	case "", "NONE":
		return "", nil
	case "CRC32C":
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], crc32.Checksum(content, crc32.MakeTable(crc32.Castagnoli)))
		return hex.EncodeToString(b[:]), nil
	case "SHA224":
		s := sha256.Sum224(content)
		return hex.EncodeToString(s[:]), nil
	case "SHA256":
		s := sha256.Sum256(content)
		return hex.EncodeToString(s[:]), nil
	case "SHA384":
		s := sha512.Sum384(content)
		return hex.EncodeToString(s[:]), nil
	case "SHA512":
		s := sha512.Sum512(content)
		return hex.EncodeToString(s[:]), nil
	}
	return "", fmt.Errorf("backup_manifest: unknown checksum algorithm %q", algorithm)
}
