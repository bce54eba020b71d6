package retention

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a retention policy.
type Kind int

const (
	// Redundancy keeps the newest N backups.
	Redundancy Kind = iota + 1
	// RecoveryWindow keeps what is needed to recover to any point of the
	// last N days, weeks or months.
	RecoveryWindow
)

// Unit of a recovery window.
type Unit int

const (
	Days Unit = iota + 1
	Weeks
	Months
)

// days is the length of one unit in days. A month is 31 days, as in barman,
// so that a window "of 1 MONTH" always covers a whole calendar month.
func (u Unit) days() int {
	switch u {
	case Weeks:
		return 7
	case Months:
		return 31
	}
	return 1
}

func (u Unit) String() string {
	switch u {
	case Days:
		return "DAYS"
	case Weeks:
		return "WEEKS"
	case Months:
		return "MONTHS"
	}
	return "Unit(" + strconv.Itoa(int(u)) + ")"
}

// maxPolicyValue bounds N. Larger values are typos, and a bound keeps the
// window arithmetic far from any overflow (1e6 months is ~85,000 years,
// which time.Time.AddDate still handles exactly).
const maxPolicyValue = 1_000_000

// Policy is a parsed retention policy. The zero Policy is invalid.
type Policy struct {
	Kind  Kind
	Value int  // N: backups for Redundancy, units for RecoveryWindow
	Unit  Unit // RecoveryWindow only
}

// ParsePolicy reads barman's syntax, case-insensitively and with any
// whitespace between words:
//
//	REDUNDANCY n
//	RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS   (DAY, WEEK, MONTH also accepted)
//
// n must be a positive decimal integer. Zero is refused: REDUNDANCY 0 would
// mean "delete every backup", which is never what a cron job should do.
func ParsePolicy(s string) (Policy, error) {
	f := strings.Fields(strings.ToUpper(s))
	bad := func(why string) (Policy, error) {
		return Policy{}, fmt.Errorf("invalid retention policy %q: %s; use \"REDUNDANCY n\" or \"RECOVERY WINDOW OF n DAYS|WEEKS|MONTHS\"", s, why)
	}
	switch {
	case len(f) == 2 && f[0] == "REDUNDANCY":
		n, err := parseValue(f[1])
		if err != nil {
			return bad(err.Error())
		}
		return Policy{Kind: Redundancy, Value: n}, nil
	case len(f) == 5 && f[0] == "RECOVERY" && f[1] == "WINDOW" && f[2] == "OF":
		n, err := parseValue(f[3])
		if err != nil {
			return bad(err.Error())
		}
		var u Unit
		switch f[4] {
		case "DAY", "DAYS":
			u = Days
		case "WEEK", "WEEKS":
			u = Weeks
		case "MONTH", "MONTHS":
			u = Months
		default:
			return bad(fmt.Sprintf("unknown unit %q", f[4]))
		}
		return Policy{Kind: RecoveryWindow, Value: n, Unit: u}, nil
	}
	return bad("unrecognised syntax")
}

// parseValue accepts plain decimal digits only: strconv.Atoi alone would
// also take a sign, and "+2" or "-0" are not barman syntax.
func parseValue(s string) (int, error) {
	if s == "" || len(s) > 7 {
		return 0, fmt.Errorf("%q is not a number from 1 to %d", s, maxPolicyValue)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a number from 1 to %d", s, maxPolicyValue)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPolicyValue {
		return 0, fmt.Errorf("%q is not a number from 1 to %d", s, maxPolicyValue)
	}
	return n, nil
}

// String prints the policy in canonical barman syntax; ParsePolicy reads it
// back to the same Policy.
func (p Policy) String() string {
	switch p.Kind {
	case Redundancy:
		return fmt.Sprintf("REDUNDANCY %d", p.Value)
	case RecoveryWindow:
		return fmt.Sprintf("RECOVERY WINDOW OF %d %s", p.Value, p.Unit)
	}
	return "invalid policy"
}

// WindowStart is the oldest point a RecoveryWindow policy must keep
// recoverable at time now.
func (p Policy) WindowStart(now time.Time) time.Time {
	return now.AddDate(0, 0, -p.Value*p.Unit.days())
}
