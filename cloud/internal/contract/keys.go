package contract

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits shared by every provider, chosen as the strictest among them so
// that whatever works on one store works on all of them.
const (
	// MaxKeyBytes is S3's and GCS's limit on a key's length.
	MaxKeyBytes = 1024
	// maxMetadataBytes bounds user metadata (keys plus values): S3 allows
	// 2 KiB in total, less than GCS and Azure.
	maxMetadataBytes = 2048
)

// ErrInvalid marks a caller's mistake (a malformed key, prefix or metadata).
// It is never retried and never mistaken for a store failure.
var ErrInvalid = errors.New("invalid argument")

// CheckKey enforces the key syntax every provider stores unchanged and that
// maps one to one onto a path below file://'s root: slash-separated
// segments, none empty, none "." or "..", none starting with "." (file://
// keeps its temporary files under such names), and none of the characters
// checkChars refuses.
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: key longer than %d bytes: %.40q", ErrInvalid, MaxKeyBytes, key)
	}
	if err := checkChars(key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: key %q has an empty segment (leading, trailing or double slash)", ErrInvalid, key)
		case seg[0] == '.':
			return fmt.Errorf("%w: key %q has a segment starting with a dot", ErrInvalid, key)
		}
	}
	return nil
}

// CheckPrefix accepts what List takes: "" (everything) or the start of a
// key, possibly ending in the middle of a segment or with a slash.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkChars(prefix); err != nil {
		return err
	}
	if prefix[0] == '/' || strings.Contains(prefix, "//") {
		return fmt.Errorf("%w: list prefix %q has an empty segment", ErrInvalid, prefix)
	}
	return nil
}

// checkChars refuses what some provider would store under another name:
// gocloud escapes control characters everywhere and `\ " # % ?` on Azure
// into "__0x<hex>__" sequences (which would also change the listing
// order), and escapes any text that looks like such a sequence.
func checkChars(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: key %q is not valid UTF-8", ErrInvalid, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`\"#%?`, r) {
			return fmt.Errorf("%w: key %q contains a control character or one of \\ \" # %% ?", ErrInvalid, s)
		}
	}
	if strings.Contains(s, "__0x") {
		return fmt.Errorf("%w: key %q contains \"__0x\", which the providers' escaping reserves", ErrInvalid, s)
	}
	return nil
}

// CheckMetadata enforces PutOptions.Metadata's contract: keys of lower-case
// ASCII letters and digits (the subset S3, GCS and Azure all keep as they
// are; Azure wants C# identifiers, which gocloud escapes for a leading
// digit), values of printable UTF-8 (they travel as HTTP headers), and a
// total within S3's limit.
func CheckMetadata(md map[string]string) error {
	total := 0
	for k, v := range md {
		if k == "" {
			return fmt.Errorf("%w: empty metadata key", ErrInvalid)
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return fmt.Errorf("%w: metadata key %q: only lower-case ASCII letters and digits are allowed", ErrInvalid, k)
			}
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: metadata %q: value is not valid UTF-8", ErrInvalid, k)
		}
		for _, r := range v {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("%w: metadata %q: value contains a control character", ErrInvalid, k)
			}
		}
		total += len(k) + len(v)
	}
	if total > maxMetadataBytes {
		return fmt.Errorf("%w: metadata takes %d bytes, more than the %d every provider accepts", ErrInvalid, total, maxMetadataBytes)
	}
	return nil
}
