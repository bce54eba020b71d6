// Package verify proves that a server's backups restore: Check reads every
// stored object of its backups and lists its WAL archive, and Drill
// restores a backup, starts PostgreSQL on it, runs checks and measures the
// recovery time. Both report problems as values naming the object and
// what it means for a restore; neither prints.
//
// # What Check reads
//
// For each DONE backup: every part (it exists, has the size and SHA-256
// the record gives, decompresses, is a valid tar stream of the recorded
// size and file count, and every file in it has the size and checksum its
// backup_manifest lists; an incremental backup's INCREMENTAL.<name> files
// are checked as stored, since that is what its manifest lists), the
// backup_manifest object itself (size, SHA-256, Manifest-Checksum) and
// the block map. Every file the manifest lists must be in some part, and
// every file of a part in the manifest. An incremental backup whose chain
// lacks a member, or has a damaged one, cannot be restored either.
//
// For the WAL: one listing of the archive, then every segment from each
// backup's begin WAL to its end WAL must be there, and every segment from
// the oldest backup's begin to the newest archived segment, on the
// timeline PostgreSQL reads each from (recovery_target_timeline latest
// follows the newest timeline's history file), and every history file
// from timeline 2 to the newest one must be there and parse: PostgreSQL
// looks for the next timeline's history file one number at a time, so one
// missing file hides every later timeline. WAL objects are checked for
// presence, not downloaded; only history files are.
//
// # Memory and parallelism
//
// Backups are checked one after the other, and the parts of one backup
// --jobs at a time, each through a 1 MiB read buffer, so memory does not
// grow with the size of the database. What grows with the number of
// files is the index of one backup's manifest (path, size, checksum:
// about 100 bytes per file, 20 MiB for 200,000 files); the WAL check
// keeps 16 bytes per archived segment (1.6 MB for 100,000).
//
// # Drills
//
// Drill restores with restore.Restore into a scratch directory
// (tablespaces relocated into it, so that nothing outside it is written),
// starts the server with package pgrun on a unix socket only, with
// archiving off, its own pg_hba.conf (trust, local socket only), the log
// on stderr in English, and restore_command through the store, waits for
// the end of recovery, runs the checks, and stops the server and removes
// the scratch directory whatever happened, also when its context is
// cancelled (gbc-verify cancels it on SIGINT and SIGTERM). SIGKILL
// cannot be caught: the postmaster then gets SIGQUIT from the kernel
// (pgrun sets a parent-death signal), so no server keeps running, but the
// scratch directory stays behind.
package verify
