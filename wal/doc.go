// Package wal knows PostgreSQL's write-ahead log as files: segment, history,
// .partial and .backup names, timelines, the next segment, and the archive,
// restore and check operations that move those files to and from a store.
package wal
