package bucket

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gbc-backup/gbc/cloud"
)

// PartSize is opts.PartSize, or cloud.DefaultPartSize when unset.
func PartSize(opts cloud.Options) int64 {
	if opts.PartSize > 0 {
		return opts.PartSize
	}
	return cloud.DefaultPartSize
}

// Concurrency is opts.Concurrency, or cloud.DefaultConcurrency when unset.
func Concurrency(opts cloud.Options) int {
	if opts.Concurrency > 0 {
		return opts.Concurrency
	}
	return cloud.DefaultConcurrency
}

// minPartSize is the smallest part PartSizeFor picks: S3's minimum for
// every part but the last, and a multiple of GCS's 256 KiB chunk unit.
const minPartSize = 5 << 20

// PartSizeFor picks a part size for an object of about hint bytes (0 when
// unknown) so that it fits in maxParts parts, with 10% headroom since the
// hint may be an estimate (e.g. before compression). Whole MiB. An object
// hinted smaller than base gets a part just big enough to go up in one
// request, at least minPartSize: the part is a buffer allocated per upload,
// and a 3 MiB compressed WAL segment should not cost 16 MiB of memory
// (with several pushed at once, that was most of a pusher's footprint).
// Larger objects get base, or more when base would need too many parts.
func PartSizeFor(base, hint int64, maxParts int64) int64 {
	if hint <= 0 {
		return base
	}
	if small := roundMiB(hint + hint/10 + 1); small < base {
		return max(small, min(base, minPartSize))
	}
	fit := maxParts * 9 / 10
	return max(base, roundMiB((hint+fit-1)/fit))
}

// roundMiB rounds n up to a whole MiB.
func roundMiB(n int64) int64 { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

// ClassifyStatus maps an HTTP status to one of cloud's sentinels, or nil:
// what an SDK provider falls back on when its error carries no code it
// knows.
func ClassifyStatus(code int) error {
	switch {
	case code == http.StatusNotFound:
		return cloud.ErrNotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return cloud.ErrPermission
	case code == http.StatusPreconditionFailed:
		return cloud.ErrExists
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return cloud.ErrTransient
	}
	return nil
}

// Status renders an HTTP status for an error's summary: "HTTP 404", or ""
// for none.
func Status(code int) string {
	if code == 0 {
		return ""
	}
	return fmt.Sprintf("HTTP %d", code)
}

// Join joins the non-empty parts of a summary with spaces, each once.
func Join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
