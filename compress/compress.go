package compress

import (
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codec compresses and decompresses streams. Writers must be closed to flush.
type Codec interface {
	// Name is what --compression takes: zstd, lz4, gzip, snappy or none.
	Name() string
	// Ext is the object-name extension, without the dot; "" for none.
	Ext() string
	// NewWriter compresses into w. level 0 means the codec's default.
	NewWriter(w io.Writer, level int) (io.WriteCloser, error)
	// NewReader decompresses r.
	NewReader(r io.Reader) (io.ReadCloser, error)
}

// Default is the codec used when none is asked for.
const Default = "zstd"

// codecs is read-only after package initialisation.
var codecs = []Codec{zstdCodec{}, lz4Codec{}, gzipCodec{}, snappyCodec{}, noneCodec{}}

// Names lists the codec names, for help texts.
func Names() []string {
	n := make([]string, len(codecs))
	for i, c := range codecs {
		n[i] = c.Name()
	}
	return n
}

// Lookup returns the codec called name.
func Lookup(name string) (Codec, error) {
	for _, c := range codecs {
		if c.Name() == strings.ToLower(name) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("unknown compression %q: use one of %s", name, strings.Join(Names(), ", "))
}

// ByExt returns the codec whose extension is ext ("" for none).
func ByExt(ext string) (Codec, error) {
	for _, c := range codecs {
		if c.Ext() == ext {
			return c, nil
		}
	}
	return nil, fmt.Errorf("unknown compression extension %q", ext)
}

// SplitKey splits an object key into the name it was stored under and the
// codec its extension names. A key with no known codec extension is taken as
// uncompressed.
func SplitKey(key string) (base string, c Codec) {
	if i := strings.LastIndexByte(key, '.'); i >= 0 && !strings.ContainsRune(key[i:], '/') {
		if c, err := ByExt(key[i+1:]); err == nil && c.Ext() != "" {
			return key[:i], c
		}
	}
	return key, noneCodec{}
}

type zstdCodec struct{}

func (zstdCodec) Name() string { return "zstd" }
func (zstdCodec) Ext() string  { return "zst" }
func (zstdCodec) NewWriter(w io.Writer, level int) (io.WriteCloser, error) {
	// One encoder goroutine per stream: gbc runs many streams at once
	// (--jobs), so parallelism comes from the pipeline, not from inside a
	// stream, and memory stays proportional to --jobs. WAL segments are
	// written with other options (ForWAL).
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel(level)), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(4<<20))
}

// zstdLevel maps a codec level (0: the fast default) to zstd's.
func zstdLevel(level int) zstd.EncoderLevel {
	if level > 0 {
		return zstd.EncoderLevelFromZstd(level)
	}
	return zstd.SpeedFastest
}
func (zstdCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}

type lz4Codec struct{}

func (lz4Codec) Name() string { return "lz4" }
func (lz4Codec) Ext() string  { return "lz4" }
func (lz4Codec) NewWriter(w io.Writer, level int) (io.WriteCloser, error) {
	zw := lz4.NewWriter(w)
	opts := []lz4.Option{lz4.ConcurrencyOption(1)}
	if level > 0 {
		opts = append(opts, lz4.CompressionLevelOption(lz4.CompressionLevel(1<<(8+level))))
	}
	if err := zw.Apply(opts...); err != nil {
		return nil, fmt.Errorf("lz4 level %d: %w", level, err)
	}
	return zw, nil
}
func (lz4Codec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return io.NopCloser(lz4.NewReader(r)), nil
}

type gzipCodec struct{}

func (gzipCodec) Name() string { return "gzip" }
func (gzipCodec) Ext() string  { return "gz" }
func (gzipCodec) NewWriter(w io.Writer, level int) (io.WriteCloser, error) {
	if level == 0 {
		level = gzip.DefaultCompression
	}
	return gzip.NewWriterLevel(w, level)
}
func (gzipCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return gzip.NewReader(r)
}

type snappyCodec struct{}

func (snappyCodec) Name() string { return "snappy" }
func (snappyCodec) Ext() string  { return "sz" }
func (snappyCodec) NewWriter(w io.Writer, _ int) (io.WriteCloser, error) {
	return snappy.NewBufferedWriter(w), nil
}
func (snappyCodec) NewReader(r io.Reader) (io.ReadCloser, error) {
	return io.NopCloser(snappy.NewReader(r)), nil
}

type noneCodec struct{}

func (noneCodec) Name() string { return "none" }
func (noneCodec) Ext() string  { return "" }
func (noneCodec) NewWriter(w io.Writer, _ int) (io.WriteCloser, error) {
	return &nopWriteCloser{w}, nil
}
func (noneCodec) NewReader(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil }

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Reset makes it a resetter like every other codec's writer.
func (n *nopWriteCloser) Reset(w io.Writer) { n.Writer = w }
