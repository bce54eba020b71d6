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
//   - Only DONE backups without a keep annotation are subject to a policy,
//     and only they count toward REDUNDANCY and minimum redundancy.
//   - Kept backups, live STARTED backups (the in-progress marker),
//     unreadable records, records of an unknown status and parents of
//     remaining incremental backups are never deleted.
//   - FAILED backups and prefixes without a record are deleted once older
//     than --orphan-age. A STARTED backup is dead, and deleted, once its
//     heartbeat has stopped for a few of the intervals its record declares
//     (catalog.Backup.SilenceLimit: 15 minutes for gbc-backup's 5), or
//     after --orphan-age for a record without a heartbeat interval.
//   - WAL is obsolete before the lowest begin WAL (by position, on every
//     timeline) of the remaining DONE backups not kept standalone and the
//     live STARTED ones, except history files and the begin..end range of
//     standalone-kept backups; a .backup file goes with its backup. When
//     nothing needs WAL at all, the floor is the newest begin WAL of the
//     deleted and standalone backups; when the catalog is empty, or a
//     record cannot be understood, no WAL is deleted.
//
// The WALFilter holds a few values per backup and decides one listed object
// at a time, so a listing of any size streams through it in bounded memory.
package retention
