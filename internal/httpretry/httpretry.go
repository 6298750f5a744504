// Package httpretry decides how long the clients of model providers (chat and
// embeddings) wait before retrying: what the server asked for, else an
// exponential backoff with jitter.
package httpretry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// After reads Retry-After (seconds or an HTTP date) or the retry-after-ms
// header some providers send; 0 when absent or in the past.
func After(h http.Header) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// Backoff is the delay before retry number attempt+1 (attempt counts from 0):
// retryAfter when the server asked for one, else base doubled per attempt;
// either capped by maxWait. A computed delay is drawn uniformly from [d/2, d],
// so clients that failed together do not retry together.
func Backoff(attempt int, base, maxWait, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxWait)
	}
	d := base << min(max(attempt, 0), 20)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d, or until ctx ends; it returns ctx's error then, else nil.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
