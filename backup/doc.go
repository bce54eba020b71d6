// Package backup is the base backup engine: it reads PGDATA and the
// tablespaces (from disk, or streamed over the replication protocol), tars,
// compresses and uploads them as parts in a parallel, memory-bounded
// pipeline, and commits the catalog record last.
//
// # What a backup stores
//
// Under Layout.BackupRoot(id):
//
//   - data/<n>.tar.<ext>, n from 1: the data directory, as pg_basebackup's
//     tar format has it (paths relative to the data directory, the same
//     files skipped: see filter.go). Every directory is an entry of its
//     own, so that empty ones (pg_wal, pg_replslot...) come back with their
//     permissions. The last data part holds backup_label, tablespace_map
//     (when there are tablespaces) and global/pg_control, which is copied
//     last. pg_tblspc is an empty directory: tablespace_map says where each
//     tablespace goes, as with BASE_BACKUP's TABLESPACE_MAP.
//   - tblspc/<oid>/<n>.tar.<ext>: each tablespace, with paths relative to
//     its location (PG_<major>_<catversion>/...), as in BASE_BACKUP's
//     <oid>.tar.
//   - backup_manifest.<ext>: a PostgreSQL backup_manifest listing every
//     file with its CRC-32C (paths of tablespace files under
//     pg_tblspc/<oid>/), so that pg_verifybackup checks a restored copy.
//     For --method stream it is the server's own.
//   - backup.json: the record (package catalog), written last.
//
// Each part is a plain tar stream of at most --max-archive-size bytes
// (before compression; a single larger file gets a part of its own), in
// the codec named by its extension, made of independently compressed
// frames: any reader of the codec reads it as one stream. Entries never
// span parts, and a part may hold files of directories whose entries are
// in an earlier part: a reader creates parent directories as needed. The
// record gives each part's size, stored size, SHA-256 of the stored bytes
// and file count.
package backup
