// Package restore rebuilds a data directory from a backup: Restore chooses
// the backup, checks what can be checked before a byte is written, and
// either downloads, verifies, decompresses and writes the parts in
// parallel (relocating tablespaces) or, for a snapshot backup, recovers
// on disks made from its snapshots; then it writes the recovery
// configuration for point-in-time recovery. It reports progress as events
// and refusals as classified errors, and prints nothing.
package restore
