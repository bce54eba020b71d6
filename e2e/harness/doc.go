// Package harness starts the real servers gbc's end-to-end tests run
// against, on 127.0.0.1 with free ports, and cleans them up even when a
// test fails or the test binary dies:
//
//   - PostgreSQL (15 on CI, and 17 and 18 through PGOptions.Version):
//     StartPostgres, Cluster;
//   - MinIO for S3: StartMinIO / SharedMinIO, S3Server;
//   - Azurite for Azure Blob: StartAzurite / SharedAzurite, AzureServer;
//   - fake-gcs-server for GCS: StartFakeGCS / SharedFakeGCS, GCSServer;
//   - one fresh store per provider: Stores, NewStore, Store;
//   - the gbc commands: Bin, BinDir, RunGBC, Cluster.RunGBC, and
//     RunGBCWith / Cluster.RunGBCWith for a working directory, stdin, a
//     timeout, and the elapsed time and peak RSS in the Result.
//
// # Setup
//
// Every test package that uses the harness has, once:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
// (package e2e has it in main_test.go). Main stops the servers shared by
// the package's tests after the run, and kills everything on SIGINT.
//
// Server binaries come from PATH, then $GBC_TOOLS/bin, then
// $HOME/.cache/gbc-tools/bin, where scripts/test-deps.sh installs them
// (`make test` runs it and sets PATH). PostgreSQL comes from
// $GBC_PG_BINDIR, else `pg_config --bindir`, else PATH; a cluster of
// another major version (PGOptions.Version, e.g. 17 or 18) from
// $GBC_PG<major>_BINDIR, else the default installation when it is that
// major, else $GBC_TOOLS/postgresql-<major>/bin (scripts/test-deps.sh
// installs 17 and 18 there; when PGUser cannot read it, the harness runs
// a hard-linked copy). The gbc commands
// come from $GBC_BIN (set by `make test`), else the module's bin/ (`make
// build`). A missing binary fails the test with a hint; nothing is ever
// skipped.
//
// # Example
//
//	func TestArchive(t *testing.T) {
//		for _, st := range harness.Stores(t) { // file, s3, gcs, azure
//			t.Run(st.Name, func(t *testing.T) {
//				pg := harness.StartPostgres(t, harness.PGOptions{
//					ArchiveCommand:   st.CommandLine(harness.Bin(t, "gbc-wal-archive"), nil, "main", "%p"),
//					Env:              st.Env, // credentials for archive_command
//					WALSegmentSizeMB: 1,
//				})
//				pg.PgBench(t, "-i", "-s", "2")
//				seg := pg.SwitchWAL(t)
//				pg.WaitArchived(t, seg, time.Minute)
//				dest := filepath.Join(harness.TempDir(t), seg)
//				_, stderr, code := harness.RunGBC(t, st.Env,
//					st.Argv("gbc-wal-restore", nil, "main", seg, dest)...)
//				if code != 0 {
//					t.Fatalf("gbc-wal-restore: exit %d: %s", code, stderr)
//				}
//				// compare dest with the segment...
//			})
//		}
//	}
//
// For the blob layer directly: st.Open(t) returns a cloud.Store.
//
// # Servers
//
// Shared servers (SharedMinIO, SharedAzurite, SharedFakeGCS, and Stores,
// which starts all three in parallel) are started once per test binary,
// on first use; each test gets its own fresh bucket or container from
// NewBucket / NewContainer / NewStore, so tests do not see each other's
// objects. Start* gives a test its own server, killed when it ends: use it
// only to stop or break a server. Measured on 2 busy cores: MinIO about
// 0.6 s, fake-gcs-server under 0.1 s, Azurite 1 to 10 s, a new PostgreSQL
// cluster about 0.5 s (initdb) plus 0.1 s. GBC_E2E_VERBOSE=1 prints start
// times; GBC_E2E_KEEP=1 keeps the temp directories for a post-mortem.
//
// # Users and files
//
// PostgreSQL refuses to run as root. When the tests run as root (as CI
// does), initdb, the server, Cluster.Run/Command/PgBench and Cluster.RunGBC
// run as PGUser: the `postgres` system user, or a `gbctest` user created
// with useradd. The package RunGBC runs as the current user. Everything
// such a process touches must be reachable by that user:
//
//   - TempDir and NewEmptyDataDir return directories it owns, under a
//     world-traversable parent (t.TempDir's parents are 0700: do not give
//     those to PostgreSQL);
//   - the gbc binaries are copied once per test binary into BinDir (the
//     checkout may be under a 0700 home; the copy also protects a running
//     test from a concurrent `make build`); the server's PATH starts with
//     BinDir, so archive_command may also name gbc-wal-archive bare;
//   - StartFrom chowns the data directory (and its tablespaces) to PGUser
//     and makes it 0700, so a gbc-restore run as root may fill it;
//   - a file:// store directory belongs to PGUser; directories a root
//     process creates inside it are not writable by PostgreSQL's
//     archive_command. Run the gbc commands of a file:// test that mixes
//     both through Cluster.RunGBC (as PGUser), as a DBA's cron job would.
//
// # PostgreSQL
//
// Package pgrun does the work (finding the programs, initdb, starting,
// waiting, stopping, the unprivileged user); the harness adds t.Fatal, a
// connection pool and the gbc commands' environment.
//
// StartPostgres runs initdb (-A trust -U postgres, UTF8, C locale),
// appends wal_level=replica, max_wal_senders=10, fsync=off, small
// shared_buffers, archive settings and PGOptions.Settings to
// postgresql.conf, and runs the postmaster directly (not through pg_ctl)
// in its own process group with port, socket directory and
// listen_addresses=127.0.0.1 on its command line. Its stderr goes to
// LogPath, whose last 50 lines are logged when the test fails. The
// postmaster gets SIGQUIT (immediate shutdown) if the test binary dies.
// pg_amcheck needs `CREATE EXTENSION amcheck` first. StartStandby makes a
// hot standby of a running cluster with pg_basebackup -R.
package harness
