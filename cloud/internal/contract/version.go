package contract

import (
	"fmt"
	"io"
	"time"
)

// Version identifies the version of an object a stream reads, as the
// response that opened it said. The retry wrapper compares it before
// resuming a broken download, so that the resumed bytes come from the same
// object and not from one written meanwhile under the same key.
type Version struct {
	Size    int64
	ModTime time.Time
	Tag     string // ETag (S3, Azure), generation (GCS), a counter (mem); "" if none
}

// Same tells whether v and w are the same version of an object.
func (v Version) Same(w Version) bool {
	return v.Size == w.Size && v.ModTime.Equal(w.ModTime) && v.Tag == w.Tag
}

// Versioned is implemented by the streams that Get and GetRange return
// when they know the version they read: every provider's, and every
// wrapper's that passes a provider's stream on.
type Versioned interface {
	ObjectVersion() (Version, bool)
}

// VersionOf returns the version r reads, if it says.
func VersionOf(r io.Reader) (Version, bool) {
	if v, ok := r.(Versioned); ok {
		return v.ObjectVersion()
	}
	return Version{}, false
}

// CheckRange refuses what no provider can read.
func CheckRange(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrInvalid, offset)
	}
	return nil
}
