// Package catalog owns the store layout and the JSON catalog: the backup
// record (backup.json, the commit point of every backup), the key names of
// WAL objects and backup parts, and finding, listing and locking backups.
package catalog
