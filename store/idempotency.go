package store

import (
	"errors"
	"time"
)

// Idempotency keys: a POST sent with an Idempotency-Key is claimed before its
// handler runs and its response is kept for IdempotencyTTL, so that a client
// retrying after a lost answer gets the first answer again instead of a second
// message or run. The API decides what a request is (its fingerprint) and
// which responses are kept; the stores keep the rows and apply the rules
// below, which both share.

// Idempotency defaults.
const (
	// IdempotencyTTL is how long a key's response is replayed.
	IdempotencyTTL = 24 * time.Hour
	// IdempotencyLease is how long a claim without a response blocks its key:
	// after it, the handler (or the process) is taken to have died and a
	// retry may take the claim over.
	IdempotencyLease = 60 * time.Second
)

// ErrIdempotencyLost: the claim being completed or released is no longer
// its owner's (it expired and was taken over, or was released).
var ErrIdempotencyLost = errors.New("idempotency claim lost")

// IdempotencyClaim asks for a key of a scope for one request.
type IdempotencyClaim struct {
	Scope Scope
	Key   string
	// Fingerprint identifies the request (method, path, body): the same key
	// with another fingerprint is refused.
	Fingerprint string
	// Token names this claim's owner; Complete and Release need it.
	Token string
	// Now is the caller's time; TTL and Lease count from it (zero: the
	// defaults above). The caller's clock, not the store's, so that the API
	// can be tested across a day without sleeping.
	Now   time.Time
	TTL   time.Duration
	Lease time.Duration
}

// Bounds returns the claim's TTL and lease with the defaults applied.
func (c IdempotencyClaim) Bounds() (ttl, lease time.Duration) {
	ttl, lease = c.TTL, c.Lease
	if ttl <= 0 {
		ttl = IdempotencyTTL
	}
	if lease <= 0 {
		lease = IdempotencyLease
	}
	return ttl, lease
}

// IdempotencyResponse is a kept response.
type IdempotencyResponse struct {
	Status      int
	ContentType string
	Body        []byte
}

// Outcomes of a claim.
const (
	// IdempotencyClaimed: the caller owns the key and runs the request.
	IdempotencyClaimed = "claimed"
	// IdempotencyReplay: the request was answered before; Response is that answer.
	IdempotencyReplay = "replay"
	// IdempotencyInFlight: the same request holds the key and has not answered yet.
	IdempotencyInFlight = "in_flight"
	// IdempotencyMismatch: the key was used for another request.
	IdempotencyMismatch = "mismatch"
)

// IdempotencyResult is what a claim found.
type IdempotencyResult struct {
	Outcome  string
	Response IdempotencyResponse // set for IdempotencyReplay
}

// IdempotencyRecord is a key's row as a store read it.
type IdempotencyRecord struct {
	Fingerprint string
	ClaimedAt   time.Time
	ExpiresAt   time.Time
	Response    IdempotencyResponse // Status 0 while in flight
}

// DecideIdempotency is what a claim c does to the key's existing row: it
// takes the row over (an expired key, or a stale claim of the same request)
// or answers with one of the outcomes other than IdempotencyClaimed.
func DecideIdempotency(rec IdempotencyRecord, c IdempotencyClaim) (takeOver bool, res IdempotencyResult) {
	_, lease := c.Bounds()
	switch {
	case !c.Now.Before(rec.ExpiresAt):
		return true, IdempotencyResult{Outcome: IdempotencyClaimed}
	case rec.Fingerprint != c.Fingerprint:
		return false, IdempotencyResult{Outcome: IdempotencyMismatch}
	case rec.Response.Status != 0:
		return false, IdempotencyResult{Outcome: IdempotencyReplay, Response: rec.Response}
	case !c.Now.Before(rec.ClaimedAt.Add(lease)):
		return true, IdempotencyResult{Outcome: IdempotencyClaimed}
	default:
		return false, IdempotencyResult{Outcome: IdempotencyInFlight}
	}
}

// CheckIdempotencyClaim refuses a claim a store cannot keep.
func CheckIdempotencyClaim(c IdempotencyClaim) error {
	if err := CheckScope(c.Scope); err != nil {
		return err
	}
	if c.Key == "" || c.Fingerprint == "" || c.Token == "" || c.Now.IsZero() {
		return errors.New("idempotency claim needs a key, a fingerprint, a token and a time")
	}
	return nil
}
