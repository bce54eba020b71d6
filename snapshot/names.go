package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// cleanName maps s onto a provider's name rules: characters outside ok
// become '-', the name starts with a letter or digit as required, and a
// name longer than max is cut and given a short hash of the whole, so that
// two long names that share a beginning stay distinct.
func cleanName(s string, max int, lower bool, ok func(r rune) bool) string {
	if lower {
		s = strings.ToLower(s)
	}
	var b strings.Builder
	for _, r := range s {
		if ok(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-_.")
	if out == "" {
		out = "gbc"
	}
	if len(out) > max {
		sum := sha256.Sum256([]byte(s))
		h := hex.EncodeToString(sum[:4])
		out = strings.TrimRight(out[:max-len(h)-1], "-_.") + "-" + h
	}
	return out
}

func isLowerAlnum(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }

// gcpName follows GCE resource names: [a-z]([-a-z0-9]{0,61}[a-z0-9])?.
func gcpName(s string) string {
	n := cleanName(s, 63, true, func(r rune) bool { return isLowerAlnum(r) || r == '-' })
	if n[0] < 'a' || n[0] > 'z' {
		n = cleanName("s-"+n, 63, true, func(r rune) bool { return isLowerAlnum(r) || r == '-' })
	}
	return n
}

// gcpLabels follows GCE label rules: lower-case keys and values of at most
// 63 letters, digits, '_' and '-', keys starting with a letter. Tags are
// lower-cased rather than refused, since every other provider takes them
// as given.
func gcpLabels(tags map[string]string) map[string]string {
	ok := func(r rune) bool { return isLowerAlnum(r) || r == '-' || r == '_' }
	labels := make(map[string]string, len(tags))
	for k, v := range tags {
		key := cleanName(k, 63, true, ok)
		if key[0] < 'a' || key[0] > 'z' {
			key = cleanName("t-"+key, 63, true, ok)
		}
		val := ""
		if v != "" {
			val = cleanName(v, 63, true, ok)
		}
		labels[key] = val
	}
	return labels
}

// azureName follows Azure snapshot names: at most 80 letters, digits, '_',
// '.' and '-', starting with a letter or digit.
func azureName(s string) string {
	return cleanName(s, 80, false, func(r rune) bool {
		return isLowerAlnum(r) || r >= 'A' && r <= 'Z' || r == '_' || r == '.' || r == '-'
	})
}

// SnapshotName is the name of the snapshot of one disk in one backup:
// unique per server, backup and disk, and telling an operator browsing the
// console what it is.
func SnapshotName(server, backupID, disk string) string {
	return strings.ToLower(fmt.Sprintf("%s-%s-%s", server, backupID, lastSegment(disk)))
}

func lastSegment(s string) string { return s[strings.LastIndex(s, "/")+1:] }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
