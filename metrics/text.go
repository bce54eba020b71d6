package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The Prometheus text format (version 0.0.4), written and read here by
// hand: the encoder of github.com/prometheus/common pulls protobuf and the
// client model into every binary that links this package, about 1 ms of
// package initialisation at each start, which the WAL commands' binary
// (cmd/gbc-wal) must not pay. The tests parse the output with that
// official parser.

// encode prints the families sorted by name, each family's samples sorted
// by their labels, so that a file changes only where a value does.
func encode(fams map[string]*family) []byte {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fam := fams[n]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", n, escape(fam.help, false), n, fam.typ)
		slices.SortStableFunc(fam.samples, func(x, y sample) int { return strings.Compare(labelKey(x), labelKey(y)) })
		for _, s := range fam.samples {
			b.WriteString(n)
			for i, l := range s.labels {
				sep := ","
				if i == 0 {
					sep = "{"
				}
				b.WriteString(sep + l.name + `="` + escape(l.value, true) + `"`)
			}
			if len(s.labels) > 0 {
				b.WriteString("}")
			}
			b.WriteString(" " + formatValue(s.value) + "\n")
		}
	}
	return []byte(b.String())
}

// labelKey orders samples by server first, then by their other labels.
func labelKey(s sample) string {
	var b strings.Builder
	b.WriteString(s.server())
	for _, l := range s.labels {
		b.WriteString("\xff" + l.name + "\xfe" + l.value)
	}
	return b.String()
}

// escape escapes a HELP text (backslash, newline) or a label value (and
// the double quote).
func escape(s string, quote bool) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	if quote {
		r = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	}
	return r.Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// parse reads what encode writes (and the text format's other comments,
// blank lines and timestamps, which it drops).
func parse(text string) (map[string]*family, error) {
	fams := map[string]*family{}
	get := func(name string) *family {
		f, ok := fams[name]
		if !ok {
			f = &family{name: name}
			fams[name] = f
		}
		return f
	}
	for i, line := range strings.Split(text, "\n") {
		fail := func(why string) error { return fmt.Errorf("line %d: %s", i+1, why) }
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "# HELP "):
			name, help, _ := strings.Cut(line[len("# HELP "):], " ")
			if !validMetricName(name) {
				return nil, fail("invalid metric name")
			}
			h, err := unescapeHelp(help)
			if err != nil {
				return nil, fail(err.Error())
			}
			get(name).help = h
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if !validMetricName(name) {
				return nil, fail("invalid metric name")
			}
			switch typ {
			case "gauge", "untyped":
				get(name).typ = Gauge
			case "counter":
				get(name).typ = Counter
			default:
				return nil, fail("metric type " + typ + " is not one gbc writes")
			}
		case strings.HasPrefix(line, "#"):
		default:
			name, s, err := parseSample(line)
			if err != nil {
				return nil, fail(err.Error())
			}
			f := get(name)
			f.samples = append(f.samples, s)
		}
	}
	return fams, nil
}

func parseSample(line string) (string, sample, error) {
	var s sample
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return "", s, errors.New("a sample without a value")
	}
	name, rest := line[:end], line[end:]
	if !validMetricName(name) {
		return "", s, errors.New("invalid metric name")
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 || !validLabelName(rest[:eq]) {
				return "", s, errors.New("invalid label")
			}
			l := label{name: rest[:eq]}
			rest = rest[eq+2:]
			var b strings.Builder
			for {
				if rest == "" {
					return "", s, errors.New("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\\' && rest != "" {
					switch rest[0] {
					case 'n':
						c = '\n'
					case '\\', '"':
						c = rest[0]
					default:
						return "", s, errors.New("invalid escape in a label value")
					}
					rest = rest[1:]
				}
				b.WriteByte(c)
			}
			l.value = b.String()
			s.labels = append(s.labels, l)
			rest = strings.TrimPrefix(rest, ",")
		}
		rest = rest[1:]
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return "", s, errors.New("want a value and at most a timestamp after the labels")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", s, fmt.Errorf("invalid value %q", fields[0])
	}
	s.value = v
	slices.SortFunc(s.labels, func(a, b label) int { return strings.Compare(a.name, b.name) })
	return name, s, nil
}

func unescapeHelp(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				c = '\n'
			case '\\':
				c = '\\'
			default:
				return "", errors.New("invalid escape in a HELP line")
			}
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func validMetricName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !nameRune(r, true) }) < 0 && (s[0] < '0' || s[0] > '9')
}

func validLabelName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !nameRune(r, false) }) < 0 && (s[0] < '0' || s[0] > '9')
}

func nameRune(r rune, colon bool) bool {
	return r == '_' || (colon && r == ':') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}
