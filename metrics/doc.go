// Package metrics writes Prometheus text-format files for node_exporter's
// textfile collector: every sample a gbc_ metric with a server label, with
// HELP and TYPE lines, the file replaced atomically so that the collector
// never reads half of one.
//
// A command that offers --metrics-file builds its samples and calls
//
//	metrics.File{Path: path}.Merge(server, samples)
//
// which replaces that server's samples in the file and keeps the other
// servers' (several clusters on one host can share one file per command),
// or File.Write to replace the whole file (gbc-status's fleet view, which
// knows every server).
//
// # One file per command
//
// Give each command its own file (gbc-backup.prom, gbc-wal-archive.prom,
// gbc-status.prom, ...). Merge replaces every sample of a server, so two
// commands merging into one file would erase each other's metrics. Within
// one file, concurrent writers are safe: Write and Merge hold an exclusive
// flock(2) on the file's directory while they read, write and rename, so
// two processes never lose each other's servers.
//
// The text format is written (and, for Merge, read back) by this package
// itself, and its tests parse every file with the Prometheus project's own
// parser (expfmt). The libraries are not linked: client_golang's
// WriteToTextfile renames without fsync, and its package registers the
// process and Go collectors at init; its encoder, expfmt, brings protobuf
// and the client model, about 1 ms of initialisation at every start, which
// the WAL commands (archive_command, restore_command) must not pay.
package metrics
