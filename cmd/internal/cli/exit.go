package cli

import (
	"errors"
	"fmt"

	"github.com/gbc-backup/gbc/cloud"
)

// Exit codes are a contract with PostgreSQL and with scripts; the README
// documents them. None is above 125 because PostgreSQL treats a
// restore_command status above 125 as fatal, and only gbc-wal-restore may
// use that on purpose (ExitAbortRecovery).
const (
	ExitOK       = 0
	ExitFailure  = 1 // the operation failed; for gbc-wal-restore: the file is not in the store
	ExitUsage    = 2 // bad option, argument or URL
	ExitStore    = 3 // the store cannot be used: credentials, permission, missing bucket
	ExitConflict = 4 // refused to protect data: different WAL content, wrong system identifier, foreign WAL
	ExitNotFound = 5 // unknown server, backup or file
	ExitNoSpace  = 6 // the local disk is full

	// ExitAbortRecovery is returned only by gbc-wal-restore when a file
	// could not be fetched for a reason other than its absence (the store is
	// unreachable after retries, a checksum mismatch). PostgreSQL stops
	// recovery on a status above 125 instead of taking the failure for the
	// end of the archive and promoting too early.
	ExitAbortRecovery = 126
)

// ExitError carries an exit code with the error that caused it.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err so that the command ends with code.
func Exit(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// Exitf is Exit with a formatted message.
func Exitf(code int, format string, args ...any) error {
	return Exit(code, fmt.Errorf(format, args...))
}

// Quiet ends the command with code and prints nothing more: the command
// has reported on stdout already, as gbc-status does for its warning and
// critical states, which are results and not errors.
func Quiet(code int) error { return &ExitError{Code: code, Err: errQuiet} }

var errQuiet = errors.New("exit without a message")

// Usagef reports a bad option or argument.
func Usagef(format string, args ...any) error {
	return Exit(ExitUsage, fmt.Errorf(format, args...))
}

// CodeOf maps an error to its exit code: an explicit ExitError wins,
// otherwise the store's error class decides.
func CodeOf(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, cloud.ErrPermission):
		return ExitStore
	case errors.Is(err, cloud.ErrNoBucket):
		// Checked before ErrNotFound, which it also carries: a missing
		// bucket means the store cannot be used, not an unknown file.
		return ExitStore
	case errors.Is(err, cloud.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, cloud.ErrExists):
		return ExitConflict
	case isNoSpace(err):
		return ExitNoSpace
	}
	return ExitFailure
}
