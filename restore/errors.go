package restore

import "errors"

// Error classes of Restore, so that a caller maps a refusal to its own
// answer (an exit code, an HTTP status) with errors.Is and never by
// reading messages. Each error Restore returns is in at most one class;
// one in none is a failure (or carries the store's own class, such as
// cloud.ErrNotFound for an unknown backup, or the system's, such as
// ENOSPC).
var (
	// ErrInvalid: the request cannot be carried out as given (options
	// that conflict, a target the backup cannot reach, a relocation that
	// cannot be done, a backup of the other method). Nothing was written.
	ErrInvalid = errors.New("invalid restore request")
	// ErrRefused: the restore was refused to protect data: a directory
	// that holds files or that another restore is writing, WAL in the
	// store of another cluster, snapshot disks not mounted as recorded;
	// for a delta restore, a directory that is not a data directory of
	// the backup's system, or that a server runs on (DeltaRefusal).
	ErrRefused = errors.New("restore refused")
	// ErrMissing: something the restore needs is not there: the backup
	// is not DONE, its WAL is not in the store, a disk made from its
	// snapshots is not found.
	ErrMissing = errors.New("needed for the restore but missing")
)

// classified puts err in a class without changing its message: the
// message is the contract with the operator, the class the one with the
// caller.
type classified struct {
	class, err error
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.class, e.err} }

func classify(class, err error) error {
	if err == nil {
		return nil
	}
	return &classified{class: class, err: err}
}

func invalid(err error) error { return classify(ErrInvalid, err) }
func refused(err error) error { return classify(ErrRefused, err) }
func missing(err error) error { return classify(ErrMissing, err) }
