package restore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gbc-backup/gbc/catalog"
)

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 11, 24, 20, 48, 42, 0, time.UTC)
	for _, s := range []string{
		"2026-11-24T20:48:42Z",
		"2026-11-24T21:48:42+01:00",
		"2026-11-24 21:48:42+01",
		"2026-11-24 21:48:42+01:00",
		"2026-11-24 20:48:42 UTC",
		"2026-11-24 20:48:42.000000+00",
		" 2026-11-24 15:48:42-05 ",
	} {
		got, err := ParseTime(s)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", s, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"2026-11-24 20:48:42", "yesterday", "", "2026-11-24"} {
		if _, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) accepted a time without a zone", s)
		}
	}
	got, _ := ParseTime("2026-11-24 21:48:42.123456789+01")
	if s := FormatTime(got); s != "2026-11-24 20:48:42.123456+00" {
		t.Errorf("FormatTime = %q", s)
	}
}

func TestTargetCheck(t *testing.T) {
	yes := true
	tm := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ok := []Target{
		{},
		{Time: tm, Action: "promote", Inclusive: &yes, Timeline: "latest"},
		{LSN: 5, Timeline: "3"},
		{XID: "1234", Inclusive: &yes},
		{Name: "before-upgrade", Action: "pause"},
		{Immediate: true, Action: "shutdown"},
		{Timeline: "current"},
	}
	for _, tg := range ok {
		if err := tg.Check(); err != nil {
			t.Errorf("Check(%+v): %v", tg, err)
		}
	}
	bad := map[string]Target{
		"two targets":         {Time: tm, LSN: 4},
		"xid not a number":    {XID: "abc"},
		"inclusive alone":     {Inclusive: &yes},
		"inclusive with name": {Name: "x", Inclusive: &yes},
		"unknown action":      {Immediate: true, Action: "stop"},
		"action alone":        {Action: "promote"},
		"timeline zero":       {Timeline: "0"},
		"timeline word":       {Timeline: "newest"},
	}
	for what, tg := range bad {
		if err := tg.Check(); err == nil {
			t.Errorf("%s: Check accepted %+v", what, tg)
		}
	}
}

func TestTargetReachable(t *testing.T) {
	end := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	b := &catalog.Backup{ID: "20261124T195500Z", EndTime: end, EndLSN: "0/5000100", Timeline: 2}
	cases := []struct {
		t    Target
		fail bool
	}{
		{Target{}, false},
		{Target{Time: end}, false},
		{Target{Time: end.Add(time.Second)}, false},
		{Target{Time: end.Add(-time.Second)}, true},
		{Target{LSN: 0x5000100}, false},
		{Target{LSN: 0x50000FF}, true},
		{Target{XID: "7"}, false},
		{Target{Name: "x"}, false},
		{Target{Timeline: "2"}, false},
		{Target{Timeline: "1"}, true},
		{Target{Timeline: "latest"}, false},
	}
	for _, c := range cases {
		err := c.t.Reachable(b)
		if (err != nil) != c.fail {
			t.Errorf("Reachable(%+v) = %v, want failure %v", c.t, err, c.fail)
		}
		if err != nil && !errors.Is(err, ErrTarget) {
			t.Errorf("Reachable(%+v) = %v, not ErrTarget", c.t, err)
		}
		if err != nil && !strings.Contains(err.Error(), "gbc-backup-list") {
			t.Errorf("Reachable error %q does not say how to choose another backup", err)
		}
	}
	if (Target{Time: end}).Before(b) != true || (Target{Time: end.Add(-1)}).Before(b) != false {
		t.Error("Before by time")
	}
	if (Target{LSN: 0x5000100}).Before(b) != true || (Target{LSN: 0x5000000}).Before(b) != false {
		t.Error("Before by LSN")
	}
	if !(Target{Name: "x"}).Before(b) {
		t.Error("a named target accepts every backup")
	}
}
