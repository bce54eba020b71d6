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

	PGVersion        int    `json:"pg_version"` // server_version_num, e.g. 150018
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
	Encryption  string `json:"encryption,omitempty"`

	DataSize   int64 `json:"data_size"`   // bytes read from PostgreSQL
	StoredSize int64 `json:"stored_size"` // bytes stored, all parts and the manifest

	Parts       []Part       `json:"parts"`
	Tablespaces []Tablespace `json:"tablespaces,omitempty"`

	BackupLabel   string `json:"backup_label"`
	TablespaceMap string `json:"tablespace_map,omitempty"`
	// ManifestKey is the stored PostgreSQL-format backup_manifest.
	ManifestKey string `json:"manifest_key,omitempty"`

	Keep     string            `json:"keep,omitempty"` // "", KeepFull or KeepStandalone
	Tags     map[string]string `json:"tags,omitempty"`
	ParentID string            `json:"parent_id,omitempty"`

	Snapshots []Snapshot `json:"snapshots,omitempty"`
}

// Part is one stored tar archive of a backup.
type Part struct {
	Key        string `json:"key"`         // relative to the server's root
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
