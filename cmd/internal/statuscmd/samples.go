package statuscmd

import "github.com/gbc-backup/gbc/metrics"

// Samples are the metrics of a report (the README documents them).
// Timestamps are always present, 0 for "never", so that an alert on
// time() - timestamp fires for a server that never had one; ages, sizes
// and drill values only when there is something to measure.
func Samples(doc Document) []metrics.Sample {
	var out []metrics.Sample
	ts := float64(doc.Time.UnixNano()) / 1e9
	for _, r := range doc.Servers {
		add := func(name, help string, v float64) {
			out = append(out, metrics.Sample{Name: name, Help: help, Server: r.Server, Value: v})
		}
		add("gbc_status_state", "State of the server: 0 ok, 1 warning, 2 critical (gbc-status).", float64(r.State))
		add("gbc_status_timestamp_seconds", "When gbc-status judged the server, in Unix seconds.", ts)
		add("gbc_backups", "Number of DONE backups.", float64(r.Backups))
		add("gbc_backups_stored_bytes", "Bytes stored by the DONE backups.", float64(r.StoredSize))
		last := 0.0
		if b := r.LastBackup; b != nil {
			last = float64(b.Time().UnixNano()) / 1e9
			add("gbc_last_backup_age_seconds", "Age of the last DONE backup when gbc-status ran.", b.AgeSeconds)
			add("gbc_last_backup_stored_bytes", "Bytes stored by the last DONE backup.", float64(b.StoredSize))
			add("gbc_last_backup_data_bytes", "Bytes read from PostgreSQL by the last DONE backup.", float64(b.DataSize))
		}
		add("gbc_last_backup_timestamp_seconds", "End of the last DONE backup, in Unix seconds (0: none).", last)
		walTS := 0.0
		if w := r.NewestWAL; w != nil {
			walTS = float64(w.Time.UnixNano()) / 1e9
			add("gbc_wal_newest_age_seconds", "Age of the newest archived WAL segment when gbc-status ran: the RPO if the host died then.", w.AgeSeconds)
		}
		add("gbc_wal_newest_timestamp_seconds", "When the newest WAL segment was archived, in Unix seconds (0: none).", walTS)
		if r.WALCheckedFrom != "" {
			after := 0
			for _, g := range r.WALGaps {
				if g.AfterLatest {
					after++
				}
			}
			add("gbc_wal_gaps", "WAL gaps (missing segments or history files) since the oldest backup.", float64(len(r.WALGaps)+r.MoreWALGaps))
			add("gbc_wal_gaps_after_latest_backup", "WAL gaps after the latest backup's begin WAL: the newest data cannot be recovered.", float64(after))
		}
		if d := r.LastDrill; d != nil {
			add("gbc_drill_last_success", "1 if the last restore drill passed, else 0.", boolValue(d.OK))
			add("gbc_drill_last_timestamp_seconds", "When the last restore drill started, in Unix seconds.", float64(d.Time.UnixNano())/1e9)
			add("gbc_drill_last_rto_seconds", "Recovery time measured by the last restore drill (0 if it did not get that far).", d.RTOSeconds)
		}
	}
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
