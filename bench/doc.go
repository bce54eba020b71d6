// Package bench measures gbc side by side with barman-cloud and pgBackRest
// on one machine and one S3 server, in one run (`make bench`).
//
// It owns everything a run needs and nothing else: a working directory, a
// MinIO server on TLS (pgBackRest refuses plain HTTP for S3), the
// PostgreSQL 15 clusters the scenarios need (run as an unprivileged user
// when started as root), the tools' command lines, the measurement of each
// command (wall time, peak RSS of the largest process and of the whole
// process group), and the report (Markdown and JSON). Every server and
// cluster it starts is stopped again, on failure and on SIGINT too.
//
// The scenarios (issue 5):
//
//  1. wal-archive: a live cluster generating WAL with pgbench, each tool as
//     archive_command; segments archived per second and the archiver's
//     lag at the end. wal-archive-call: the latency of one archive command
//     on one 16 MiB segment, median over several calls.
//  2. backup: a base backup of a pgbench database.
//  3. restore: a restore of that backup into an empty directory.
//  4. wal-replay: a recovery that fetches many segments through
//     restore_command, timed to the end of recovery (promotion).
//  5. many-files: a base backup of a cluster with very many small files,
//     whose peak RSS is compared with scenario 2.
//
// The tools never see the harness's own environment: each command gets a
// small fixed one (PATH, HOME, the S3 credentials and CA bundle), so that a
// developer's ~/.aws or PG* variables cannot change a result.
package bench
