package backupcmd

import (
	"reflect"
	"testing"
)

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
