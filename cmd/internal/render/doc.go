// Package render prints catalog values the same way in every command that
// shows them (gbc-backup-list, gbc-backup-show, gbc-backup-delete,
// gbc-restore's notices): sizes, times, tags and absent values as one word
// each, aligned tables, indented JSON, and the --format option choosing
// between text and JSON.
package render
