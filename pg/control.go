package pg

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// ControlFile is pg_control's path in a data directory.
const ControlFile = "global/pg_control"

// maxControlFile bounds what ReadControlFile reads: the file is
// PG_CONTROL_FILE_SIZE (8 KiB) on every release.
const maxControlFile = 64 << 10

// controlHead is how many bytes of pg_control ParseControl needs.
const controlHead = 52

// ControlData is the head of pg_control (ControlFileData), the fields that
// have kept their offsets since PostgreSQL 9.x: what tells one cluster
// from another and where its last checkpoint is.
type ControlData struct {
	SystemIdentifier string // as pg_controldata and IDENTIFY_SYSTEM print it
	ControlVersion   uint32 // pg_control_version
	CatalogVersion   uint32 // catalog_version_no
	State            uint32 // DBState: 1 shut down, 2 shut down in recovery, 6 in production...
	Checkpoint       LSN    // the latest checkpoint record
	Redo             LSN    // its redo point
	Timeline         uint32 // its timeline
}

// ParseControl reads ControlData from the start of a pg_control file. The
// file is in the server's byte order; gbc runs on little-endian machines
// only, as the servers it backs up.
func ParseControl(b []byte) (*ControlData, error) {
	if len(b) < controlHead {
		return nil, fmt.Errorf("pg_control is %d bytes: too short for a control file", len(b))
	}
	le := binary.LittleEndian
	return &ControlData{
		SystemIdentifier: strconv.FormatUint(le.Uint64(b[0:8]), 10),
		ControlVersion:   le.Uint32(b[8:12]),
		CatalogVersion:   le.Uint32(b[12:16]),
		State:            le.Uint32(b[16:20]),
		// 20..24 is padding before the 8-byte aligned pg_time_t at 24.
		Checkpoint: LSN(le.Uint64(b[32:40])),
		Redo:       LSN(le.Uint64(b[40:48])),
		Timeline:   le.Uint32(b[48:52]),
	}, nil
}

// ReadControlFile reads a data directory's pg_control, refusing anything
// bigger than a control file can be, and returns it with its file info.
func ReadControlFile(dataDir string) ([]byte, fs.FileInfo, error) {
	path := filepath.Join(dataDir, ControlFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if info.Size() > maxControlFile {
		return nil, nil, fmt.Errorf("%s is %d bytes: not a control file", path, info.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxControlFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, info, nil
}
