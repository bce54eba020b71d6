package catalog

import "time"

// FormatVersion is written into every record so that later releases can read
// older ones. Bump it only for changes an older reader would misread.
const FormatVersion = 1

// Status of a backup. Only DONE backups exist for list, restore and retention.
type Status string

const (
	StatusStarted Status = "STARTED"
	StatusDone    Status = "DONE"
	StatusFailed  Status = "FAILED"
)

// Keep annotations, with barman's meaning.
const (
	KeepFull       = "full"       // keep the backup and every WAL after it
	KeepStandalone = "standalone" // keep the backup and only the WAL it needs to be consistent
)

// Backup is the record stored as base/<id>/backup.json. It is written last:
// a backup without a readable DONE record does not exist.
type Backup struct {
	Format int    `json:"format"`
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Server string `json:"server"`
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`

	PGVersion int `json:"pg_version"` // server_version_num, e.g. 150018
	// PGVersionString is the server's version for people, e.g. "15.18".
	PGVersionString  string `json:"pg_version_string,omitempty"`
	SystemIdentifier string `json:"system_identifier"`
	Timeline         uint32 `json:"timeline"`
	WALSegmentSize   int64  `json:"wal_segment_size"`

	BeginTime time.Time `json:"begin_time"`
	EndTime   time.Time `json:"end_time,omitempty"`
	BeginLSN  string    `json:"begin_lsn"` // "0/2000028"
	EndLSN    string    `json:"end_lsn,omitempty"`
	BeginWAL  string    `json:"begin_wal"` // segment name holding BeginLSN
	EndWAL    string    `json:"end_wal,omitempty"`

	Method      string `json:"method"`      // local, stream, snapshot
	Compression string `json:"compression"` // codec name
	// CompressionLevel is --compression-level; 0 is the codec's fast default.
	CompressionLevel int    `json:"compression_level,omitempty"`
	Encryption       string `json:"encryption,omitempty"`

	DataSize   int64 `json:"data_size"`   // bytes read from PostgreSQL
	StoredSize int64 `json:"stored_size"` // bytes stored, all parts and the manifest
	// Files counts the regular files in the backup (backup_label,
	// tablespace_map and pg_control included), as listed in the manifest.
	Files int64 `json:"files,omitempty"`

	Parts       []Part       `json:"parts"`
	Tablespaces []Tablespace `json:"tablespaces,omitempty"`

	BackupLabel   string `json:"backup_label"`
	TablespaceMap string `json:"tablespace_map,omitempty"`
	// ManifestKey is the stored PostgreSQL-format backup_manifest.
	ManifestKey string `json:"manifest_key,omitempty"`
	// ManifestSHA256 (hex) and ManifestStoredSize describe the stored
	// manifest object's bytes, so that restore verifies it like a part.
	ManifestSHA256     string `json:"manifest_sha256,omitempty"`
	ManifestStoredSize int64  `json:"manifest_stored_size,omitempty"`

	// Label is the label given to pg_backup_start or BASE_BACKUP; it is
	// also the LABEL line of BackupLabel.
	Label string `json:"label,omitempty"`
	// DataDirectory is the server's data_directory at backup time (empty
	// for --method stream when the role may not read it).
	DataDirectory string `json:"data_directory,omitempty"`
	// FromStandby is true when the backup was taken from a standby.
	FromStandby bool `json:"from_standby,omitempty"`
	// Host is the name of the machine gbc-backup ran on, and GBCVersion
	// the gbc release that wrote the record: both help when an operator
	// investigates a STARTED or FAILED record.
	Host       string `json:"host,omitempty"`
	GBCVersion string `json:"gbc_version,omitempty"`
	// Heartbeat is refreshed in STARTED records while the backup runs, so
	// that retention can tell a long backup that is still alive from one
	// whose process died (see the package documentation).
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	// HeartbeatInterval is how often, in seconds, the writer refreshes
	// Heartbeat. It tells a reader the writer's cadence, so that a STARTED
	// record whose heartbeat stopped is known dead after a few intervals
	// (see SilenceLimit) rather than after --orphan-age. Records written
	// by older releases have none.
	HeartbeatInterval int64 `json:"heartbeat_interval,omitempty"`

	Keep string            `json:"keep,omitempty"` // "", KeepFull or KeepStandalone
	Tags map[string]string `json:"tags,omitempty"`

	// Type is TypeFull, TypeIncr or TypeDiff. Records written before
	// incremental backups existed have none, and are full (see Kind).
	Type string `json:"type,omitempty"`
	// ParentID is the backup an incremental or differential one holds
	// the changes since: restoring it needs the whole chain down to a
	// full backup.
	ParentID string `json:"parent_id,omitempty"`
	// BlockMap describes the stored block map: the hash of every block of
	// every relation file as this backup restores it, which the next
	// incremental backup compares against (see package blockmap).
	BlockMap *Object `json:"block_map,omitempty"`

	Snapshots []Snapshot `json:"snapshots,omitempty"`
}

// Backup types.
const (
	TypeFull = "full"
	TypeIncr = "incr" // the changes since the previous backup of the chain
	TypeDiff = "diff" // the changes since the chain's full backup
)

// Kind is the backup's type, TypeFull for records without one.
func (b *Backup) Kind() string {
	if b.Type == "" {
		return TypeFull
	}
	return b.Type
}

// Object describes one stored object of a backup besides its parts.
type Object struct {
	Key        string `json:"key"`
	Size       int64  `json:"size"`        // uncompressed bytes
	StoredSize int64  `json:"stored_size"` // bytes stored
	SHA256     string `json:"sha256"`      // hex, of the stored bytes
}

// Part is one stored tar archive of a backup.
type Part struct {
	Key        string `json:"key"`         // the object's key in the store, as Layout.PartKey names it
	Tablespace string `json:"tablespace"`  // "" for PGDATA, else the tablespace OID
	Size       int64  `json:"size"`        // uncompressed tar bytes
	StoredSize int64  `json:"stored_size"` // bytes stored
	SHA256     string `json:"sha256"`      // hex, of the stored bytes
	Files      int    `json:"files"`
}

// Tablespace as it was on the backed-up server.
type Tablespace struct {
	OID      string `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Size     int64  `json:"size"`
}

// Snapshot describes one provider disk snapshot of a snapshot backup.
type Snapshot struct {
	Provider     string            `json:"provider"` // aws, gcp, azure
	ID           string            `json:"id"`
	Disk         string            `json:"disk"`
	Device       string            `json:"device,omitempty"`
	MountPoint   string            `json:"mount_point"`
	MountOptions string            `json:"mount_options,omitempty"`
	SizeGiB      int64             `json:"size_gib,omitempty"`
	Details      map[string]string `json:"details,omitempty"` // provider specific: region, zone, project, resource group
}
