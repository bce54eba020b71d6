// Package snapshot takes, checks and deletes provider disk snapshots (AWS
// EBS, GCP persistent disks, Azure managed disks) for snapshot backups.
//
// Provider is the one small interface each cloud implements on its
// official SDK (AWS, GCP, Azure): list the disks attached to an instance,
// snapshot one disk and wait until it is complete, delete a snapshot.
// Everything else is written once on top of it:
//
//   - Plan finds the listed disks attached to the instance and mounted on
//     this machine (Host: mountinfo, sysfs and udev links, LocalHost reads
//     the real ones) and checks that PGDATA and every tablespace lie on
//     them;
//   - Take snapshots the planned disks in parallel;
//   - DeleteAll deletes a backup record's snapshots, tolerating those
//     already gone;
//   - CheckRecovery checks that a recovery instance has disks made from a
//     backup's snapshots mounted where the record says, and WriteLabelFiles
//     writes the backup_label and tablespace_map a recovery needs.
//
// The backup flow itself (pg_backup_start/stop, the record) is
// backup.RunSnapshot. Package snapshottest holds local fakes of the three
// providers' APIs and of a machine's mount tree, for tests.
package snapshot
