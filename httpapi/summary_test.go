package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// TestMetricsSummary: runs that agents really ran (the offline model), one
// failed run and one cancelled, are summarised by status, success rate,
// latency, tokens and failure reasons, in all and per agent, only in their
// scope's summary and only inside the window; bad values are 400s.
func TestMetricsSummary(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testMetricsSummary(t, kind) })
	}
}

func testMetricsSummary(t *testing.T, kind string) {
	h := newHarness(t, kind)
	ctx := t.Context()
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})

	// Wait on the runs' completions as the bus delivers them.
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := h.api.deps.Bus.Subscribe(subCtx, scope, func(e store.Event) bool { return e.Type == "run.completed" })
	const ran = 3
	for range ran {
		h.must(http.StatusCreated, request{method: "POST", path: "/api/runs", body: `{"input":"hello","agent_id":"a1"}`})
	}
	for i := range ran {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d runs completed", i, ran)
		}
	}
	// A run that failed (as the runtime records an LLM failure) and one
	// cancelled before it started, on an agent the runtime does not drive.
	if _, err := h.store.CreateAgent(ctx, store.Agent{Scope: scope, ID: "f1", Name: "F"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.CreateRun(ctx, store.NewRun{Scope: scope, RunID: "run-f1", MessageID: "msg-f1", AgentID: "f1", Input: "x", SenderType: store.SenderUser, SenderID: "u"}); err != nil {
		t.Fatal(err)
	}
	claimed, err := h.store.ClaimNextRun(ctx, scope, "f1", "run-unused")
	if err != nil || claimed.Run.ID != "run-f1" {
		t.Fatalf("claim: %v %+v", err, claimed.Run)
	}
	if _, err := h.store.FinishRun(ctx, scope, "run-f1", store.RunResult{Status: store.RunFailed,
		Error: &store.RunError{Code: "llm_error", Message: "model unreachable"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.CreateRun(ctx, store.NewRun{Scope: scope, RunID: "run-f2", MessageID: "msg-f2", AgentID: "f1", Input: "y", SenderType: store.SenderUser, SenderID: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.CancelRun(ctx, scope, "run-f2"); err != nil {
		t.Fatal(err)
	}

	get := func(query string, header map[string]string) store.RunSummary {
		t.Helper()
		res := h.must(http.StatusOK, request{method: "GET", path: "/api/metrics/summary" + query, header: header})
		var sum store.RunSummary
		if err := json.Unmarshal(res.body, &sum); err != nil {
			t.Fatal(err)
		}
		return sum
	}
	sum := get("", nil)
	if sum.Runs != ran+2 || sum.ByStatus[store.RunCompleted] != ran || sum.ByStatus[store.RunFailed] != 1 || sum.ByStatus[store.RunCancelled] != 1 {
		t.Fatalf("runs %d by status %v, want %d completed, 1 failed, 1 cancelled", sum.Runs, sum.ByStatus, ran)
	}
	if want := float64(ran) / float64(ran+2); sum.SuccessRate == nil || *sum.SuccessRate != want {
		t.Fatalf("success rate %v, want %v", sum.SuccessRate, want)
	}
	if l := sum.LatencyMS; l == nil || l.Count != ran+1 || l.P50 < 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
		t.Fatalf("latency %+v, want %d ordered durations", sum.LatencyMS, ran+1)
	}
	if sum.Tokens.TotalTokens <= 0 {
		t.Fatalf("tokens %+v: the offline model's runs report usage", sum.Tokens)
	}
	if len(sum.FailureReasons) != 1 || sum.FailureReasons[0] != (store.FailureReason{Code: "llm_error", Count: 1, Example: "model unreachable"}) {
		t.Fatalf("failure reasons %+v", sum.FailureReasons)
	}
	if len(sum.ByAgent) != 2 || sum.ByAgent[0].ID != "a1" || sum.ByAgent[0].Runs != ran || sum.ByAgent[1].ID != "f1" || sum.ByAgent[1].Tokens != (store.Usage{}) {
		t.Fatalf("by agent %+v", sum.ByAgent)
	}
	if d := sum.Until.Sub(sum.Since); d != 24*time.Hour {
		t.Fatalf("default window %v, want 24h", d)
	}

	if f1 := get("?agent_id=f1", nil); f1.Runs != 2 || f1.ByStatus[store.RunCompleted] != 0 {
		t.Fatalf("agent f1's summary: %+v", f1)
	}
	from, to := time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	later := get("?since="+url.QueryEscape(from.Format(time.RFC3339))+"&until="+url.QueryEscape(to.Format(time.RFC3339)), nil)
	if later.Runs != 0 || later.SuccessRate != nil || later.LatencyMS != nil {
		t.Fatalf("a later window: %+v", later)
	}
	if other := get("", map[string]string{"x-org-id": "o2"}); other.Runs != 0 || len(other.ByAgent) != 0 {
		t.Fatalf("another tenant's summary: %+v", other)
	}
	for _, q := range []string{"?since=today", "?until=2026-02-30T00:00:00Z", "?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z"} {
		h.wantError(http.StatusBadRequest, "", request{method: "GET", path: "/api/metrics/summary" + q})
	}
}
