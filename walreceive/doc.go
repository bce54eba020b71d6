// Package walreceive streams WAL from PostgreSQL into the store over the
// replication protocol, as it is written, on a physical replication slot:
// gbc-wal-receive's engine. With archive_command alone, a server that dies
// loses its whole current segment (minutes of commits on a quiet server);
// the receiver loses at most --flush-interval of them.
//
// # How it works
//
// One session is: IDENTIFY_SYSTEM (the system identifier, which must stay
// the same for the life of the process and match what the store's
// receiver status says), READ_REPLICATION_SLOT (created with
// CREATE_REPLICATION_SLOT ... PHYSICAL RESERVE_WAL when --create-slot is
// given), then START_REPLICATION SLOT ... PHYSICAL from the start of the
// segment that holds the slot's restart_lsn, on the slot's timeline.
//
// The bytes of the segment in progress go into a local spool file of the
// full segment size (a sparse file: the part not yet received reads as
// zeros, as in the .partial files pg_receivewal and a promotion leave).
// Every FlushInterval, and whenever FlushSize bytes have arrived since the
// last store, that file is stored as SEGMENT.partial, replacing the one
// before (wal.StorePartial; a Put is atomic). A completed segment is stored
// by wal.Archive, the very code gbc-wal-archive runs, from the spool file
// named after it: same codec, level, checksum and metadata, so the object
// is byte-identical to what archive_command stores, and a receiver and an
// archive_command can run side by side (a duplicate push of identical
// content succeeds, whichever comes second). The segment's stale .partial
// is then deleted.
//
// At the end of a timeline (the server was promoted, or a cascading
// standby followed a new primary) the server leaves COPY mode and names the
// next timeline and its switch point: the last segment of the old timeline
// is stored as its final .partial, the new timeline's history file is
// fetched with TIMELINE_HISTORY and stored like any archived .history file,
// and streaming goes on on the new timeline from the start of the segment
// that holds the switch point (the server reads it from the new
// timeline's file, which holds the old timeline's WAL up to the switch).
//
// # Why nothing is lost
//
// The slot is confirmed only up to what is durably stored. A standby
// status update's flush position moves a physical slot's restart_lsn, and
// the server keeps every segment from restart_lsn's on. The receiver sends
// as flush position only the end of what a completed Put holds (a complete
// segment, or the data of a .partial), never what is merely in the spool
// file. So:
//
//   - kill -9 of the receiver: the spool file is lost, but everything
//     after the last confirmed position is still in the server's pg_wal,
//     kept by the slot; the next run restarts at the start of the segment
//     of restart_lsn and rebuilds the segment from the server's copy;
//   - a server restart or a network loss: the session ends, the receiver
//     stores what it has as .partial (when the store is reachable),
//     reconnects with backoff and restarts from the slot as above;
//   - the store down: the Put fails after its retries, the session ends,
//     nothing is confirmed, and the slot holds the WAL on the server (see
//     max_slot_wal_keep_size: a slot that never moves fills pg_wal).
//
// The flush position is never sent lower than the slot's restart_lsn at
// connection (the server sets restart_lsn to whatever flush position it is
// told, backwards too).
//
// # Where it starts, and why
//
// From the slot, not from the store's end: restart_lsn is by construction
// no later than what is durably stored, and it is what the server still
// has. Starting at the store's end instead would ask for WAL the server may
// no longer hold (a store that runs ahead of the slot, because
// archive_command also archives there) or skip WAL (a store restored from
// elsewhere). The store is used for one thing: complete segments it already
// holds after the slot's segment, on the server's current timeline, are
// skipped (and confirmed), so that a receiver started beside an
// archive_command does not stream again what is already stored.
//
// # End-of-backup and restore
//
// pg_backup_stop (and BASE_BACKUP) switch to a new segment, so the
// segment holding a backup's end is complete at once and reaches the store
// as an ordinary WAL object within moments: gbc-backup's wait for it and
// gbc-restore's WAL check need nothing special. gbc-wal-restore serves a
// segment that the store holds only as .partial (its --no-partial option
// turns that off), so a restore to the end replays what the receiver had
// stored when the server died.
package walreceive
