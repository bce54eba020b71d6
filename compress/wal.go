package compress

import (
	"io"

	"github.com/klauspost/compress/zstd"
)

// ForWAL returns c tuned for WAL segments, which gbc-wal-archive compresses
// one at a time, each into its own object, while PostgreSQL waits: the same
// codec (name, extension, reader and levels), whose zstd writer differs
// from the one backups use in three ways, each measured on 16 MiB
// segments of pgbench WAL (issue 11):
//
//   - a 1 MiB window instead of 4 MiB: WAL repeats itself over a few
//     pages, not megabytes, so the stream is no larger (0.1%) and
//     compression is about 10% faster, with less memory to set up;
//   - no frame checksum: every WAL object carries the SHA-256 and size of
//     its content in its metadata, which restore verifies, so the XXH64
//     of the frame only cost time (about 10%);
//   - asynchronous compression: the writer compresses one block in the
//     background while the caller reads and hashes the next, so that a
//     segment's SHA-256 and its compression share the machine's cores
//     instead of taking turns on one.
//
// Objects written so are ordinary zstd frames: every reader (this
// package's, zstd(1)) reads them, and reads the frames older releases
// wrote, with a 4 MiB window and a checksum, as before. Other codecs are
// returned as they are.
func ForWAL(c Codec) Codec {
	if _, ok := c.(zstdCodec); ok {
		return zstdWALCodec{}
	}
	return c
}

// walWindow is the zstd window of WAL objects (see ForWAL).
const walWindow = 1 << 20

// walConcurrency is the number of blocks a WAL object's zstd writer
// compresses at once: one in the background, beside the caller's reading
// and hashing of the next (see ForWAL).
const walConcurrency = 2

// zstdWALCodec is zstd with the writer options of ForWAL.
type zstdWALCodec struct{ zstdCodec }

func (zstdWALCodec) NewWriter(w io.Writer, level int) (io.WriteCloser, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel(level)), zstd.WithEncoderConcurrency(walConcurrency),
		zstd.WithWindowSize(walWindow), zstd.WithEncoderCRC(false))
}
