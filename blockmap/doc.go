// Package blockmap owns the block map of a backup: for every relation file
// the backup holds, the hash of each 8 KiB block as a restore of the
// backup writes it. An incremental backup compares the blocks it reads
// with its parent's map and stores only those whose hash differs.
//
// # Why block hashes, not page LSNs
//
// WAL-G's delta backups keep a page whose LSN is below the parent's start.
// That trusts every page's LSN, and there are ways for a page to change
// without its LSN passing the parent's start: CREATE DATABASE ... STRATEGY
// FILE_COPY copies the template's files with their old LSNs (harmless for a
// new directory, wrong when a database is dropped and recreated under the
// same OID between two backups), pg_resetwal, a file restored or copied
// in by hand, or a new page that is still all zeros (LSN 0) after a
// truncation and re-extension, where the parent held data. pgBackRest's
// block incremental does not trust the LSN either: it compares block
// checksums with a map stored with the parent. gbc does the same, with
// XXH3-64 per block (tens of GB/s per core, so hashing costs far less
// than the compression of a full backup, and eight bytes per 8 KiB
// block, 1 MiB per GiB, for the map).
//
// What the hashes cannot see is a block that changed back to exactly its
// old bytes, which is harmless, or a 64-bit collision between a block and
// its own old content at the same position, about 2^-64 per changed
// block. Hint bits set without WAL (data checksums and wal_log_hints
// off) change a block's bytes, so such a block is stored again: the
// safe side. Unlogged relations are not backed up at all (only their init
// fork), as in a full backup. A relation truncated and re-extended is
// compared block by block with what the parent restores, whatever its
// LSNs say. A file that disappears is simply absent from the new
// backup's manifest, so a restore does not bring it back. A file that is
// new (a new database, FILE_COPY) has no entry in the parent's map and is
// stored whole.
//
// # Unchanged files are not read
//
// A file whose size and modification time are those the parent's map
// recorded, and whose modification time is at least MTimeMargin older
// than the parent's start, has not been written since the parent read it
// (every write sets the modification time to the current time, later than
// the parent's start): its blocks are the parent's, and it is not read at
// all. This is pgBackRest's default (it trusts timestamps unless --delta).
//
// # Format
//
// A map is one object per backup, compressed with the backup's codec:
// the magic "GBCBMAP1", then one record per file: the path (uvarint
// length and bytes, slash-separated and relative to the data directory as
// in backup_manifest), the size and the modification time in Unix
// nanoseconds (varints), the number of blocks (uvarint) and each block's
// hash (8 bytes, little-endian); and last an end record: a zero path
// length and the number of file records, so that a truncated map is
// refused rather than taken for a short one.
//
// # Memory
//
// Writing streams. Reading spools the map into a temporary file and keeps
// in memory only an index from a 64-bit hash of each path to its record's
// offset: about 40 bytes per relation file, 40 MiB for a million files,
// whatever the database's size; one file's hashes (at most 1 MiB, for a
// 1 GiB segment) are read when looked up.
package blockmap
