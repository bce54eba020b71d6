package pg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// ReplConn is a physical replication session (replication=true), the kind
// pg_basebackup opens: it runs BASE_BACKUP on servers whose data directory
// gbc cannot read, with a role that needs only the REPLICATION attribute.
type ReplConn struct {
	c             *pgconn.PgConn
	version       int
	versionString string
}

// ConnectReplication opens a physical replication session with the same
// libpq conventions as Connect, and refuses servers older than MinVersion.
func ConnectReplication(ctx context.Context, connString, appName string) (*ReplConn, error) {
	cfg, err := ParseConnString(connString, appName)
	if err != nil {
		return nil, err
	}
	pc := cfg.Config.Copy()
	// Physical, not "database": pg_hba.conf matches physical replication
	// sessions on its "replication" keyword, as for pg_basebackup.
	pc.RuntimeParams["replication"] = "true"
	c, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL for replication: %w", err)
	}
	v, s, err := parseServerVersion(c.ParameterStatus("server_version"))
	if err == nil {
		err = checkVersion(v, s)
	}
	if err != nil {
		_ = c.Close(ctx)
		return nil, err
	}
	return &ReplConn{c: c, version: v, versionString: s}, nil
}

// Close ends the session; a BASE_BACKUP still running is aborted.
func (r *ReplConn) Close(ctx context.Context) error { return r.c.Close(ctx) }

// Version is the server's version number, e.g. 150018.
func (r *ReplConn) Version() int { return r.version }

// VersionString is the server's version, e.g. "15.18".
func (r *ReplConn) VersionString() string { return r.versionString }

// SystemInfo is the answer to IDENTIFY_SYSTEM.
type SystemInfo struct {
	SystemIdentifier string
	Timeline         uint32
	XLogPos          LSN // the current WAL flush (or, on a standby, replay) position
}

// IdentifySystem runs IDENTIFY_SYSTEM.
func (r *ReplConn) IdentifySystem(ctx context.Context) (SystemInfo, error) {
	res, err := pglogrepl.IdentifySystem(ctx, r.c)
	if err != nil {
		return SystemInfo{}, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	return SystemInfo{SystemIdentifier: res.SystemID, Timeline: uint32(res.Timeline), XLogPos: LSN(res.XLogPos)}, nil
}

// settingName guards SHOW, whose argument cannot be a bind parameter.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// Show returns a setting's value as SHOW prints it (with units, "16MB").
func (r *ReplConn) Show(ctx context.Context, name string) (string, error) {
	if !settingName.MatchString(name) {
		return "", fmt.Errorf("invalid setting name %q", name)
	}
	res, err := r.c.Exec(ctx, "SHOW "+name).ReadAll()
	if err != nil {
		return "", fmt.Errorf("SHOW %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return "", fmt.Errorf("SHOW %s: unexpected result", name)
	}
	return string(res[0].Rows[0][0]), nil
}

// WALSegmentSize is wal_segment_size in bytes, read with SHOW.
func (r *ReplConn) WALSegmentSize(ctx context.Context) (int64, error) {
	s, err := r.Show(ctx, "wal_segment_size")
	if err != nil {
		return 0, err
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return segmentSize(s[:i], s[i:])
}

// BaseBackupOptions are the BASE_BACKUP options gbc uses (PostgreSQL 15
// syntax; Incremental needs 17).
type BaseBackupOptions struct {
	Label string
	// Fast asks for an immediate checkpoint.
	Fast bool
	// NoWait skips waiting for the end-of-backup WAL to be archived.
	NoWait bool
	// Manifest asks for the server's backup_manifest with CRC32C checksums.
	Manifest bool
	// TablespaceMap adds a tablespace_map file to the main archive, instead
	// of symbolic links under pg_tblspc.
	TablespaceMap bool
	// Incremental asks for an incremental backup on top of the parent
	// whose manifest UploadManifest sent on this session (PostgreSQL 17+,
	// with summarize_wal = on; see CheckIncrementalSupport).
	Incremental bool
}

func (o BaseBackupOptions) sql() string {
	opts := []string{"LABEL " + quoteLiteral(o.Label)}
	if o.Fast {
		opts = append(opts, "CHECKPOINT 'fast'")
	} else {
		opts = append(opts, "CHECKPOINT 'spread'")
	}
	opts = append(opts, "WAIT "+strconv.FormatBool(!o.NoWait))
	if o.Manifest {
		opts = append(opts, "MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'")
	}
	opts = append(opts, "TABLESPACE_MAP "+strconv.FormatBool(o.TablespaceMap))
	if o.Incremental {
		opts = append(opts, "INCREMENTAL")
	}
	return "BASE_BACKUP ( " + strings.Join(opts, ", ") + " )"
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// StreamTablespace is one row of BASE_BACKUP's tablespace result set.
type StreamTablespace struct {
	OID      uint32
	Location string
	Size     int64 // -1 when the server did not estimate it
}

// SectionKind tells what the bytes of a BaseBackupStream section are.
type SectionKind int

const (
	// SectionArchive is a tar archive: the data directory or a tablespace.
	SectionArchive SectionKind = iota
	// SectionManifest is the server's backup_manifest.
	SectionManifest
)

// Section is one archive or the manifest in a BASE_BACKUP stream.
type Section struct {
	Kind SectionKind
	// Name is the archive's name: "base.tar" for the data directory,
	// "<oid>.tar" for a tablespace; empty for the manifest.
	Name string
	// Location is the tablespace's directory on the server, empty for the
	// data directory and the manifest.
	Location string
}

// BaseBackupStream reads the COPY stream of a running BASE_BACKUP: a
// sequence of sections (one tar archive per tablespace, then the manifest),
// each read like an io.Reader. It never holds more than one protocol
// message, so memory does not depend on the size of the backup.
type BaseBackupStream struct {
	r   *ReplConn
	ctx context.Context

	StartLSN    LSN
	Timeline    uint32
	Tablespaces []StreamTablespace

	buf      []byte   // unread data of the current CopyData message
	pending  *Section // the section header that ended the current section
	copyDone bool
	started  bool
	// Progress is the last byte count the server reported (PROGRESS is
	// not requested, so usually 0).
	Progress int64
}

// BaseBackup starts BASE_BACKUP and reads its start position and
// tablespace list. ctx governs the whole stream: cancelling it aborts the
// backup. When the server refuses the backup, the session stays usable;
// an incremental backup's missing prerequisites are wrapped as
// ErrWALSummarizationOff or ErrWALSummariesMissing.
func (r *ReplConn) BaseBackup(ctx context.Context, o BaseBackupOptions) (*BaseBackupStream, error) {
	if o.Incremental {
		if err := checkIncrementalVersion(r.version, r.versionString); err != nil {
			return nil, fmt.Errorf("BASE_BACKUP: %w", err)
		}
	}
	r.c.Frontend().SendQuery(&pgproto3.Query{String: o.sql()})
	if err := r.c.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	s := &BaseBackupStream{r: r, ctx: ctx}
	var cols []string
	for {
		msg, err := r.c.ReceiveMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("BASE_BACKUP: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			cols = cols[:0]
			for _, f := range m.Fields {
				cols = append(cols, string(f.Name))
			}
		case *pgproto3.DataRow:
			if err := s.startRow(cols, m.Values); err != nil {
				return nil, fmt.Errorf("BASE_BACKUP: %w", err)
			}
		case *pgproto3.CommandComplete, *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			err := baseBackupError(pgconn.ErrorResponseToPgError(m))
			if derr := r.drain(ctx); derr != nil {
				err = errors.Join(err, derr)
			}
			return nil, fmt.Errorf("BASE_BACKUP: %w", err)
		case *pgproto3.CopyOutResponse:
			if s.Timeline == 0 {
				return nil, errors.New("BASE_BACKUP: the server sent no start position")
			}
			return s, nil
		default:
			return nil, fmt.Errorf("BASE_BACKUP: unexpected %T before the data", msg)
		}
	}
}

// drain reads the rest of a failed command's answer, up to the
// ReadyForQuery that makes the session usable again.
func (r *ReplConn) drain(ctx context.Context) error {
	for {
		msg, err := r.c.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("read the end of the answer: %w", err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return nil
		}
	}
}

func (s *BaseBackupStream) startRow(cols []string, vals [][]byte) error {
	switch {
	case len(cols) == 2 && cols[0] == "recptr" && len(vals) == 2:
		lsn, tli, err := lsnRow(vals)
		if err != nil {
			return err
		}
		s.StartLSN, s.Timeline = lsn, tli
	case len(cols) == 3 && cols[0] == "spcoid" && len(vals) == 3:
		if vals[0] == nil {
			return nil // the data directory
		}
		oid, err := strconv.ParseUint(string(vals[0]), 10, 32)
		if err != nil {
			return fmt.Errorf("tablespace oid %q: %w", vals[0], err)
		}
		t := StreamTablespace{OID: uint32(oid), Location: string(vals[1]), Size: -1}
		if vals[2] != nil {
			if t.Size, err = strconv.ParseInt(string(vals[2]), 10, 64); err != nil {
				return fmt.Errorf("tablespace size %q: %w", vals[2], err)
			}
		}
		s.Tablespaces = append(s.Tablespaces, t)
	default:
		return fmt.Errorf("unexpected result columns %v", cols)
	}
	return nil
}

func lsnRow(vals [][]byte) (LSN, uint32, error) {
	lsn, err := ParseLSN(string(vals[0]))
	if err != nil {
		return 0, 0, err
	}
	tli, err := strconv.ParseUint(string(vals[1]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("timeline %q: %w", vals[1], err)
	}
	return lsn, uint32(tli), nil
}

// Next moves to the next section, skipping what is left of the current
// one. It returns io.EOF after the last section.
func (s *BaseBackupStream) Next() (Section, error) {
	for s.pending == nil {
		if s.copyDone {
			return Section{}, io.EOF
		}
		s.buf = nil
		if err := s.receive(); err != nil {
			return Section{}, err
		}
	}
	sec := *s.pending
	s.pending = nil
	s.started = true
	return sec, nil
}

// Read reads the current section's bytes; io.EOF ends the section.
func (s *BaseBackupStream) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.pending != nil || s.copyDone || !s.started {
			return 0, io.EOF
		}
		if err := s.receive(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// receive reads one message of the COPY stream. In PostgreSQL 15's
// protocol, each CopyData starts with a type byte: 'n' a new archive (its
// name and tablespace location), 'm' the manifest, 'd' data of the current
// one, 'p' a progress report.
func (s *BaseBackupStream) receive() error {
	msg, err := s.r.c.ReceiveMessage(s.ctx)
	if err != nil {
		return fmt.Errorf("BASE_BACKUP stream: %w", err)
	}
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return errors.New("BASE_BACKUP stream: empty CopyData message")
		}
		body := m.Data[1:]
		switch m.Data[0] {
		case 'n':
			name, rest, ok1 := bytes.Cut(body, []byte{0})
			loc, _, ok2 := bytes.Cut(rest, []byte{0})
			if !ok1 || !ok2 {
				return errors.New("BASE_BACKUP stream: malformed new-archive message")
			}
			s.pending = &Section{Kind: SectionArchive, Name: string(name), Location: string(loc)}
		case 'm':
			s.pending = &Section{Kind: SectionManifest}
		case 'd':
			// body points into pgconn's read buffer, valid until the next
			// ReceiveMessage, which happens only once Read consumed it.
			s.buf = body
		case 'p':
			if len(body) >= 8 {
				s.Progress = int64(binary.BigEndian.Uint64(body))
			}
		default:
			return fmt.Errorf("BASE_BACKUP stream: unknown message type %q", m.Data[0])
		}
	case *pgproto3.CopyDone:
		s.copyDone = true
	case *pgproto3.NoticeResponse:
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("BASE_BACKUP: %w", pgconn.ErrorResponseToPgError(m))
	default:
		return fmt.Errorf("BASE_BACKUP stream: unexpected %T", msg)
	}
	return nil
}

// Finish reads the end of the BASE_BACKUP response, after the last
// section: the backup's end position and timeline. It returns only once
// the server has finished the backup (and, unless NoWait, once the last WAL
// segment it needs is archived).
func (s *BaseBackupStream) Finish() (LSN, uint32, error) {
	for !s.copyDone {
		s.buf, s.pending = nil, nil
		if err := s.receive(); err != nil {
			return 0, 0, err
		}
	}
	var end LSN
	var tli uint32
	var cols []string
	for {
		msg, err := s.r.c.ReceiveMessage(s.ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("BASE_BACKUP end: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			cols = cols[:0]
			for _, f := range m.Fields {
				cols = append(cols, string(f.Name))
			}
		case *pgproto3.DataRow:
			if len(cols) != 2 || cols[0] != "recptr" || len(m.Values) != 2 {
				return 0, 0, fmt.Errorf("BASE_BACKUP end: unexpected result columns %v", cols)
			}
			if end, tli, err = lsnRow(m.Values); err != nil {
				return 0, 0, fmt.Errorf("BASE_BACKUP end: %w", err)
			}
		case *pgproto3.CommandComplete, *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return 0, 0, fmt.Errorf("BASE_BACKUP: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.ReadyForQuery:
			if tli == 0 {
				return 0, 0, errors.New("BASE_BACKUP: the server sent no end position")
			}
			return end, tli, nil
		default:
			return 0, 0, fmt.Errorf("BASE_BACKUP end: unexpected %T", msg)
		}
	}
}
