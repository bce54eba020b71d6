// Package pg talks to PostgreSQL: connecting with libpq conventions through
// pgx, the server version and system identifier, LSNs, the non-exclusive
// backup start/stop API, control data and settings. It knows no other gbc
// package.
package pg
