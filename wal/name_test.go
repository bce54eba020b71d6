package wal

import (
	"errors"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		want Name
		bad  bool
	}{
		{in: "000000010000000000000003", want: Name{Kind: Segment, TLI: 1, Log: 0, Seg: 3}},
		{in: "0000000A00000001000000FF", want: Name{Kind: Segment, TLI: 10, Log: 1, Seg: 0xFF}},
		{in: "FFFFFFFFFFFFFFFF00000FFF", want: Name{Kind: Segment, TLI: 0xFFFFFFFF, Log: 0xFFFFFFFF, Seg: 0xFFF}},
		{in: "000000010000000000000003.partial", want: Name{Kind: Partial, TLI: 1, Seg: 3}},
		{in: "000000010000000000000002.00000028.backup", want: Name{Kind: Backup, TLI: 1, Seg: 2, Offset: 0x28}},
		{in: "00000002.history", want: Name{Kind: History, TLI: 2}},
		{in: "0000001F.history", want: Name{Kind: History, TLI: 31}},

		{in: "", bad: true},
		{in: "00000001000000000000003", bad: true},                  // 23 digits
		{in: "0000000100000000000000030", bad: true},                // 25 digits
		{in: "00000001000000000000000a", bad: true},                 // lower case
		{in: "000000000000000000000003", bad: true},                 // timeline 0
		{in: "000000010000000000001000", bad: true},                 // low half beyond any segment size
		{in: "00000001000000000000000G", bad: true},                 // not hex
		{in: "+00000010000000000000003", bad: true},                 // sign
		{in: "000000010000000000000003.partia", bad: true},          // suffix
		{in: "000000010000000000000003.PARTIAL", bad: true},         // suffix case
		{in: "000000010000000000000002.0000028.backup", bad: true},  // short offset
		{in: "000000010000000000000002.0000002g.backup", bad: true}, // offset hex
		{in: "000000010000000000000002x00000028.backup", bad: true}, // separator
		{in: "00000000.history", bad: true},
		{in: "0000002.history", bad: true},
		{in: "0000000g.history", bad: true},
		{in: "RECOVERYXLOG", bad: true},
		{in: "../000000010000000000000003", bad: true},
		{in: "000000010000000000000003.zst", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseName(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseName(%q) = %+v, want an error", tt.in, got)
			} else if !errors.Is(err, ErrInvalidName) {
				t.Errorf("ParseName(%q) error %v does not wrap ErrInvalidName", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseName(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("ParseName(%q).String() = %q", tt.in, s)
		}
	}
}

func TestSegmentArithmetic(t *testing.T) {
	tests := []struct {
		name    string
		size    int64
		segno   uint64
		lsn     uint64
		next    string
		invalid bool // name not valid for this size
	}{
		{name: "000000010000000000000003", size: 16 << 20, segno: 3, lsn: 0x3000000, next: "000000010000000000000004"},
		{name: "0000000100000000000000FF", size: 16 << 20, segno: 0xFF, lsn: 0xFF000000, next: "000000010000000100000000"},
		{name: "000000020000000100000000", size: 16 << 20, segno: 0x100, lsn: 0x100000000, next: "000000020000000100000001"},
		{name: "000000010000000000000FFF", size: 1 << 20, segno: 0xFFF, lsn: 0xFFF00000, next: "000000010000000100000000"},
		{name: "000000010000000000000001", size: 1 << 30, segno: 1, lsn: 0x40000000, next: "000000010000000000000002"},
		{name: "000000010000000000000003", size: 1 << 30, segno: 3, lsn: 0xC0000000, next: "000000010000000100000000"},
		{name: "000000010000000500000001", size: 64 << 20, segno: 5*64 + 1, lsn: 0x504000000, next: "000000010000000500000002"},
		{name: "000000010000000000000100", size: 16 << 20, invalid: true},
		{name: "000000010000000000000004", size: 1 << 30, invalid: true},
	}
	for _, tt := range tests {
		n, err := ParseName(tt.name)
		if err != nil {
			t.Fatalf("ParseName(%q): %v", tt.name, err)
		}
		segno, err := n.SegNo(tt.size)
		if tt.invalid {
			if err == nil {
				t.Errorf("%s with %d-byte segments: SegNo = %d, want an error", tt.name, tt.size, segno)
			}
			if _, err := n.Next(tt.size); err == nil {
				t.Errorf("%s with %d-byte segments: Next succeeded, want an error", tt.name, tt.size)
			}
			continue
		}
		if err != nil || segno != tt.segno {
			t.Errorf("%s SegNo(%d) = %d, %v; want %d", tt.name, tt.size, segno, err, tt.segno)
		}
		lsn, err := n.StartLSN(tt.size)
		if err != nil || lsn != tt.lsn {
			t.Errorf("%s StartLSN(%d) = %X, %v; want %X", tt.name, tt.size, lsn, err, tt.lsn)
		}
		back, err := SegmentOf(n.TLI, lsn+uint64(tt.size)-1, tt.size)
		if err != nil || back != n {
			t.Errorf("SegmentOf(last byte of %s) = %v, %v", tt.name, back, err)
		}
		next, err := n.Next(tt.size)
		if err != nil || next.String() != tt.next {
			t.Errorf("%s Next(%d) = %v, %v; want %s", tt.name, tt.size, next, err, tt.next)
		}
	}
}

func TestSegmentSizes(t *testing.T) {
	for size := int64(1 << 19); size <= 1<<31; size <<= 1 {
		want := size >= 1<<20 && size <= 1<<30
		if got := ValidSegmentSize(size); got != want {
			t.Errorf("ValidSegmentSize(%d) = %v", size, got)
		}
	}
	for _, size := range []int64{0, -16 << 20, 3 << 20, 16<<20 + 1} {
		if ValidSegmentSize(size) {
			t.Errorf("ValidSegmentSize(%d) = true", size)
		}
		if _, err := (Name{Kind: Segment, TLI: 1}).SegNo(size); err == nil {
			t.Errorf("SegNo(%d) succeeded", size)
		}
	}
	if got := SegmentsPerLog(16 << 20); got != 256 {
		t.Errorf("SegmentsPerLog(16 MiB) = %d", got)
	}
	if _, err := (Name{Kind: History, TLI: 2}).SegNo(16 << 20); err == nil {
		t.Error("SegNo of a history file succeeded")
	}
}

func TestNextAtEndOfWAL(t *testing.T) {
	last := Name{Kind: Segment, TLI: 1, Log: 0xFFFFFFFF, Seg: 0xFF}
	if n, err := last.Next(16 << 20); err == nil {
		t.Errorf("Next of the last segment = %v, want an error", n)
	}
}

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/3000028", "1/0", "FFFFFFFF/FFFFFFFF", "A/B"} {
		v, err := ParseLSN(s)
		if err != nil {
			t.Fatalf("ParseLSN(%q): %v", s, err)
		}
		if got := FormatLSN(v); got != s {
			t.Errorf("FormatLSN(ParseLSN(%q)) = %q", s, got)
		}
	}
	for _, s := range []string{"", "0", "/1", "1/", "x/1", "123456789/0", "0/-1"} {
		if v, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) = %X, want an error", s, v)
		}
	}
}

func TestParseHistory(t *testing.T) {
	text := "1\t0/3000158\tno recovery target specified\n\n# comment\n2\t0/5000000\tbefore 2026-11-26 10:00:00+00\n"
	h, err := ParseHistory(3, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Switches) != 2 || h.Switches[0].TLI != 1 || h.Switches[0].End != 0x3000158 ||
		h.Switches[1].TLI != 2 || h.Switches[1].Reason != "before 2026-11-26 10:00:00+00" {
		t.Fatalf("ParseHistory = %+v", h)
	}
	for lsn, want := range map[uint64]uint32{0: 1, 0x3000157: 1, 0x3000158: 2, 0x4FFFFFF: 2, 0x5000000: 3, 1 << 40: 3} {
		if got := h.TimelineOf(lsn); got != want {
			t.Errorf("TimelineOf(%s) = %d, want %d", FormatLSN(lsn), got, want)
		}
	}
	for _, bad := range []string{
		"1\n",                         // no switch point
		"x\t0/1\n",                    // bad timeline
		"0\t0/1\n",                    // timeline 0
		"1\tzz\n",                     // bad LSN
		"2\t0/1\n1\t0/2\n",            // timelines go back
		"1\t0/5\n2\t0/4\n",            // switch points go back
		"3\t0/1\n",                    // parent not older than the child
		"1\t0/1\n2\t0/2\n3\t0/3\tx\n", // parent equal to the child
	} {
		if h, err := ParseHistory(3, strings.NewReader(bad)); err == nil {
			t.Errorf("ParseHistory(%q) = %+v, want an error", bad, h)
		}
	}
}

// FuzzParseName checks that any input is either rejected or parsed into a
// name that formats back to exactly the input, and never panics.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"000000010000000000000003", "000000010000000000000003.partial",
		"000000010000000000000002.00000028.backup", "00000002.history",
		"00000001000000000000000a", "", "RECOVERYXLOG",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("ParseName(%q) error %v does not wrap ErrInvalidName", s, err)
			}
			return
		}
		if got := n.String(); got != s {
			t.Fatalf("ParseName(%q).String() = %q", s, got)
		}
		again, err := ParseName(n.String())
		if err != nil || again != n {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
		if n.Kind != History {
			// Every parsed segment is valid for 1 MiB segments, the size
			// with the widest low half.
			segno, err := n.SegNo(MinSegmentSize)
			if err != nil {
				t.Fatalf("%q SegNo: %v", s, err)
			}
			if back := SegmentFromSegNo(n.TLI, segno, MinSegmentSize); back.String() != n.SegmentName() {
				t.Fatalf("%q segno %d back to %v", s, segno, back)
			}
		}
	})
}

// FuzzParseHistory checks that history parsing never panics and that what
// it accepts is ordered as TimelineOf assumes.
func FuzzParseHistory(f *testing.F) {
	f.Add(uint32(3), "1\t0/3000158\tno recovery target specified\n2\t0/5000000\tx\n")
	f.Add(uint32(2), "# c\n\n1\t0/1\n")
	f.Fuzz(func(t *testing.T, tli uint32, text string) {
		h, err := ParseHistory(tli, strings.NewReader(text))
		if err != nil {
			return
		}
		for i, s := range h.Switches {
			if s.TLI >= tli || (i > 0 && (s.TLI <= h.Switches[i-1].TLI || s.End < h.Switches[i-1].End)) {
				t.Fatalf("accepted out-of-order history %+v", h)
			}
		}
	})
}
