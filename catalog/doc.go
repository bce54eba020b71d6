// Package catalog owns the store layout and the JSON catalog: the backup
// record (backup.json, the commit point of every backup), the key names of
// WAL objects and backup parts, and finding, listing and locking backups.
//
// # Life of a backup record
//
// gbc-backup writes the record of a backup three or more times, always as
// one whole-object Put at Layout.RecordKey (Save), so a reader sees one
// complete version or another:
//
//  1. STARTED, before PostgreSQL is asked to start the backup, with Create
//     (a conditional Put, so two processes cannot take the same id). Its
//     BeginLSN and BeginWAL are a conservative lower bound of the WAL the
//     backup will need (the redo point of the last checkpoint, or the
//     server's WAL position for --method stream), and are rewritten with the
//     exact values as soon as the server reports the backup's start.
//     While the backup runs, the STARTED record is rewritten every
//     HeartbeatInterval seconds (5 minutes) with a fresh Heartbeat.
//  2. DONE, last, after every part and the backup_manifest are stored and
//     the end-of-backup WAL is archived. Only DONE backups exist for list,
//     restore and retention.
//  3. FAILED, instead of DONE, with Error set, when gbc-backup fails and can
//     still write to the store.
//
// # The in-progress marker
//
// A STARTED record is the marker that a backup is in progress. Retention
// must honour it: WAL from a STARTED record's BeginWAL onwards (on its
// Timeline and later ones) must not be deleted while the record is live,
// because the backup being taken will need it. A STARTED record is live
// while its last sign of life (the newest of Heartbeat, BeginTime and the
// objects under its prefix) is younger than its SilenceLimit: three of the
// heartbeat intervals it declares (15 minutes), or --orphan-age for a
// record without HeartbeatInterval (written by a release whose backups do
// not stop on a lost heartbeat). An older one was left by a process that
// died (killed, machine lost) and is treated like a FAILED record: its WAL
// is no longer protected, and the record and its parts may be cleaned up.
//
// The limit is safe for a live backup because its writer keeps a promise
// (see HeartbeatGiveUp): it retries a failed refresh sooner than its
// interval, and when none has succeeded for two intervals it stops
// refreshing, fails the backup, and never marks it DONE; the third
// interval absorbs clock skew and a refresh in flight.
//
// A FAILED or orphaned STARTED backup's parts are garbage: nothing reads
// them, because nothing reads parts of a backup without a DONE record.
package catalog
