package cloud

import (
	"testing"
	"time"
)

// The backoff keeps the hand-written loop's delays: full jitter under a
// bound that doubles from MinDelay to MaxDelay, never past the deadline.
func TestRetryBackOffBounds(t *testing.T) {
	r := WithRetry(NewMem(), RetryOptions{MinDelay: 10 * time.Millisecond, MaxDelay: 80 * time.Millisecond}).(*retryStore)
	var top time.Duration
	for range 200 {
		b := r.backOff(time.Now().Add(time.Hour))
		b.Reset()
		for i := range 8 {
			bound := min(80*time.Millisecond, (10*time.Millisecond)<<i)
			d := b.NextBackOff()
			if d < 0 || d > bound {
				t.Fatalf("delay %d = %v, want within [0, %v]", i+1, d, bound)
			}
			top = max(top, d)
		}
	}
	if top < 60*time.Millisecond {
		t.Errorf("largest delay in 1,600 draws %v: the bound is not reached", top)
	}
	b := r.backOff(time.Now().Add(5 * time.Millisecond))
	b.Reset()
	for range 8 {
		if d := b.NextBackOff(); d > 5*time.Millisecond {
			t.Fatalf("delay %v runs past a deadline 5ms away", d)
		}
	}
}
