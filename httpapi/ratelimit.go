package httpapi

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// RateLimit configures the per-caller request limit of /api: a token bucket
// of Burst requests refilled at RPS per second. RPS 0 turns it off.
type RateLimit struct {
	RPS   float64
	Burst int
	// Loopback also limits callers without a token on a loopback address.
	// The daemon leaves it off: without auth such a caller is the machine's
	// own user, who controls the daemon anyway, and the CLI, the console and
	// the benchmarks all come from there.
	Loopback bool
}

// rateLimiter keeps one token bucket per caller. A bucket idle for as long
// as it takes to refill is in the same state as a new one, so the sweep
// drops such buckets without changing any answer; it runs inline on the
// request path at most once per refill time, so memory stays bounded by the
// callers of the last refill period and no goroutine outlives the server.
type rateLimiter struct {
	limit   rate.Limit
	burst   int
	refill  time.Duration
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
	// nextSweep is when idle buckets are next dropped.
	nextSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen time.Time
}

func newRateLimiter(cfg RateLimit, now func() time.Time) *rateLimiter {
	burst := max(cfg.Burst, 1)
	refill := time.Duration(float64(burst) / cfg.RPS * float64(time.Second))
	return &rateLimiter{
		limit: rate.Limit(cfg.RPS), burst: burst, refill: max(refill, time.Second), now: now,
		buckets: map[string]*bucket{},
	}
}

// reserve takes one request from key's bucket. It returns 0 when the request
// may go ahead, else how long until it could (the request is not counted).
func (rl *rateLimiter) reserve(key string) time.Duration {
	now := rl.now()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if !now.Before(rl.nextSweep) {
		rl.sweep(now)
	}
	b := rl.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		rl.buckets[key] = b
	}
	b.lastSeen = now
	r := b.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		// A refused request must not eat into the caller's next token.
		r.CancelAt(now)
		return delay
	}
	return 0
}

// wait is how long key must wait for its next token, without taking one.
func (rl *rateLimiter) wait(key string) time.Duration {
	now := rl.now()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b := rl.buckets[key]
	if b == nil {
		return 0
	}
	tokens := b.lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(rl.limit) * float64(time.Second))
}

// sweep drops the buckets that have been idle for a full refill.
func (rl *rateLimiter) sweep(now time.Time) {
	for k, b := range rl.buckets {
		if now.Sub(b.lastSeen) >= rl.refill {
			delete(rl.buckets, k)
		}
	}
	rl.nextSweep = now.Add(rl.refill)
}

// size is how many buckets are kept (for tests).
func (rl *rateLimiter) size() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.buckets)
}

// rateLimitKey is whose bucket a request takes from: its token's, else its
// connection's address. Without a token the scope is whatever headers the
// caller sends, so keying by it would let one caller mint buckets at will;
// the address is what the connection proves (forwarding headers are not
// trusted, so behind a proxy its clients share one bucket). ok is false for
// a caller that is not limited.
func (s *Server) rateLimitKey(c *gin.Context) (key string, ok bool) {
	if p := principalOf(c); p.TokenID != "" {
		return "token:" + p.TokenID, true
	}
	ip := c.RemoteIP()
	if !s.deps.RateLimit.Loopback {
		if addr := net.ParseIP(ip); addr != nil && addr.IsLoopback() {
			return "", false
		}
	}
	return "ip:" + ip, true
}

// A caller guessing API tokens gets failedCredentialBurst failed
// credentials (unknown, expired or revoked tokens, ended sessions), then one
// more every failedCredentialRefill, per address. Secrets have 256 random
// bits, so this is not what keeps them safe; it keeps a guesser from loading
// the store with lookups and the audit log with refusals. Always on, even
// when requests are not otherwise rate limited.
const (
	failedCredentialBurst  = 10
	failedCredentialRefill = 6 * time.Second
)

// guessKey is the address whose failed credentials are counted; ok is false
// for a loopback caller unless RateLimit.Loopback is set (as for rateLimitKey).
func (s *Server) guessKey(c *gin.Context) (key string, ok bool) {
	ip := c.RemoteIP()
	if !s.deps.RateLimit.Loopback {
		if addr := net.ParseIP(ip); addr != nil && addr.IsLoopback() {
			return "", false
		}
	}
	return "ip:" + ip, true
}

// checkGuesses answers 429 too_many_failures, before the credential is even
// looked up, to an address that has used up its failed credentials: a guess
// must not be judged (a right one would pass) while the address is held back.
// It reports whether the request may go on.
func (s *Server) checkGuesses(c *gin.Context) bool {
	key, ok := s.guessKey(c)
	if !ok {
		return true
	}
	delay := s.guesses.wait(key)
	if delay <= 0 {
		return true
	}
	secs := int(math.Ceil(delay.Seconds()))
	c.Header("Retry-After", strconv.Itoa(secs))
	writeError(c, http.StatusTooManyRequests, "too_many_failures",
		"too many unknown, expired or revoked credentials from this address; retry in "+strconv.Itoa(secs)+" s")
	s.auditRefusal(c, http.StatusTooManyRequests, "too_many_failures")
	return false
}

// countGuess takes one failed credential from the caller's address.
func (s *Server) countGuess(c *gin.Context) {
	if key, ok := s.guessKey(c); ok {
		s.guesses.reserve(key)
	}
}

// rateLimit answers 429 with Retry-After to a caller over its request rate.
// It runs once per request, so a stream counts once, when it is opened.
func (s *Server) rateLimit(c *gin.Context) {
	if s.limiter == nil {
		c.Next()
		return
	}
	key, ok := s.rateLimitKey(c)
	if !ok {
		c.Next()
		return
	}
	if delay := s.limiter.reserve(key); delay > 0 {
		secs := int(math.Ceil(delay.Seconds()))
		c.Header("Retry-After", strconv.Itoa(secs))
		writeError(c, http.StatusTooManyRequests, "rate_limited",
			"too many requests: the limit is "+strconv.FormatFloat(float64(s.limiter.limit), 'g', -1, 64)+
				" per second (bursts of "+strconv.Itoa(s.limiter.burst)+"); retry in "+strconv.Itoa(secs)+" s")
		return
	}
	c.Next()
}
