package backupcmd

import (
	"reflect"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30,
		"1G":         1 << 30,
		"1GiB":       1 << 30,
		"1GB":        1 << 30,
		"512M":       512 << 20,
		"512MiB":     512 << 20,
		"64k":        64 << 10,
		"2T":         2 << 40,
		" 100 ":      100,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "0", "1X", "1.5G", "99999999999T"} {
		if n, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, n)
		}
	}
}

func TestParseTags(t *testing.T) {
	got, err := parseTags("env=prod, ticket=42,empty=")
	want := map[string]string{"env": "prod", "ticket": "42", "empty": ""}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseTags = %v, %v", got, err)
	}
	if got, err := parseTags(""); err != nil || got != nil {
		t.Errorf("parseTags(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"novalue", "=x", "a=1,a=2", "a=1,,b=2"} {
		if _, err := parseTags(bad); err == nil {
			t.Errorf("parseTags(%q) succeeded", bad)
		}
	}
}
