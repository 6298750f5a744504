package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/openintern/openintern/store"
)

var quotaCases = []testCase{
	{"Quota/Agents", testQuotaAgents},
	{"Quota/AgentsConcurrent", testQuotaAgentsConcurrent},
	{"Quota/AgentsEnsureConcurrent", testQuotaAgentsEnsureConcurrent},
}

// setQuotas sets the quotas of the store under the suite's clock wrapper.
func setQuotas(t *testing.T, s store.Store, q store.Quotas) {
	t.Helper()
	if cs, ok := s.(clockedStore); ok {
		s = cs.Store
	}
	qs, ok := s.(store.QuotaSetter)
	if !ok {
		t.Fatalf("%T has no SetQuotas", s)
	}
	qs.SetQuotas(q)
	wantEqual(t, "Quotas()", qs.Quotas(), q)
}

// wantQuota fails unless err is the agent quota's refusal with these figures.
func wantQuota(t *testing.T, err error, quota string, limit, used int64) {
	t.Helper()
	wantErr(t, err, store.ErrQuotaExceeded)
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		t.Fatalf("error %v is not a *store.QuotaError", err)
	}
	if qe.Quota != quota || qe.Limit != limit || qe.Used != used || qe.Adding != 1 {
		t.Fatalf("QuotaError = %+v, want quota %s limit %d used %d adding 1", qe, quota, limit, used)
	}
}

func agentTotal(t *testing.T, s store.Store, scope store.Scope) int {
	t.Helper()
	_, total, err := s.ListAgents(t.Context(), scope, store.Page{})
	must(t, err)
	return total
}

func testQuotaAgents(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := range 3 {
		_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: fmt.Sprintf("a%d", i), Name: "n"})
		must(t, err)
	}
	// Set with agents already there: they count.
	setQuotas(t, s, store.Quotas{AgentsPerScope: 3})
	_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a3", Name: "n"})
	wantQuota(t, err, store.QuotaAgents, 3, 3)
	_, err = s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: "a3", Name: "n"})
	wantQuota(t, err, store.QuotaAgents, 3, 3)
	// At the quota, a taken id is still a conflict (a retried create).
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a2", Name: "n"})
	wantErr(t, err, store.ErrConflict)
	// An agent that exists is returned by EnsureAgent whatever the quota.
	a, err := s.EnsureAgent(ctx, store.Agent{Scope: scopeA, ID: "a1", Name: "other"})
	must(t, err)
	if a.ID != "a1" || a.Name != "n" {
		t.Fatalf("EnsureAgent of an existing agent at the quota = %+v", a)
	}
	if got := agentTotal(t, s, scopeA); got != 3 {
		t.Fatalf("scope A has %d agents after refusals, want 3", got)
	}
	// Other scopes count their own.
	for _, sc := range otherScopes {
		for i := range 3 {
			_, err := s.CreateAgent(ctx, store.Agent{Scope: sc, ID: fmt.Sprintf("a%d", i), Name: "n"})
			must(t, err)
		}
		_, err := s.CreateAgent(ctx, store.Agent{Scope: sc, ID: "a3", Name: "n"})
		wantQuota(t, err, store.QuotaAgents, 3, 3)
	}
	// Deleting one makes room for one; below the quota, a taken id is
	// still a conflict.
	must(t, s.DeleteAgent(ctx, scopeA, "a0", false))
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a1", Name: "n"})
	wantErr(t, err, store.ErrConflict)
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a4", Name: "n"})
	must(t, err)
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a5", Name: "n"})
	wantQuota(t, err, store.QuotaAgents, 3, 3)
	// 0 is no bound.
	setQuotas(t, s, store.Quotas{})
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "a5", Name: "n"})
	must(t, err)
}

// concurrentCreates runs n creates (or ensures) of distinct agents of scopeA
// at once and returns how many succeeded; any error but the quota's fails.
func concurrentCreates(t *testing.T, s store.Store, round, n int, ensure bool) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a := store.Agent{Scope: scopeA, ID: fmt.Sprintf("r%d-%d", round, i), Name: "n"}
			if ensure {
				_, errs[i] = s.EnsureAgent(t.Context(), a)
			} else {
				_, errs[i] = s.CreateAgent(t.Context(), a)
			}
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrQuotaExceeded):
			t.Fatalf("concurrent create: %v", err)
		}
	}
	return ok
}

// Creates racing for the last free place: exactly one gets it, whatever
// the interleaving (the count and the insert are one atomic step).
func testQuotaAgentsConcurrent(t *testing.T, s store.Store) {
	limit := int64(0)
	for round := range 4 {
		limit++
		setQuotas(t, s, store.Quotas{AgentsPerScope: limit})
		if got := concurrentCreates(t, s, round, 8, false); got != 1 {
			t.Fatalf("round %d: %d of 8 concurrent creates at quota-1 succeeded, want 1", round, got)
		}
		if got := agentTotal(t, s, scopeA); int64(got) != limit {
			t.Fatalf("round %d: scope has %d agents, quota %d", round, got, limit)
		}
	}
}

func testQuotaAgentsEnsureConcurrent(t *testing.T, s store.Store) {
	setQuotas(t, s, store.Quotas{AgentsPerScope: 2})
	_, err := s.CreateAgent(t.Context(), store.Agent{Scope: scopeA, ID: "first", Name: "n"})
	must(t, err)
	if got := concurrentCreates(t, s, 0, 8, true); got != 1 {
		t.Fatalf("%d of 8 concurrent EnsureAgent of new agents at quota-1 succeeded, want 1", got)
	}
	if got := agentTotal(t, s, scopeA); got != 2 {
		t.Fatalf("scope has %d agents, quota 2", got)
	}
}
