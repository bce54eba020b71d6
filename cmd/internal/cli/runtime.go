package cli

import "runtime/debug"

// shortLivedMemoryLimit bounds the heap of a short-lived call that runs
// without garbage collection: far above what one WAL segment's push or
// restore needs, far below the machine's memory.
const shortLivedMemoryLimit = 256 << 20

// backgroundMemoryLimit is the heap size at which a background worker's
// collector starts working harder: a few times its live data (one segment
// buffer and compressor per job), so that the default doubling of the heap
// between collections does not show as resident memory.
const backgroundMemoryLimit = 64 << 20

// Background tunes the Go runtime for a detached worker that lives for
// minutes next to PostgreSQL (the archive pusher, the restore prefetcher):
// it keeps garbage collection, under a soft memory limit.
func Background() {
	debug.SetMemoryLimit(backgroundMemoryLimit)
}

// ShortLived tunes the Go runtime for a call that handles one WAL file and
// exits, as archive_command and restore_command calls do hundreds of times
// a minute on a busy server: it turns off garbage collection, which would
// otherwise run several cycles over the segment's buffers and cost about
// 15% of the call's CPU, and lets the memory limit start it only as a
// backstop. Background workers, which live for minutes, keep the default.
func ShortLived() {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(shortLivedMemoryLimit)
}
