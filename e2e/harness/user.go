package harness

import (
	"testing"

	"github.com/gbc-backup/gbc/pgrun"
)

// pgUserNames are the accounts PostgreSQL runs as when the tests run as
// root, tried in order; the last one is created when none exists.
func pgUserNames() []string { return []string{"postgres", "gbctest"} }

// PGUser returns the name of the OS user that PostgreSQL, and every gbc
// command it runs, runs as: the current user, or when the tests run as root
// the `postgres` system user, or a `gbctest` user created with useradd.
func PGUser(t testing.TB) string {
	t.Helper()
	u, err := pgUser()
	if err != nil {
		t.Fatal(err)
	}
	return u.Name
}

// pgUser is the PostgreSQL user, looked up (or created) once per test
// binary.
func pgUser() (*pgrun.User, error) {
	return reg.pgUser.get(func() (*pgrun.User, error) { return pgrun.ServerUser(pgUserNames()...) })
}

// ChownToPG gives path (recursively) to the PostgreSQL user when the tests
// run as root, and does nothing otherwise. Use it on anything a root process
// wrote that PostgreSQL must then own, such as a data directory or a
// tablespace restored by a gbc command run as root. StartFrom does it for
// the data directory and its tablespaces.
func ChownToPG(t testing.TB, path string) {
	t.Helper()
	u, err := pgUser()
	if err == nil {
		err = u.ChownAll(path)
	}
	if err != nil {
		t.Fatal(err)
	}
}
