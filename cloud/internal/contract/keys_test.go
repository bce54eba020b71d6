package contract

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a", "a/b", "wals/0000000100000000/000000010000000000000003.zst", "base/20261124T214842Z/backup.json", "a.b/c-d_e", "ünï"} {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", ".", "..", "../a", "a/..", "a/./b", ".tmp", "a/.x", "a\x00b", "a\nb", "a\\b", "\xff", "a#b", "a?b", "a%b", "a\"b", "__0x2f__", strings.Repeat("k", MaxKeyBytes+1)} {
		if err := CheckKey(k); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalid", k, err)
		}
	}
}

func TestCheckMetadata(t *testing.T) {
	if err := CheckMetadata(map[string]string{"sha256": "abc", "0size": "12", "x": ""}); err != nil {
		t.Errorf("valid metadata refused: %v", err)
	}
	for _, md := range []map[string]string{
		{"Sha": "x"}, {"a-b": "x"}, {"a_b": "x"}, {"": "x"}, {"é": "x"},
		{"k": "line\nbreak"}, {"k": "\xff"},
		{"k": strings.Repeat("v", maxMetadataBytes)},
	} {
		if err := CheckMetadata(md); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckMetadata(%q) = %v, want ErrInvalid", md, err)
		}
	}
}
