package storetest

import (
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var summaryCases = []testCase{
	{"Summary/RunSamples", testRunSamples},
}

func summaryStore(t *testing.T, s store.Store) store.SummaryStore {
	t.Helper()
	ss, ok := s.(clockedStore).Store.(store.SummaryStore)
	if !ok {
		t.Fatalf("%T does not read run samples", s.(clockedStore).Store)
	}
	return ss
}

// testRunSamples: a window's runs are read newest first with their status,
// times, usage and error, filtered by agent, and only the scope's own; the
// window and the limit bound them; Summarize counts them.
func testRunSamples(t *testing.T, s store.Store) {
	ss, ctx := summaryStore(t, s), t.Context()
	start := time.Now().Add(-time.Minute)
	for _, id := range []string{"ok-agent", "bad-agent"} {
		_, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: id})
		must(t, err)
	}
	// ok-agent: one completed run with usage; bad-agent: one failed run, then
	// one left pending.
	createRun(t, s, scopeA, "ok-agent", "s", "hi")
	okRun := claim(t, s, scopeA, "ok-agent").Run
	tick(t, s)
	_, err := s.FinishRun(ctx, scopeA, okRun.ID, store.RunResult{Status: store.RunCompleted, Output: "done", Steps: 1,
		Usage: store.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CacheReadTokens: 4, CacheWriteTokens: 2}}, nil)
	must(t, err)
	tick(t, s)
	createRun(t, s, scopeA, "bad-agent", "s", "hi")
	badRun := claim(t, s, scopeA, "bad-agent").Run
	tick(t, s)
	_, err = s.FinishRun(ctx, scopeA, badRun.ID, store.RunResult{Status: store.RunFailed, Steps: 1,
		Error: &store.RunError{Code: "llm_error", Message: "the model is down"}, Usage: store.Usage{TotalTokens: 3}}, nil)
	must(t, err)
	tick(t, s)
	createRun(t, s, scopeA, "bad-agent", "s2", "later")
	// Another scope's run is not read.
	_, err = s.CreateAgent(ctx, store.Agent{Scope: scopeB, ID: "ok-agent"})
	must(t, err)
	createRun(t, s, scopeB, "ok-agent", "s", "elsewhere")

	end := time.Now().Add(time.Hour)
	all, err := ss.RunSamples(ctx, scopeA, store.RunSampleFilter{Since: start, Until: end})
	must(t, err)
	if len(all) != 3 {
		t.Fatalf("RunSamples = %d runs, want 3: %+v", len(all), all)
	}
	pending, failed, done := all[0], all[1], all[2]
	wantEqual(t, "statuses newest first", []string{pending.Status, failed.Status, done.Status},
		[]string{store.RunPending, store.RunFailed, store.RunCompleted})
	if pending.StartedAt != nil || pending.EndedAt != nil || pending.Error != nil {
		t.Fatalf("pending run sample %+v has times or an error", pending)
	}
	wantEqual(t, "failed error", failed.Error, &store.RunError{Code: "llm_error", Message: "the model is down"})
	wantEqual(t, "completed usage", done.Usage, store.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CacheReadTokens: 4, CacheWriteTokens: 2})
	if done.StartedAt == nil || done.EndedAt == nil || done.EndedAt.Sub(*done.StartedAt) < time.Millisecond {
		t.Fatalf("completed run sample times %v-%v, want ended at least 1ms after started", done.StartedAt, done.EndedAt)
	}
	wantEqual(t, "agent ids", []string{pending.AgentID, failed.AgentID, done.AgentID}, []string{"bad-agent", "bad-agent", "ok-agent"})

	byAgent, err := ss.RunSamples(ctx, scopeA, store.RunSampleFilter{Since: start, Until: end, AgentID: "ok-agent"})
	must(t, err)
	wantEqual(t, "ok-agent's runs", len(byAgent), 1)
	limited, err := ss.RunSamples(ctx, scopeA, store.RunSampleFilter{Since: start, Until: end, Limit: 2})
	must(t, err)
	wantEqual(t, "limited to the newest", []string{limited[0].Status, limited[1].Status}, []string{store.RunPending, store.RunFailed})
	none, err := ss.RunSamples(ctx, scopeA, store.RunSampleFilter{Since: end, Until: end.Add(time.Hour)})
	must(t, err)
	wantEqual(t, "a later window", len(none), 0)
	if _, err := ss.RunSamples(ctx, store.Scope{}, store.RunSampleFilter{Since: start, Until: end}); err == nil {
		t.Fatal("RunSamples without a scope succeeded")
	}

	sum := store.Summarize(all, store.RunSampleFilter{Since: start, Until: end}, false)
	wantEqual(t, "by status", sum.ByStatus, map[string]int{store.RunPending: 1, store.RunFailed: 1, store.RunCompleted: 1})
	if sum.SuccessRate == nil || *sum.SuccessRate != 0.5 {
		t.Fatalf("success rate %v, want 0.5 (1 of 2 finished)", sum.SuccessRate)
	}
	wantEqual(t, "tokens", sum.Tokens, store.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 18, CacheReadTokens: 4, CacheWriteTokens: 2})
	wantEqual(t, "failure reasons", sum.FailureReasons, []store.FailureReason{{Code: "llm_error", Count: 1, Example: "the model is down"}})
	if sum.LatencyMS == nil || sum.LatencyMS.Count != 2 {
		t.Fatalf("latency %+v, want 2 durations", sum.LatencyMS)
	}
	wantEqual(t, "agents, busiest first", []string{sum.ByAgent[0].ID, sum.ByAgent[1].ID}, []string{"bad-agent", "ok-agent"})
}
