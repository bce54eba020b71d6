package statuscmd

import (
	"time"

	"github.com/gbc-backup/gbc/status"
)

// Document is the --format json output. Its fields are a documented,
// stable schema: later releases add fields, never rename or remove them.
// Absent values are null; times are RFC 3339 in UTC; ages are seconds at
// Time.
type Document struct {
	// State is the worst state of the servers.
	State               status.State `json:"state"`
	Time                time.Time    `json:"time"`
	MaxBackupAgeSeconds float64      `json:"max_backup_age_seconds"`
	MaxWALAgeSeconds    float64      `json:"max_wal_age_seconds"`
	Servers             []Server     `json:"servers"`
}

// Server is one server's report.
type Server struct {
	Server  string       `json:"server"`
	State   status.State `json:"state"`
	Reasons []string     `json:"reasons"`
	// LastBackup is the newest DONE backup.
	LastBackup *Backup `json:"last_backup"`
	// LastFailedBackup is the newest FAILED backup, when it is newer than
	// LastBackup.
	LastFailedBackup *Backup `json:"last_failed_backup"`
	// Backups and StoredSize count the DONE backups.
	Backups    int   `json:"backups"`
	StoredSize int64 `json:"stored_size"`
	NewestWAL  *WAL  `json:"newest_wal"`
	// WALCheckedFrom is where the gap check started ("" when it did not
	// run: no backup needs all WAL after it).
	WALCheckedFrom string       `json:"wal_checked_from"`
	WALGaps        []status.Gap `json:"wal_gaps"`
	MoreWALGaps    int          `json:"more_wal_gaps"`
	LastDrill      *Drill       `json:"last_drill"`
}

// Backup is a backup in the report.
type Backup struct {
	status.Backup
	AgeSeconds float64 `json:"age_seconds"`
}

// WAL is the newest archived segment.
type WAL struct {
	Name       string    `json:"name"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
}

// Drill is the last restore drill.
type Drill struct {
	OK         bool      `json:"ok"`
	BackupID   string    `json:"backup_id"`
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"age_seconds"`
	RTOSeconds float64   `json:"rto_seconds"`
	Error      string    `json:"error"`
}

// Build judges every server's facts at now.
func Build(facts []status.Facts, lim status.Limits, now time.Time) Document {
	doc := Document{Time: now.UTC(), MaxBackupAgeSeconds: lim.MaxBackupAge.Seconds(), MaxWALAgeSeconds: lim.MaxWALAge.Seconds(),
		Servers: make([]Server, 0, len(facts))}
	age := func(t time.Time) float64 { return status.Age(t, now).Seconds() }
	backup := func(b *status.Backup) *Backup {
		if b == nil {
			return nil
		}
		c := *b
		c.BeginTime, c.EndTime = c.BeginTime.UTC(), c.EndTime.UTC()
		return &Backup{Backup: c, AgeSeconds: age(b.Time())}
	}
	for _, f := range facts {
		v := status.Decide(f, lim, now)
		r := Server{Server: f.Server, State: v.State, Reasons: v.Reasons,
			LastBackup: backup(f.Last), LastFailedBackup: backup(f.LastFailed),
			Backups: f.Backups, StoredSize: f.StoredSize,
			WALCheckedFrom: f.CheckedFrom, WALGaps: f.Gaps, MoreWALGaps: f.MoreGaps}
		if r.Reasons == nil {
			r.Reasons = []string{}
		}
		if r.WALGaps == nil {
			r.WALGaps = []status.Gap{}
		}
		if w := f.NewestWAL; w != nil {
			r.NewestWAL = &WAL{Name: w.Name, Time: w.Time.UTC(), AgeSeconds: age(w.Time)}
		}
		if d := f.Drill; d != nil {
			r.LastDrill = &Drill{OK: d.OK, BackupID: d.BackupID, Time: d.Time.UTC(), AgeSeconds: age(d.Time), RTOSeconds: d.RTOSeconds, Error: d.Error}
		}
		doc.State = max(doc.State, v.State)
		doc.Servers = append(doc.Servers, r)
	}
	return doc
}
