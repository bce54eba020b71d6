// Package retention decides which backups and WAL are obsolete under a
// retention policy (REDUNDANCY n, RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS),
// honouring keep annotations and minimum redundancy. The decisions are pure
// functions of the catalog and the WAL listing; executing them is separate
// (package retention/prune).
//
// Decide takes the catalog (one Entry per base/<id>/ prefix), the policy or
// the one backup asked for, the minimum redundancy, --orphan-age and the
// time, and returns a Plan: the prefixes to delete, the ones that stay and
// why, and a WALFilter. The rules, conservative wherever the catalog leaves
// doubt:
//
//   - A policy counts and judges DONE full backups without a keep
//     annotation; only they count toward REDUNDANCY, end a RECOVERY
//     WINDOW, and count toward minimum redundancy. Every incremental or
//     differential backup shares the fate of the full backup of its chain
//     (see chain.go); one whose chain is broken (a parent missing or
//     FAILED) cannot be restored, and a policy deletes it.
//   - Kept backups, the backups they are built on and those built on
//     them, live STARTED backups (the in-progress marker), unreadable
//     records, records of an unknown status and parents of remaining
//     incremental backups are never deleted.
//   - One backup is deleted on request only when no backup is built on
//     it, or with its dependents (Input.WithDependents); each backup is
//     deleted after every backup built on it.
//   - FAILED backups and prefixes without a record are deleted once older
//     than --orphan-age. A STARTED backup is dead, and deleted, once its
//     heartbeat has stopped for a few of the intervals its record declares
//     (catalog.Backup.SilenceLimit: 15 minutes for gbc-backup's 5), or
//     after --orphan-age for a record without a heartbeat interval.
//   - WAL is obsolete before the lowest begin WAL (by position, on every
//     timeline) of the remaining DONE backups not kept standalone and the
//     live STARTED ones, except history files and the begin..end range of
//     standalone-kept backups (and of those built on them); a backup that
//     stays only because a kept one is built on it needs no WAL; a .backup file goes with its backup. When
//     nothing needs WAL at all, the floor is the newest begin WAL of the
//     deleted and standalone backups; when the catalog is empty, or a
//     record cannot be understood, no WAL is deleted.
//
// The WALFilter holds a few values per backup and decides one listed object
// at a time, so a listing of any size streams through it in bounded memory.
package retention
