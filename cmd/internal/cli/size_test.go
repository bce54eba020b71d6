package cli

import "testing"

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
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1G", "0", "1X", "1.5G", "99999999999T"} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
}
