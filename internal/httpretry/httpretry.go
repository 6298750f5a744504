// Package httpretry reads how long an HTTP server asks its client to wait
// before retrying, for the clients of model providers (chat and embeddings).
package httpretry

import (
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
