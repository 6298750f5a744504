package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var idempotencyCases = []testCase{
	{"Idempotency/ClaimCompleteReplay", testIdempotencyReplay},
	{"Idempotency/LeaseReleaseExpiry", testIdempotencyLease},
	{"Idempotency/ConcurrentClaims", testIdempotencyConcurrent},
}

// idempotencyStore is what the API's idempotency middleware needs of a store.
type idempotencyStore interface {
	ClaimIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) (store.IdempotencyResult, error)
	CompleteIdempotencyKey(ctx context.Context, c store.IdempotencyClaim, resp store.IdempotencyResponse) error
	ReleaseIdempotencyKey(ctx context.Context, c store.IdempotencyClaim) error
	DeleteExpiredIdempotencyKeys(ctx context.Context, now time.Time) (int64, error)
}

func idemStore(t *testing.T, s store.Store) idempotencyStore {
	t.Helper()
	is, ok := s.(clockedStore).Store.(idempotencyStore)
	if !ok {
		t.Fatalf("%T does not keep idempotency keys", s.(clockedStore).Store)
	}
	return is
}

var idemT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func idemClaim(scope store.Scope, key, fp, token string, now time.Time) store.IdempotencyClaim {
	return store.IdempotencyClaim{Scope: scope, Key: key, Fingerprint: fp, Token: token, Now: now}
}

func wantOutcome(t *testing.T, is idempotencyStore, c store.IdempotencyClaim, want string) store.IdempotencyResult {
	t.Helper()
	res, err := is.ClaimIdempotencyKey(t.Context(), c)
	must(t, err)
	if res.Outcome != want {
		t.Fatalf("claim %s/%s with %s at %s: %s, want %s", c.Key, c.Fingerprint, c.Token, c.Now, res.Outcome, want)
	}
	return res
}

// testIdempotencyReplay: a claimed key is in flight until completed, then
// replays the kept response byte for byte; another request under the key is a
// mismatch; other scopes have keys of their own.
func testIdempotencyReplay(t *testing.T, s store.Store) {
	is, ctx := idemStore(t, s), t.Context()
	first := idemClaim(scopeA, "k1", "fp1", "tok1", idemT0)
	wantOutcome(t, is, first, store.IdempotencyClaimed)
	wantOutcome(t, is, idemClaim(scopeA, "k1", "fp1", "tok2", idemT0.Add(time.Second)), store.IdempotencyInFlight)
	wantOutcome(t, is, idemClaim(scopeA, "k1", "fp2", "tok2", idemT0.Add(time.Second)), store.IdempotencyMismatch)
	for _, other := range otherScopes {
		wantOutcome(t, is, idemClaim(other, "k1", "fp2", "tok-"+other.UserID+other.OrgID+other.ProjectID, idemT0), store.IdempotencyClaimed)
	}

	resp := store.IdempotencyResponse{Status: 202, ContentType: "application/json; charset=utf-8", Body: []byte("{\"a\":\"\x00\xff\"}")}
	// Only the claim's owner completes it.
	wantErr(t, is.CompleteIdempotencyKey(ctx, idemClaim(scopeA, "k1", "fp1", "tok2", idemT0), resp), store.ErrIdempotencyLost)
	must(t, is.CompleteIdempotencyKey(ctx, first, resp))
	wantErr(t, is.CompleteIdempotencyKey(ctx, first, resp), store.ErrIdempotencyLost)
	wantErr(t, is.ReleaseIdempotencyKey(ctx, first), store.ErrIdempotencyLost)

	// A completed key replays past its lease, until it expires.
	res := wantOutcome(t, is, idemClaim(scopeA, "k1", "fp1", "tok3", idemT0.Add(store.IdempotencyTTL-time.Second)), store.IdempotencyReplay)
	wantEqual(t, "replayed response", res.Response, resp)
	wantOutcome(t, is, idemClaim(scopeA, "k1", "fp2", "tok3", idemT0.Add(time.Hour)), store.IdempotencyMismatch)
	// The other scopes' claims of k1 are still in flight, not replays of A's.
	wantOutcome(t, is, idemClaim(scopeB, "k1", "fp2", "tok4", idemT0.Add(time.Second)), store.IdempotencyInFlight)

	// An empty body is kept as empty.
	c := idemClaim(scopeA, "k2", "fp", "tok5", idemT0)
	wantOutcome(t, is, c, store.IdempotencyClaimed)
	must(t, is.CompleteIdempotencyKey(ctx, c, store.IdempotencyResponse{Status: 204}))
	res = wantOutcome(t, is, idemClaim(scopeA, "k2", "fp", "tok6", idemT0), store.IdempotencyReplay)
	if res.Response.Status != 204 || len(res.Response.Body) != 0 {
		t.Fatalf("replay of an empty 204 = %+v", res.Response)
	}
}

// testIdempotencyLease: a claim without an answer blocks its key for the
// lease only, and the owner it was taken from can no longer complete it; a
// released key is claimed anew; an expired key is free for any request and
// is deleted by the periodic delete.
func testIdempotencyLease(t *testing.T, s store.Store) {
	is, ctx := idemStore(t, s), t.Context()
	first := idemClaim(scopeA, "k", "fp", "tok1", idemT0)
	wantOutcome(t, is, first, store.IdempotencyClaimed)
	wantOutcome(t, is, idemClaim(scopeA, "k", "fp", "tok2", idemT0.Add(store.IdempotencyLease-time.Second)), store.IdempotencyInFlight)
	// A stale claim is not taken over by another request.
	wantOutcome(t, is, idemClaim(scopeA, "k", "fp-other", "tok2", idemT0.Add(store.IdempotencyLease)), store.IdempotencyMismatch)
	second := idemClaim(scopeA, "k", "fp", "tok2", idemT0.Add(store.IdempotencyLease))
	wantOutcome(t, is, second, store.IdempotencyClaimed)
	wantErr(t, is.CompleteIdempotencyKey(ctx, first, store.IdempotencyResponse{Status: 201}), store.ErrIdempotencyLost)
	wantErr(t, is.ReleaseIdempotencyKey(ctx, first), store.ErrIdempotencyLost)

	must(t, is.ReleaseIdempotencyKey(ctx, second))
	third := idemClaim(scopeA, "k", "fp", "tok3", idemT0.Add(store.IdempotencyLease+time.Second))
	wantOutcome(t, is, third, store.IdempotencyClaimed)
	must(t, is.CompleteIdempotencyKey(ctx, third, store.IdempotencyResponse{Status: 201, Body: []byte("{}")}))

	// third expires a TTL after it was claimed: then another request may
	// take the key.
	expiry := third.Now.Add(store.IdempotencyTTL)
	wantOutcome(t, is, idemClaim(scopeA, "k", "fp", "tok4", expiry.Add(-time.Second)), store.IdempotencyReplay)
	n, err := is.DeleteExpiredIdempotencyKeys(ctx, expiry.Add(-time.Second))
	must(t, err)
	if n != 0 {
		t.Fatalf("deleted %d keys before they expired", n)
	}
	wantOutcome(t, is, idemClaim(scopeA, "k", "fp-new", "tok4", expiry), store.IdempotencyClaimed)

	// A custom TTL counts from the claim.
	short := idemClaim(scopeB, "short", "fp", "tok5", idemT0)
	short.TTL = time.Minute
	wantOutcome(t, is, short, store.IdempotencyClaimed)
	must(t, is.CompleteIdempotencyKey(ctx, short, store.IdempotencyResponse{Status: 200}))
	n, err = is.DeleteExpiredIdempotencyKeys(ctx, idemT0.Add(time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("deleted %d expired keys, want 1 (scopeB's short one)", n)
	}
	wantOutcome(t, is, idemClaim(scopeB, "short", "fp", "tok6", idemT0.Add(time.Second)), store.IdempotencyClaimed)
}

// testIdempotencyConcurrent: of many concurrent claims of one key, exactly
// one wins.
func testIdempotencyConcurrent(t *testing.T, s store.Store) {
	is := idemStore(t, s)
	const n = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed int
		errs    []error
	)
	for i := range n {
		wg.Go(func() {
			res, err := is.ClaimIdempotencyKey(t.Context(), idemClaim(scopeA, "race", "fp", "tok"+string(rune('a'+i)), idemT0))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case res.Outcome == store.IdempotencyClaimed:
				claimed++
			case res.Outcome != store.IdempotencyInFlight:
				errs = append(errs, errors.New("outcome "+res.Outcome))
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 || claimed != 1 {
		t.Fatalf("%d claims won, errors %v; want exactly one and no errors", claimed, errs)
	}
}
