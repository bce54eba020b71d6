package pg

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestBaseBackupSQLIncremental(t *testing.T) {
	got := BaseBackupOptions{Label: "i", NoWait: true, Manifest: true, Incremental: true}.sql()
	want := `BASE_BACKUP ( LABEL 'i', CHECKPOINT 'spread', WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', TABLESPACE_MAP false, INCREMENTAL )`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestCheckIncrementalVersion(t *testing.T) {
	err := checkIncrementalVersion(150018, "15.18")
	if !errors.Is(err, ErrIncrementalUnsupported) || !strings.Contains(err.Error(), "15.18") {
		t.Errorf("15.18: %v, want ErrIncrementalUnsupported naming the version", err)
	}
	for _, v := range []int{170000, 170010, 180004} {
		if err := checkIncrementalVersion(v, ""); err != nil {
			t.Errorf("%d: %v", v, err)
		}
	}
}

// The server's messages (PostgreSQL 17 and 18) for the prerequisites of an
// incremental backup.
func TestBaseBackupError(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want error
	}{
		{"incremental backups cannot be taken unless WAL summarization is enabled", ErrWALSummarizationOff},
		{"WAL summaries are required on timeline 1 from 0/2000028 to 0/3000000, but no summaries for that timeline and LSN range exist", ErrWALSummariesMissing},
		{"WAL summaries are required on timeline 1 from 0/2000028 to 0/3000000, but the summaries for that timeline and LSN range are incomplete", ErrWALSummariesMissing},
		{"must UPLOAD_MANIFEST before performing an incremental BASE_BACKUP", nil},
	} {
		pgErr := &pgconn.PgError{Severity: "ERROR", Code: "55000", Message: tc.msg}
		err := baseBackupError(pgErr)
		var got *pgconn.PgError
		if !errors.As(err, &got) || got != pgErr {
			t.Errorf("%q: the server's error is not wrapped: %v", tc.msg, err)
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: the message is lost: %v", tc.msg, err)
		}
		for _, sentinel := range []error{ErrWALSummarizationOff, ErrWALSummariesMissing} {
			if is := errors.Is(err, sentinel); is != (sentinel == tc.want) {
				t.Errorf("%q: errors.Is(%v) = %v", tc.msg, sentinel, is)
			}
		}
	}
	if !strings.Contains(ErrWALSummarizationOff.Error(), "set summarize_wal = on (PostgreSQL 17+) and reload, then take a full backup before the first incremental") {
		t.Errorf("ErrWALSummarizationOff does not say what to do: %v", ErrWALSummarizationOff)
	}
}
