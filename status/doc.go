// Package status answers "is this server protected right now?" from the
// store alone: the last DONE backup and its age, the newest archived WAL
// segment and its age (the RPO if the host died now), the WAL gaps since
// the oldest backup, the last restore drill, and a state (ok, warning,
// critical) judged against two limits.
//
// The work is split as retention splits it: Gather and Fleet read the
// store (scan.go, wal.go) into Facts; Decide (decide.go) is a pure
// function of Facts, Limits and a time, with stable reason strings, so
// that every rule is tested without a store or a clock.
//
// # Cost
//
// A server costs a fixed number of requests plus one listing per WAL
// directory (4 GiB of WAL) from the oldest backup's begin WAL on:
//
//   - the backups: one LIST of base/ and the summary cache (see
//     catalog.Summaries);
//   - the WAL: one level listing of wals/ (history files and directory
//     names, see cloud.ListLevel), one GET of the newest timeline's history
//     file, then a LIST of each WAL directory that holds segments at or
//     after the oldest backup's begin WAL on the timelines recovery
//     follows; WAL older than every backup is never listed, nor are
//     dead-end timelines;
//   - the last drill: one LIST of drills/ and one GET.
//
// Servers are scanned in parallel (Options.Jobs), and the servers of a
// store are found with one level listing of its root. The measured cost
// is in the README (100 servers with 1,000 WAL segments each).
package status
