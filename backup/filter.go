package backup

// The rules below are pg_basebackup's (src/backend/backup/basebackup.c,
// sendDir), followed exactly so that a gbc backup holds the same files as
// one taken by the server itself: the manifest, pg_verifybackup and
// PostgreSQL's own expectations after a restore then all agree.

// excludeDirContents names directories whose contents are removed or
// recreated at server start. The directory itself is kept, empty, so that
// it exists with the right permissions after a restore. Matched by name at
// any depth, as PostgreSQL does.
var excludeDirContents = [...]string{
	"pg_stat_tmp", // PG_STAT_TMP_DIR: extensions such as pg_stat_statements write there
	"pg_replslot", // slots are not useful on a restored copy (backup.sgml)
	"pg_dynshmem", // removed at start (dsm_cleanup_for_mmap)
	"pg_notify",   // removed at start (AsyncShmemInit)
	"pg_serial",   // only kept for debugging (SerialInit)
	"pg_snapshots",
	"pg_subtrans", // zeroed at start (StartupSUBTRANS)
}

// excludeFiles names files never backed up, matched by name at any depth.
var excludeFiles = [...]struct {
	name   string
	prefix bool
}{
	{"postgresql.auto.conf.tmp", false}, // ALTER SYSTEM's temporary file
	{"current_logfiles.tmp", false},     // the logging collector's temporary file
	{"pg_internal.init", true},          // relation cache, rebuilt at start (with its temporary files)
	// A running cluster that takes an online backup has none of these;
	// excluded in case, and because the backup writes its own.
	{"backup_label", false},
	{"tablespace_map", false},
	// It belongs to the backup this server was restored from, not to this one.
	{"backup_manifest", false},
	{"postmaster.pid", false},
	{"postmaster.opts", false},
}

// tempFilePrefix (PG_TEMP_FILE_PREFIX) starts the names of temporary files
// and directories (pgsql_tmp) anywhere in the data directory.
const tempFilePrefix = "pgsql_tmp"

// Paths the walk treats specially, relative to the data directory.
const (
	walDir      = "pg_wal"
	archiveDir  = "pg_wal/archive_status"
	tblspcDir   = "pg_tblspc"
	controlFile = "global/pg_control"
	baseDir     = "base"
	labelFile   = "backup_label"
	spcMapFile  = "tablespace_map"
	// oidChars is OIDCHARS: the most digits a relation file number has.
	oidChars = 10
)

// forkNames lists the fork suffixes a relation file name may carry
// (forkNames[1:] in PostgreSQL: the main fork has no suffix).
var forkNames = [...]string{"fsm", "vm", "init"}

func excludedFile(name string) bool {
	for _, x := range excludeFiles {
		if name == x.name || (x.prefix && len(name) >= len(x.name) && name[:len(x.name)] == x.name) {
			return true
		}
	}
	return false
}

func excludedDirContents(name string) bool {
	for _, x := range excludeDirContents {
		if name == x {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// forkChars returns the length of the fork name s starts with, or 0
// (forkname_chars: a prefix match, so the caller checks what follows).
func forkChars(s string) (n int, fork string) {
	for _, f := range forkNames {
		if len(s) >= len(f) && s[:len(f)] == f {
			return len(f), f
		}
	}
	return 0, ""
}

// segmentSuffix reports whether s (from its start) is empty or "." and one
// or more digits, the only things allowed after a relation's fork.
func segmentSuffix(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != '.' || len(s) == 1 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// parseRelationFile recognises the file of a permanent or unlogged relation:
// "<relfilenode>[_<fork>][.<segment>]" (parse_filename_for_nontemp_relation).
// It returns the number's digits and the fork ("" for the main fork).
func parseRelationFile(name string) (relNumber, fork string, ok bool) {
	pos := 0
	for pos < len(name) && isDigit(name[pos]) {
		pos++
	}
	if pos == 0 || pos > oidChars {
		return "", "", false
	}
	relNumber = name[:pos]
	if pos < len(name) && name[pos] == '_' {
		n, f := forkChars(name[pos+1:])
		if n == 0 {
			return "", "", false
		}
		fork = f
		pos += n + 1
	}
	if !segmentSuffix(name[pos:]) {
		return "", "", false
	}
	return relNumber, fork, true
}

// looksLikeTempRel recognises a temporary relation's file:
// "t<backend>_<relfilenode>[_<fork>][.<segment>]" (looks_like_temp_rel_name).
// Temporary relations die with their session, so a restore never needs them.
func looksLikeTempRel(name string) bool {
	if len(name) == 0 || name[0] != 't' {
		return false
	}
	pos := 1
	for pos < len(name) && isDigit(name[pos]) {
		pos++
	}
	if pos == 1 || pos >= len(name) || name[pos] != '_' {
		return false
	}
	pos++
	start := pos
	for pos < len(name) && isDigit(name[pos]) {
		pos++
	}
	if pos == start {
		return false
	}
	if pos < len(name) && name[pos] == '_' {
		n, _ := forkChars(name[pos+1:])
		if n == 0 {
			return false
		}
		pos += n + 1
	}
	return segmentSuffix(name[pos:])
}

// isDatabaseDir tells whether rel (slash-separated, relative to the archive
// root) is a database directory, the only place relations live: base/<oid>
// in the data directory, <version dir>/<oid> in a tablespace.
func isDatabaseDir(rel, versionDir string) bool {
	i := len(rel) - 1
	for i >= 0 && rel[i] != '/' {
		i--
	}
	if i < 0 || i == len(rel)-1 {
		return false
	}
	for _, c := range []byte(rel[i+1:]) {
		if !isDigit(c) {
			return false
		}
	}
	parent := rel[:i]
	return parent == baseDir || (versionDir != "" && parent == versionDir)
}
