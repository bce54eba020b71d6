package retention

import (
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		err  bool
	}{
		{in: "REDUNDANCY 2", want: Policy{Kind: Redundancy, Value: 2}},
		{in: "  redundancy\t10 ", want: Policy{Kind: Redundancy, Value: 10}},
		{in: "Redundancy 1", want: Policy{Kind: Redundancy, Value: 1}},
		{in: "RECOVERY WINDOW OF 7 DAYS", want: Policy{Kind: RecoveryWindow, Value: 7, Unit: Days}},
		{in: "recovery window of 1 day", want: Policy{Kind: RecoveryWindow, Value: 1, Unit: Days}},
		{in: "Recovery  Window Of 2 weeks", want: Policy{Kind: RecoveryWindow, Value: 2, Unit: Weeks}},
		{in: "RECOVERY WINDOW OF 3 MONTH", want: Policy{Kind: RecoveryWindow, Value: 3, Unit: Months}},
		{in: "RECOVERY WINDOW OF 1000000 DAYS", want: Policy{Kind: RecoveryWindow, Value: 1000000, Unit: Days}},
		{in: "", err: true},
		{in: "REDUNDANCY", err: true},
		{in: "REDUNDANCY 0", err: true},
		{in: "REDUNDANCY -1", err: true},
		{in: "REDUNDANCY +1", err: true},
		{in: "REDUNDANCY 1.5", err: true},
		{in: "REDUNDANCY 0x10", err: true},
		{in: "REDUNDANCY 1000001", err: true},
		{in: "REDUNDANCY 99999999999999999999", err: true},
		{in: "REDUNDANCY 2 3", err: true},
		{in: "RECOVERY WINDOW 7 DAYS", err: true},
		{in: "RECOVERY WINDOW OF 7", err: true},
		{in: "RECOVERY WINDOW OF 7 YEARS", err: true},
		{in: "RECOVERY WINDOW OF 0 DAYS", err: true},
		{in: "RECOVERY WINDOW OF seven DAYS", err: true},
		{in: "RECOVERY WINDOW OF 7 DAYS extra", err: true},
		{in: "REDUNDANCY ２", err: true}, // a full-width digit is not a digit here
	}
	for _, tt := range tests {
		got, err := ParsePolicy(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("ParsePolicy(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestPolicyStringRoundTrip(t *testing.T) {
	for _, s := range []string{"REDUNDANCY 3", "RECOVERY WINDOW OF 7 DAYS", "RECOVERY WINDOW OF 2 WEEKS", "RECOVERY WINDOW OF 1 MONTHS"} {
		p, err := ParsePolicy(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != s {
			t.Errorf("String() = %q, want %q", p.String(), s)
		}
	}
}

func TestWindowStart(t *testing.T) {
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		p    string
		want time.Time
	}{
		{"RECOVERY WINDOW OF 1 DAYS", time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)},
		{"RECOVERY WINDOW OF 2 WEEKS", time.Date(2026, 3, 17, 12, 0, 0, 0, time.UTC)},
		// A month is 31 days (barman), not a calendar month.
		{"RECOVERY WINDOW OF 1 MONTHS", time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)},
	} {
		p, err := ParsePolicy(tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.WindowStart(now); !got.Equal(tt.want) {
			t.Errorf("%s: WindowStart = %s, want %s", tt.p, got, tt.want)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"REDUNDANCY 2", "recovery window of 3 weeks", "RECOVERY WINDOW OF 1 MONTH", "REDUNDANCY 0", "", "REDUNDANCY 1000000"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		if p.Value < 1 || p.Value > maxPolicyValue {
			t.Fatalf("ParsePolicy(%q) accepted value %d", s, p.Value)
		}
		q, err := ParsePolicy(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePolicy(%q) = %v, whose String %q parses to %v, %v", s, p, p.String(), q, err)
		}
		if p.Kind == RecoveryWindow && !p.WindowStart(now).Before(now) {
			t.Fatalf("%v: window start %s not before now", p, p.WindowStart(now))
		}
	})
}
