package catalog

import (
	"path"
	"strconv"
	"strings"
)

// Layout names every key of one server inside a store. It is the only place
// that knows the store layout; cloud moves bytes, this decides where.
//
//	<server>/base/<id>/backup.json             the record, written last
//	<server>/base/<id>/data/<n>.tar.<ext>      PGDATA parts
//	<server>/base/<id>/tblspc/<oid>/<n>.tar.<ext>
//	<server>/base/<id>/backup_manifest.<ext>
//	<server>/wals/<TLI><LOG>/<segment>.<ext>
//	<server>/wals/<TLI>.history.<ext>
type Layout struct {
	Server string
}

// Root is the key prefix holding everything of the server.
func (l Layout) Root() string { return l.Server + "/" }

// WALRoot is the prefix of every archived WAL object.
func (l Layout) WALRoot() string { return l.Server + "/wals/" }

// WALKey is where an archived file named name (a segment, .partial, .backup
// or .history file) is stored, with ext naming its codec ("" for none).
// Segments are grouped by their timeline and log number so that a listing of
// one directory stays small; history files sit at the top.
func (l Layout) WALKey(name, ext string) string {
	key := l.WALRoot()
	if len(name) >= 16 && !strings.HasSuffix(name, ".history") {
		key += name[:16] + "/"
	}
	key += name
	if ext != "" {
		key += "." + ext
	}
	return key
}

// BaseRoot is the prefix holding every backup.
func (l Layout) BaseRoot() string { return l.Server + "/base/" }

// BackupRoot is the prefix of one backup.
func (l Layout) BackupRoot(id string) string { return l.BaseRoot() + id + "/" }

// RecordKey is the backup's catalog record.
func (l Layout) RecordKey(id string) string { return l.BackupRoot(id) + "backup.json" }

// PartKey is the n-th tar part of PGDATA (tablespace "") or of a tablespace.
func (l Layout) PartKey(id, tablespace string, n int, ext string) string {
	dir := "data"
	if tablespace != "" {
		dir = path.Join("tblspc", tablespace)
	}
	key := l.BackupRoot(id) + dir + "/" + strconv.Itoa(n) + ".tar"
	if ext != "" {
		key += "." + ext
	}
	return key
}

// ManifestKey is the stored PostgreSQL-format backup_manifest.
func (l Layout) ManifestKey(id, ext string) string {
	key := l.BackupRoot(id) + "backup_manifest"
	if ext != "" {
		key += "." + ext
	}
	return key
}

// BlockMapKey is the stored block map of a backup (see package blockmap).
func (l Layout) BlockMapKey(id, ext string) string {
	key := l.BackupRoot(id) + "blockmap"
	if ext != "" {
		key += "." + ext
	}
	return key
}
