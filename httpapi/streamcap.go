package httpapi

import (
	"strconv"
	"sync"

	"github.com/openintern/openintern/store"
)

// streamRetryAfter is the Retry-After (seconds) of a stream refused for the
// caps: streams last minutes, so sooner is unlikely to find a free one.
const streamRetryAfter = 5

// streamCaps counts the SSE streams open, in all and per scope, so a client
// opening stream after stream is refused at once instead of each new stream
// taking a subscription, a heartbeat timer and store reads from everyone else.
type streamCaps struct {
	max, perScope int // 0: no bound
	mu            sync.Mutex
	open          int
	byScope       map[store.Scope]int
}

func newStreamCaps(maxStreams, perScope int) *streamCaps {
	return &streamCaps{max: maxStreams, perScope: perScope, byScope: map[store.Scope]int{}}
}

// acquire counts a stream of scope as open, or says which cap it is over
// ("" when it was counted). A counted stream must be released exactly once.
func (sc *streamCaps) acquire(scope store.Scope) (refused string) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.max > 0 && sc.open >= sc.max {
		return "the daemon has " + strconv.Itoa(sc.open) + " streams open, its limit (OPENINTERN_MAX_STREAMS)"
	}
	if n := sc.byScope[scope]; sc.perScope > 0 && n >= sc.perScope {
		return "this scope has " + strconv.Itoa(n) + " streams open, its limit (OPENINTERN_MAX_STREAMS_PER_SCOPE)"
	}
	sc.open++
	sc.byScope[scope]++
	return ""
}

func (sc *streamCaps) release(scope store.Scope) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.open--
	// Scopes without streams are dropped, so the map holds only open ones.
	if sc.byScope[scope]--; sc.byScope[scope] <= 0 {
		delete(sc.byScope, scope)
	}
}

// counts is how many streams are open, in all and for scope.
func (sc *streamCaps) counts(scope store.Scope) (total, ofScope int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.open, sc.byScope[scope]
}
