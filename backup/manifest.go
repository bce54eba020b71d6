package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gbc-backup/gbc/cloud"
	"github.com/gbc-backup/gbc/compress"
	"github.com/gbc-backup/gbc/pg"
)

// castagnoli is CRC-32C's table, the manifest's checksum. It is computed
// once and only read; crc32 uses the CPU's CRC instruction with it.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// manifestWriter writes a backup_manifest in PostgreSQL's format
// (src/backend/backup/backup_manifest.c), byte for byte as the server would,
// so that pg_verifybackup checks a restored gbc backup like one taken by
// pg_basebackup.
//
// The manifest has one line per file: for 200,000 files it is tens of MB.
// It is spilled to a temporary file as the backup goes, instead of being
// held in memory, and compressed into a second one at the end, once the
// pipeline's buffers are free: a compressor's window kept for the whole
// backup would cost about 10 MiB of RSS. The upload reads that second file,
// a seekable source, which the store may retry.
type manifestWriter struct {
	f     *os.File      // the manifest text
	text  hash.Hash     // SHA-256 of the manifest text, its Manifest-Checksum
	w     *bufio.Writer // the text, into f and text
	first bool
	files int64
	codec compress.Codec
	level int
}

// WALRange is one WAL-Ranges entry: the WAL, on one timeline, needed to
// make the backup consistent.
type WALRange struct {
	Timeline uint32
	Start    pg.LSN
	End      pg.LSN
}

// newManifestWriter starts a manifest in a temporary file. PostgreSQL 17
// writes version 2, which adds the system identifier; older servers write
// version 1, the only one their pg_verifybackup reads.
func newManifestWriter(codec compress.Codec, level, pgVersion int, systemID string) (*manifestWriter, error) {
	f, err := tempFile("gbc-backup-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("backup_manifest: %w", err)
	}
	m := &manifestWriter{f: f, text: sha256.New(), first: true, codec: codec, level: level}
	m.w = bufio.NewWriterSize(io.MultiWriter(f, m.text), 64<<10)
	if pgVersion >= 170000 {
		fmt.Fprintf(m.w, "{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": %s,\n\"Files\": [", systemID)
	} else {
		m.w.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [")
	}
	return m, nil
}

// tempFile creates a temporary file and unlinks it at once: it lives as
// long as its descriptor, and a crash leaves nothing behind.
func tempFile(pattern string) (*os.File, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return nil, fmt.Errorf("temporary file (set TMPDIR to a writable directory): %w", err)
	}
	_ = os.Remove(f.Name())
	return f, nil
}

// Close releases the temporary file.
func (m *manifestWriter) Close() error { return m.f.Close() }

// Files is the number of files added.
func (m *manifestWriter) Files() int64 { return m.files }

// crcBytes is a CRC-32C as PostgreSQL prints it in a manifest: the hex of
// the checksum's bytes in the machine's order (pg_checksum_final copies the
// uint32). gbc runs on little-endian machines, as do the servers it reads.
func crcBytes(sum uint32) string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], sum)
	return hex.EncodeToString(b[:])
}

// AddFile adds one file's line (AddFileToBackupManifest).
func (m *manifestWriter) AddFile(path string, size int64, mtime time.Time, crc uint32) {
	if m.first {
		m.w.WriteByte('\n')
		m.first = false
	} else {
		m.w.WriteString(",\n")
	}
	if utf8.ValidString(path) && !containsNUL(path) {
		m.w.WriteString(`{ "Path": `)
		writeJSONString(m.w, path)
		m.w.WriteString(", ")
	} else {
		m.w.WriteString(`{ "Encoded-Path": "`)
		m.w.WriteString(hex.EncodeToString([]byte(path)))
		m.w.WriteString(`", `)
	}
	m.w.WriteString(`"Size": `)
	m.w.WriteString(strconv.FormatInt(size, 10))
	m.w.WriteString(`, "Last-Modified": "`)
	m.w.WriteString(mtime.UTC().Format("2006-01-02 15:04:05"))
	m.w.WriteString(` GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "`)
	m.w.WriteString(crcBytes(crc))
	m.w.WriteString(`" }`)
	m.files++
}

func containsNUL(s string) bool { return bytes.IndexByte([]byte(s), 0) >= 0 }

// writeJSONString quotes s as PostgreSQL's escape_json does. Go's
// encoding/json would escape <, > and & too, which changes the bytes the
// manifest checksum covers.
func writeJSONString(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\b':
			w.WriteString(`\b`)
		case '\f':
			w.WriteString(`\f`)
		case '\n':
			w.WriteString(`\n`)
		case '\r':
			w.WriteString(`\r`)
		case '\t':
			w.WriteString(`\t`)
		case '"':
			w.WriteString(`\"`)
		case '\\':
			w.WriteString(`\\`)
		default:
			if c < ' ' {
				fmt.Fprintf(w, `\u%04x`, c)
			} else {
				w.WriteByte(c)
			}
		}
	}
	w.WriteByte('"')
}

// Finish ends the file list, writes the WAL ranges (newest timeline first,
// as AddWALInfoToBackupManifest does) and the manifest's own checksum, a
// SHA-256 of every byte before its line.
func (m *manifestWriter) Finish(ranges []WALRange) error {
	m.w.WriteString("\n],\n\"WAL-Ranges\": [\n")
	for i, r := range ranges {
		if i > 0 {
			m.w.WriteString(",\n")
		}
		fmt.Fprintf(m.w, `{ "Timeline": %d, "Start-LSN": "%s", "End-LSN": "%s" }`, r.Timeline, r.Start, r.End)
	}
	m.w.WriteString("\n],\n")
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("backup_manifest: %w", err)
	}
	sum := hex.EncodeToString(m.text.Sum(nil))
	if _, err := io.WriteString(m.f, "\"Manifest-Checksum\": \""+sum+"\"}\n"); err != nil {
		return fmt.Errorf("backup_manifest: %w", err)
	}
	return nil
}

// Upload compresses the finished manifest and stores it at key; it
// returns its stored size and SHA-256.
func (m *manifestWriter) Upload(ctx context.Context, s cloud.Store, key string) (int64, string, error) {
	if _, err := m.f.Seek(0, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("backup_manifest: %w", err)
	}
	n, sum, err := storeSpooled(ctx, s, key, m.f, m.codec, m.level)
	if err != nil {
		return 0, "", fmt.Errorf("backup_manifest: %w", err)
	}
	return n, sum, nil
}

// storeSpooled compresses what r yields into a temporary file, then stores
// that at key: the source may be a stream that a failed upload could not
// replay (the server's manifest in a streamed backup), while the temporary
// file is seekable, so the store can retry.
func storeSpooled(ctx context.Context, s cloud.Store, key string, r io.Reader, codec compress.Codec, level int) (int64, string, error) {
	f, err := tempFile("gbc-backup-spool-*")
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	hw := &hashingWriter{w: f, h: sha256.New()}
	zw, err := codec.NewWriter(hw, level)
	if err != nil {
		return 0, "", err
	}
	if _, err := io.CopyBuffer(zw, struct{ io.Reader }{r}, make([]byte, 256<<10)); err != nil {
		return 0, "", err
	}
	if err := zw.Close(); err != nil {
		return 0, "", err
	}
	if err := s.Put(ctx, key, cloud.SectionBody(f, 0, hw.n), cloud.PutOptions{}); err != nil {
		return 0, "", fmt.Errorf("upload %s: %w", key, err)
	}
	return hw.n, hex.EncodeToString(hw.h.Sum(nil)), nil
}

type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
