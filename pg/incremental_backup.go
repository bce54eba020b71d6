package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL 17's incremental BASE_BACKUP, on a replication session:
//
//  1. UploadManifest sends the backup_manifest of the parent backup (the
//     one the server wrote for it: its WAL ranges say where to start);
//  2. BaseBackup with Incremental set, on the same session, sends every
//     relation file whose blocks the server's WAL summaries say changed
//     since the parent's start as an INCREMENTAL.<name> file (see
//     IncrementalHeader), and the other files whole.
//
// The WAL summaries are written by the WAL summarizer, which runs only
// with summarize_wal = on, and cover only the WAL written while it ran: a
// parent taken before summarize_wal was turned on cannot be the base of an
// incremental one.

// IncrementalMinVersion is the first server (server_version_num) with
// UPLOAD_MANIFEST and BASE_BACKUP ... INCREMENTAL.
const IncrementalMinVersion = 170000

// ErrIncrementalUnsupported is wrapped by the error for a server older
// than IncrementalMinVersion.
var ErrIncrementalUnsupported = errors.New("the server cannot take incremental base backups: they need PostgreSQL 17 or later")

// ErrWALSummarizationOff is wrapped by the error for a server whose
// summarize_wal is off, found by CheckIncrementalSupport or returned by
// BaseBackup with Incremental.
var ErrWALSummarizationOff = errors.New("the server does not summarize WAL, which incremental backups need: " +
	"set summarize_wal = on (PostgreSQL 17+) and reload, then take a full backup before the first incremental")

// ErrWALSummariesMissing is wrapped by BaseBackup's error when the
// server's WAL summaries do not cover the WAL since the parent backup
// started: summarize_wal was off for a while since, or
// wal_summary_keep_time removed the summaries.
var ErrWALSummariesMissing = errors.New("the server has no WAL summaries back to the start of the parent backup " +
	"(summarize_wal was off for a while, or wal_summary_keep_time removed them): take a full backup, then incrementals on top of it")

// CheckIncrementalSupport tells whether the server can take an
// incremental base backup now: PostgreSQL 17 or later, with summarize_wal
// = on. It cannot tell whether the summaries reach back to a given parent;
// BaseBackup reports that (ErrWALSummariesMissing).
func (r *ReplConn) CheckIncrementalSupport(ctx context.Context) error {
	if err := checkIncrementalVersion(r.version, r.versionString); err != nil {
		return err
	}
	v, err := r.Show(ctx, "summarize_wal")
	if err != nil {
		return err
	}
	if v != "on" {
		return fmt.Errorf("%w (summarize_wal is %s)", ErrWALSummarizationOff, v)
	}
	return nil
}

func checkIncrementalVersion(v int, s string) error {
	if v < IncrementalMinVersion {
		return fmt.Errorf("%w (the server runs PostgreSQL %s)", ErrIncrementalUnsupported, s)
	}
	return nil
}

// UploadManifest runs UPLOAD_MANIFEST: it streams manifest, the parent
// backup's backup_manifest as the server wrote it, into the session, for
// the next BaseBackup with Incremental on this same session. The server
// parses it and keeps what it needs (the WAL ranges, and the files the
// parent holds); a manifest it cannot parse fails here.
//
// The command is a COPY FROM STDIN in all but name (CopyInResponse,
// CopyData, CopyDone, CommandComplete), so pgconn's CopyFrom runs it: it
// sends the data in 64 KiB messages while watching for the server's error,
// so memory does not depend on the manifest's size. When manifest fails
// to read, the copy is cancelled (CopyFail), and the session stays
// usable.
func (r *ReplConn) UploadManifest(ctx context.Context, manifest io.Reader) error {
	if err := checkIncrementalVersion(r.version, r.versionString); err != nil {
		return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
	}
	src := &errReader{r: manifest}
	tag, err := r.c.CopyFrom(ctx, src, "UPLOAD_MANIFEST")
	switch {
	case src.err != nil:
		return fmt.Errorf("UPLOAD_MANIFEST: read the manifest: %w", src.err)
	case err != nil:
		return fmt.Errorf("UPLOAD_MANIFEST: %w", err)
	case tag.String() != "UPLOAD_MANIFEST":
		return fmt.Errorf("UPLOAD_MANIFEST: the server answered %q", tag.String())
	}
	return nil
}

// errReader remembers the error of the reader it wraps, other than
// io.EOF, which CopyFrom reports only as the server's "COPY from stdin
// failed".
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// baseBackupError wraps the server's error for BASE_BACKUP with the
// sentinel that says what to do, when it is one of the incremental
// backup's prerequisites. The messages are matched because their SQLSTATE
// (55000, object not in prerequisite state) is shared with others; a
// server with translated messages (lc_messages) gets the plain error,
// and CheckIncrementalSupport beforehand.
func baseBackupError(err *pgconn.PgError) error {
	switch {
	case strings.Contains(err.Message, "unless WAL summarization is enabled"):
		return fmt.Errorf("%w: %w", ErrWALSummarizationOff, err)
	case strings.HasPrefix(err.Message, "WAL summaries are required"):
		return fmt.Errorf("%w: %w", ErrWALSummariesMissing, err)
	}
	return err
}
