package ledger

import (
	"math"
	"strconv"
	"testing"
	"time"
)

// TestExpiryEncoding covers the expiry encoding both stores share, at the
// edges the suite's order facts do not reach.
func TestExpiryEncoding(t *testing.T) {
	tests := []struct {
		in, want time.Time
	}{
		{time.Time{}, time.Time{}},
		{time.Date(2026, 6, 1, 14, 30, 15, 123456789, time.FixedZone("CEST", 7200)), time.Date(2026, 6, 1, 12, 30, 15, 123456789, time.UTC)},
		{time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC)},
		{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, math.MaxInt64).UTC()},
		{time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, math.MinInt64).UTC()},
	}
	for _, tt := range tests {
		n := unixNano(tt.in)
		if got := fromUnixNano(n); !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("memory: %v reads back as %v; want %v", tt.in, got, tt.want)
		}
		// The Redis store keeps seconds and nanoseconds apart.
		sec, nsec := splitNano(n)
		if nsec < 0 || nsec >= 1e9 {
			t.Errorf("splitNano(%d) = %d, %d; want 0 <= nanoseconds < 1e9", n, sec, nsec)
		}
		if n == 0 {
			continue
		}
		e, err := parseEntry(map[string]string{"exs": strconv.FormatInt(sec, 10), "exn": strconv.FormatInt(nsec, 10)}, 0, 1)
		if err != nil || !e.ExpiresAt.Equal(tt.want) {
			t.Errorf("redis: %v reads back as %v, %v; want %v", tt.in, e.ExpiresAt, err, tt.want)
		}
	}
}
