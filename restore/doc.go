// Package restore rebuilds a data directory from a backup: it downloads,
// verifies, decompresses and writes the parts in parallel, relocates
// tablespaces, and writes the recovery configuration for point-in-time
// recovery.
package restore
