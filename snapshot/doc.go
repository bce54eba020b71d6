// Package snapshot takes, checks and deletes provider disk snapshots (AWS
// EBS, GCP persistent disks, Azure managed disks) behind one small
// interface, for snapshot backups.
package snapshot
