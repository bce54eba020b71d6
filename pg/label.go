package pg

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// BackupLabel is the parsed content of a backup_label file, as written by
// pg_backup_stop or BASE_BACKUP:
//
//	START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
//	CHECKPOINT LOCATION: 0/2000060
//	BACKUP METHOD: streamed
//	BACKUP FROM: primary
//	START TIME: 2026-11-24 21:48:42 UTC
//	LABEL: gbc 20261124T214842Z
//	START TIMELINE: 1
type BackupLabel struct {
	StartLSN      LSN
	StartWALFile  string
	CheckpointLSN LSN
	Method        string
	From          string // primary or standby
	StartTime     string
	Label         string
	StartTimeline uint32
}

// ParseBackupLabel parses a backup_label. Lines it does not know are
// ignored, so that a newer server's additions do not break it; the start
// location and timeline, which gbc relies on, are required.
func ParseBackupLabel(text string) (*BackupLabel, error) {
	var b BackupLabel
	var haveStart, haveTLI bool
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		var err error
		switch key {
		case "START WAL LOCATION":
			lsn, rest, _ := strings.Cut(value, " ")
			if b.StartLSN, err = ParseLSN(lsn); err != nil {
				return nil, fmt.Errorf("backup_label START WAL LOCATION: %w", err)
			}
			if f, ok := strings.CutPrefix(rest, "(file "); ok {
				b.StartWALFile = strings.TrimSuffix(f, ")")
			}
			haveStart = true
		case "CHECKPOINT LOCATION":
			if b.CheckpointLSN, err = ParseLSN(value); err != nil {
				return nil, fmt.Errorf("backup_label CHECKPOINT LOCATION: %w", err)
			}
		case "BACKUP METHOD":
			b.Method = value
		case "BACKUP FROM":
			b.From = value
		case "START TIME":
			b.StartTime = value
		case "LABEL":
			b.Label = value
		case "START TIMELINE":
			t, err := strconv.ParseUint(value, 10, 32)
			if err != nil || t == 0 {
				return nil, fmt.Errorf("backup_label START TIMELINE %q: not a timeline", value)
			}
			b.StartTimeline, haveTLI = uint32(t), true
		}
	}
	if !haveStart || !haveTLI {
		return nil, fmt.Errorf("backup_label lacks START WAL LOCATION or START TIMELINE: not a backup_label")
	}
	return &b, nil
}
