// Package pgrun runs throwaway PostgreSQL servers for gbc's tests, its
// benchmark, its demo and restore drills: it finds the server's programs,
// runs initdb, starts the postmaster on a free port, waits until it accepts
// connections or has finished recovery, and stops it again (fast, then
// immediate, then SIGKILL), so that nothing is left running, even on error.
//
// Every function returns an error and never exits or fails a test; callers
// decide what a failure means (the e2e harness turns it into t.Fatal).
//
// # Who runs PostgreSQL
//
// PostgreSQL refuses to run as root. ServerUser returns the current user,
// or when the process runs as root an unprivileged account, looked up or
// created with useradd; a User then runs a program as itself through
// SysProcAttr.Credential (User.Apply) and owns the files it must reach
// (User.Chown, User.ChownAll). A nil *User is the current user.
//
// # Processes
//
// The postmaster runs as a direct child, not through pg_ctl, in a process
// group of its own with a parent-death signal, so that it dies with its
// caller. Its backends each call setsid(), so the process group alone is
// not enough to stop them all: Process.Kill also kills every descendant.
// Process and WaitFor are exported because the harnesses start their other
// servers (MinIO, Azurite, fake-gcs-server) the same way.
//
// # Typical use
//
//	inst, err := pgrun.Find(pgBinDirFlag)            // --pg-bindir, pg_config, PATH
//	u, err := pgrun.ServerUser("postgres", "gbctest") // as root: an unprivileged user
//	err = inst.InitDB(ctx, u, dataDir, pgrun.InitOptions{})
//	srv, err := pgrun.Start(ctx, pgrun.Config{Install: inst, User: u,
//		DataDir: dataDir, SocketDir: dir, LogPath: logPath})
//	defer srv.Halt()                                  // nothing outlives the caller
//	err = srv.WaitRecovered(ctx)
//	v, err := srv.Query(ctx, "SELECT count(*) FROM t")
//	err = srv.Stop(time.Minute)
package pgrun
