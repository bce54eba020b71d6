// Package backup is the base backup engine: it reads PGDATA and the
// tablespaces (from disk, or streamed over the replication protocol), tars,
// compresses and uploads them as parts in a parallel, memory-bounded
// pipeline, and commits the catalog record last.
package backup
