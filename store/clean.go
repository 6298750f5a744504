package store

import (
	"errors"
	"fmt"
	"strings"
)

// ErrPermanent marks a write the database refused for what it holds (invalid
// input, a violated check): retrying the same write cannot succeed, so the
// caller must give up on it (a run fails) rather than retry it.
var ErrPermanent = errors.New("refused by the store")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds. Both store
// adapters use it for their dialect's "bad data" errors, so callers classify
// store errors one way.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return fmt.Errorf("%w: %w", err, ErrPermanent)
}

// CleanText replaces NUL characters with U+FFFD. PostgreSQL text cannot hold
// NUL while SQLite can, so text from outside the daemon (model output, tool
// results) is cleaned before it is stored, and both stores keep the same.
func CleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
