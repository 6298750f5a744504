package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/openintern/openintern/store"
)

var policyCases = []testCase{
	{"Policy/GetPutVersions", testToolPolicyVersions},
	{"Policy/ScopesApart", testToolPolicyScopes},
	{"Policy/ConcurrentSameVersion", testToolPolicyConcurrent},
	{"Policy/BadInput", testToolPolicyBadInput},
}

func policyStore(t *testing.T, s store.Store) store.PolicyStore {
	t.Helper()
	ps, ok := s.(clockedStore).Store.(store.PolicyStore)
	if !ok {
		t.Fatalf("%T does not keep tool policies", s.(clockedStore).Store)
	}
	return ps
}

// testToolPolicyVersions: a scope without rules has "[]" at version 0; each
// write names the version it read and gets the next; a stale version is
// ErrConflict and changes nothing; AnyVersion overwrites.
func testToolPolicyVersions(t *testing.T, s store.Store) {
	ps, ctx := policyStore(t, s), t.Context()
	p, err := ps.GetToolPolicy(ctx, scopeA)
	must(t, err)
	if string(p.Rules) != "[]" || p.Version != 0 || !p.UpdatedAt.IsZero() {
		t.Fatalf("no rules yet: %+v", p)
	}
	r1 := json.RawMessage(`[{"id":"r1","tool":"shell","effect":"deny"}]`)
	if _, err := ps.PutToolPolicy(ctx, scopeA, r1, 1, "admin"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("first write over version 1: %v, want ErrConflict", err)
	}
	p, err = ps.PutToolPolicy(ctx, scopeA, r1, 0, "tok_1")
	must(t, err)
	if p.Version != 1 || string(p.Rules) != string(r1) || p.UpdatedBy != "tok_1" || p.UpdatedAt.IsZero() {
		t.Fatalf("first write: %+v", p)
	}
	tick(t, s)
	r2 := json.RawMessage(`[]`)
	if _, err := ps.PutToolPolicy(ctx, scopeA, r2, 0, "x"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale version 0: %v, want ErrConflict", err)
	}
	got, err := ps.GetToolPolicy(ctx, scopeA)
	must(t, err)
	if got.Version != 1 || string(got.Rules) != string(r1) || got.UpdatedBy != "tok_1" || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("after a refused write: %+v, want %+v", got, p)
	}
	p2, err := ps.PutToolPolicy(ctx, scopeA, r2, 1, "tok_2")
	must(t, err)
	if p2.Version != 2 || string(p2.Rules) != "[]" || !p2.UpdatedAt.After(p.UpdatedAt) {
		t.Fatalf("second write: %+v", p2)
	}
	p3, err := ps.PutToolPolicy(ctx, scopeA, r1, store.AnyVersion, "tok_3")
	must(t, err)
	if p3.Version != 3 || string(p3.Rules) != string(r1) {
		t.Fatalf("unconditional write: %+v", p3)
	}
	got, err = ps.GetToolPolicy(ctx, scopeA)
	must(t, err)
	if got.Version != 3 || string(got.Rules) != string(r1) || got.UpdatedBy != "tok_3" {
		t.Fatalf("read back: %+v", got)
	}
}

// testToolPolicyScopes: another user, org or project (also the project of
// the same user) neither sees nor changes the scope's rules.
func testToolPolicyScopes(t *testing.T, s store.Store) {
	ps, ctx := policyStore(t, s), t.Context()
	r := json.RawMessage(`[{"tool":"*","effect":"ask"}]`)
	_, err := ps.PutToolPolicy(ctx, scopeA, r, 0, "a")
	must(t, err)
	for _, o := range otherScopes {
		p, err := ps.GetToolPolicy(ctx, o)
		must(t, err)
		if p.Version != 0 || string(p.Rules) != "[]" {
			t.Fatalf("scope %+v sees %+v", o, p)
		}
		// Its own first write is version 1 of its own.
		p, err = ps.PutToolPolicy(ctx, o, json.RawMessage(`[]`), 0, "o")
		must(t, err)
		if p.Version != 1 {
			t.Fatalf("scope %+v first write: %+v", o, p)
		}
	}
	p, err := ps.GetToolPolicy(ctx, scopeA)
	must(t, err)
	if p.Version != 1 || string(p.Rules) != string(r) {
		t.Fatalf("scope A after the others wrote: %+v", p)
	}
}

// testToolPolicyConcurrent: writers that read the same version race; exactly
// one wins, the others get ErrConflict, for a scope's first write (no row
// yet) and for a later one.
func testToolPolicyConcurrent(t *testing.T, s store.Store) {
	ps, ctx := policyStore(t, s), t.Context()
	const writers = 8
	for _, version := range []int64{0, 1} {
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			wins     int
			winner   string
			otherErr error
		)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rules := json.RawMessage(`[{"id":"w` + string(rune('a'+i)) + `","tool":"*","effect":"allow"}]`)
				_, err := ps.PutToolPolicy(ctx, scopeA, rules, version, "w")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
					winner = string(rules)
				case !errors.Is(err, store.ErrConflict):
					otherErr = err
				}
			}()
		}
		wg.Wait()
		if otherErr != nil {
			t.Fatalf("version %d: a writer failed otherwise than ErrConflict: %v", version, otherErr)
		}
		if wins != 1 {
			t.Fatalf("version %d: %d writers won, want exactly 1", version, wins)
		}
		p, err := ps.GetToolPolicy(ctx, scopeA)
		must(t, err)
		if p.Version != version+1 || string(p.Rules) != winner {
			t.Fatalf("version %d: stored %+v, want the winner's %s at %d", version, p, winner, version+1)
		}
	}
}

// testToolPolicyBadInput: what no store keeps is refused before it is
// written, and nothing is stored.
func testToolPolicyBadInput(t *testing.T, s store.Store) {
	ps, ctx := policyStore(t, s), t.Context()
	for name, tc := range map[string]struct {
		scope   store.Scope
		rules   string
		version int64
	}{
		"no scope":     {store.Scope{}, `[]`, 0},
		"not an array": {scopeA, `{"tool":"*"}`, 0},
		"null":         {scopeA, `null`, 0},
		"not JSON":     {scopeA, `[`, 0},
		"escaped NUL":  {scopeA, `[{"tool":"a\u0000b"}]`, 0},
		"raw NUL":      {scopeA, "[\"a\x00\"]", 0},
		"bad version":  {scopeA, `[]`, -2},
	} {
		if _, err := ps.PutToolPolicy(ctx, tc.scope, json.RawMessage(tc.rules), tc.version, "x"); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	if _, err := ps.GetToolPolicy(ctx, store.Scope{OrgID: "o"}); err == nil {
		t.Error("get without user: no error")
	}
	p, err := ps.GetToolPolicy(ctx, scopeA)
	must(t, err)
	if p.Version != 0 {
		t.Fatalf("after refused writes: %+v", p)
	}
}
