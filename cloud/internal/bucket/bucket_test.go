package bucket

import (
	"strings"
	"testing"

	"github.com/gbc-backup/gbc/cloud"
)

// The limits of the providers' uploads (S3's parts, Azure's blocks).
const (
	s3MaxParts     = 10000
	azureMaxBlocks = 50000
)

func TestPartSizeFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		base, hint, maxParts, want int64
	}{
		{16 * mib, 0, s3MaxParts, 16 * mib},          // unknown size: the base
		{16 * mib, 1 << 30, s3MaxParts, 16 * mib},    // fits easily
		{16 * mib, 200 << 30, s3MaxParts, 23 * mib},  // 200 GiB / 9000 = 22.76 MiB, rounded up
		{16 * mib, 1 << 40, s3MaxParts, 117 * mib},   // 1 TiB
		{8 * mib, 1 << 40, azureMaxBlocks, 24 * mib}, // Azure has 50,000 blocks
		{16 * mib, 3 * mib, s3MaxParts, 5 * mib},     // small: one request, the minimum part
		{16 * mib, 8 * mib, s3MaxParts, 9 * mib},     // 8 MiB + 10%, rounded up
		{16 * mib, 15 * mib, s3MaxParts, 16 * mib},   // no smaller than base
		{2 * mib, 1 * mib, s3MaxParts, 2 * mib},      // base under the minimum stays
	} {
		got := PartSizeFor(tc.base, tc.hint, tc.maxParts)
		if got != tc.want {
			t.Errorf("PartSizeFor(%d, %d, %d) = %d MiB, want %d MiB", tc.base, tc.hint, tc.maxParts, got/mib, tc.want/mib)
		}
		if tc.hint > 0 && (tc.hint+got-1)/got > tc.maxParts {
			t.Errorf("PartSizeFor(%d, %d): %d parts, over the limit", tc.base, tc.hint, (tc.hint+got-1)/got)
		}
	}
}

// A body of known length is its own size hint; an explicit hint wins.
func TestSizeHint(t *testing.T) {
	for _, tc := range []struct {
		b    cloud.Body
		hint int64
		want int64
	}{
		{cloud.BytesBody(make([]byte, 12)), 0, 12},
		{cloud.BytesBody(make([]byte, 12)), 100, 100},
		{cloud.SectionBody(strings.NewReader("0123456789"), 2, 5), 0, 5},
		{cloud.OneShotBody(strings.NewReader("x")), 0, 0},
		{cloud.OneShotBody(strings.NewReader("x")), 7, 7},
	} {
		if got := sizeHint(tc.b, cloud.PutOptions{SizeHint: tc.hint}); got != tc.want {
			t.Errorf("sizeHint(%T, %d) = %d, want %d", tc.b, tc.hint, got, tc.want)
		}
	}
}
