// Package retention decides which backups and WAL are obsolete under a
// retention policy (REDUNDANCY n, RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS),
// honouring keep annotations and minimum redundancy. The decisions are pure
// functions of the catalog and the WAL listing; executing them is separate.
package retention
