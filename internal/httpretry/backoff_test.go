package httpretry

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const base, maxWait = 100 * time.Millisecond, 2 * time.Second
	for _, tc := range []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first retry", 0, 0, base / 2, base},
		{"doubles", 3, 0, 4 * base, 8 * base},
		{"capped", 10, 0, maxWait / 2, maxWait},
		{"huge attempt does not overflow", 1 << 30, 0, maxWait / 2, maxWait},
		{"negative attempt is the first", -5, 0, base / 2, base},
		{"server's wait", 0, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond},
		{"server's wait capped", 0, time.Hour, maxWait, maxWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := Backoff(tc.attempt, base, maxWait, tc.retryAfter)
				if d < tc.lo || d > tc.hi {
					t.Fatalf("Backoff = %v, want within [%v, %v]", d, tc.lo, tc.hi)
				}
				seen[d] = true
			}
			if tc.lo != tc.hi && len(seen) < 2 {
				t.Fatalf("200 delays were all %v: no jitter", seen)
			}
		})
	}
}
