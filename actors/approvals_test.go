package actors

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// dangerTool is a tool a test policy asks about; it counts its runs.
type dangerTool struct {
	name string
	runs atomic.Int64
}

func (d *dangerTool) Spec() llm.ToolSpec {
	return llm.ToolSpec{Name: d.name, Description: "does something risky",
		Parameters: json.RawMessage(`{"type":"object","properties":{"target":{"type":"string"}}}`)}
}

func (d *dangerTool) Run(_ context.Context, call tools.Call) (tools.Result, error) {
	d.runs.Add(1)
	return tools.Result{Content: "did it to " + string(call.Args) + " with " + call.ApprovalID}, nil
}

// askPolicy asks about "danger", denies "forbidden", allows the rest.
var askPolicy = tools.PolicyFunc(func(_ context.Context, call tools.Call, _ tools.ToolInfo) (tools.Verdict, error) {
	switch call.Name {
	case "danger":
		return tools.Verdict{Effect: tools.EffectAsk, Reason: "danger is high-risk", Rule: "test:ask"}, nil
	case "forbidden":
		return tools.Verdict{Effect: tools.EffectDeny, Reason: "never on Thursdays", Rule: "test:deny"}, nil
	}
	return tools.Verdict{Effect: tools.EffectAllow}, nil
})

func approvalHarness(t *testing.T, kind string, cfg Config) (*harness, *dangerTool, *dangerTool) {
	t.Helper()
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	h := newHarnessOn(t, kind, cfg)
	reg := tools.NewRegistry(tools.WithPolicy(askPolicy))
	danger, forbidden := &dangerTool{name: "danger"}, &dangerTool{name: "forbidden"}
	for _, tl := range []tools.Tool{danger, forbidden} {
		if err := reg.Register(tl); err != nil {
			t.Fatal(err)
		}
	}
	h.router = reg
	return h, danger, forbidden
}

// lastToolMessage is the content of the last tool message the model was sent.
func lastToolMessage(req llmtest.ChatRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == llm.RoleTool {
			return req.Messages[i].Content
		}
	}
	return ""
}

func (h *harness) waitStatus(runID, status string) store.Run {
	h.t.Helper()
	var run store.Run
	waitFor(h.t, 15*time.Second, "run "+runID+" to be "+status, func() bool {
		run = h.getRun(runID)
		return run.Status == status
	})
	return run
}

func (h *harness) pendingApproval(runID string) store.Approval {
	h.t.Helper()
	list, _, err := h.store.(store.ApprovalStore).ListApprovals(context.Background(), testScope,
		store.ApprovalFilter{RunID: runID, Status: store.ApprovalPending}, store.Page{})
	if err != nil || len(list) != 1 {
		h.t.Fatalf("pending approvals of %s: %v, %+v", runID, err, list)
	}
	return list[0]
}

func (h *harness) eventsOf(runID string, types ...string) []store.Event {
	h.t.Helper()
	evs, _, err := h.store.ListEvents(context.Background(), testScope, store.EventFilter{RunID: runID, Types: types, Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

// A call the policy asks about makes the run wait, holding the agent's other
// work behind it, across a restart; approved, the call runs and its result
// reaches the model, and then the work behind it goes on.
func TestApprovalWaitsAcrossRestartThenRuns(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			h, danger, _ := approvalHarness(t, kind, Config{})
			h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "danger", Arguments: `{"target": "prod"}`}}})
			h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
				return llmtest.Reply{Text: "done: " + lastToolMessage(req)}
			})
			h.start()
			h.createAgent("a1")
			runID := h.createRun("a1", "go")
			h.waitStatus(runID, store.RunWaitingApproval)
			a := h.pendingApproval(runID)
			if a.Tool != "danger" || a.Reason != "danger is high-risk" || a.Rule != "test:ask" || a.ArgsHash != tools.ArgsHash(json.RawMessage(`{"target":"prod"}`)) {
				t.Fatalf("approval = %+v", a)
			}
			ev := h.eventsOf(runID, "tool.requires_approval")
			if len(ev) != 1 || !strings.Contains(string(ev[0].Payload), a.ID) {
				t.Fatalf("tool.requires_approval = %+v", ev)
			}
			// The agent's next run waits behind the one waiting.
			second := h.createRun("a1", "next")
			time.Sleep(300 * time.Millisecond)
			if st := h.getRun(second).Status; st != store.RunPending {
				t.Fatalf("second run is %s while the first waits", st)
			}

			// Restart: nothing resumes the waiting run.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := h.rt.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			h.start()
			time.Sleep(300 * time.Millisecond)
			if st := h.getRun(runID).Status; st != store.RunWaitingApproval || h.llm.RequestCount() != 1 || danger.runs.Load() != 0 {
				t.Fatalf("after restart: run %s, %d model requests, %d tool runs", st, h.llm.RequestCount(), danger.runs.Load())
			}

			if _, err := h.rt.ResolveApproval(ctx, testScope, a.ID, store.ApprovalDecision{Status: store.ApprovalApproved, By: "user:ann"}); err != nil {
				t.Fatal(err)
			}
			run := h.waitRun(runID, 15*time.Second)
			if run.Status != store.RunCompleted || !strings.Contains(run.Output, "did it to") || !strings.Contains(run.Output, a.ID) {
				t.Fatalf("run = %s %q", run.Status, run.Output)
			}
			if danger.runs.Load() != 1 {
				t.Fatalf("tool ran %d times", danger.runs.Load())
			}
			if got := h.waitRun(second, 15*time.Second); got.Status != store.RunCompleted {
				t.Fatalf("second run = %s", got.Status)
			}
			if evs := h.eventsOf(runID, "approval.resolved", "run.resumed"); len(evs) != 2 {
				t.Fatalf("resolved/resumed events = %d", len(evs))
			}
		})
	}
}

// Denied, the call does not run, tool.blocked says why, the model is told
// who denied it and why, and the run goes on to its answer.
func TestApprovalDeniedTellsTheModel(t *testing.T) {
	h, danger, _ := approvalHarness(t, "sqlite", Config{})
	h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "danger", Arguments: `{}`}}})
	h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "told: " + lastToolMessage(req)}
	})
	h.start()
	h.createAgent("a1")
	runID := h.createRun("a1", "go")
	h.waitStatus(runID, store.RunWaitingApproval)
	a := h.pendingApproval(runID)
	if _, err := h.rt.ResolveApproval(context.Background(), testScope, a.ID, store.ApprovalDecision{Status: store.ApprovalDenied, By: "user:ann", Reason: "too risky"}); err != nil {
		t.Fatal(err)
	}
	run := h.waitRun(runID, 15*time.Second)
	if run.Status != store.RunCompleted || run.Output != "told: denied by user:ann: too risky" {
		t.Fatalf("run = %s %q", run.Status, run.Output)
	}
	if danger.runs.Load() != 0 {
		t.Fatal("a denied call ran")
	}
	blocked := h.eventsOf(runID, "tool.blocked")
	if len(blocked) != 1 || !strings.Contains(string(blocked[0].Payload), `"cause":"denied"`) {
		t.Fatalf("tool.blocked = %+v", blocked)
	}
}

// An approval nobody decides expires; the model is told "denied: expired".
func TestApprovalExpiresAndTheRunGoesOn(t *testing.T) {
	h, danger, _ := approvalHarness(t, "postgres", Config{ApprovalTimeout: 200 * time.Millisecond, ApprovalSweep: 50 * time.Millisecond})
	h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "danger", Arguments: `{}`}}})
	h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "told: " + lastToolMessage(req)}
	})
	h.start()
	h.createAgent("a1")
	runID := h.createRun("a1", "go")
	run := h.waitRun(runID, 15*time.Second)
	if run.Status != store.RunCompleted || run.Output != "told: denied: expired" || danger.runs.Load() != 0 {
		t.Fatalf("run = %s %q, tool runs %d", run.Status, run.Output, danger.runs.Load())
	}
	as := h.store.(store.ApprovalStore)
	list, _, err := as.ListApprovals(context.Background(), testScope, store.ApprovalFilter{RunID: runID}, store.Page{})
	if err != nil || len(list) != 1 || list[0].Status != store.ApprovalExpired {
		t.Fatalf("approvals = %+v, %v", list, err)
	}
}

// A policy's deny is a tool.blocked event and the model is told why.
func TestPolicyDenyBlocksAndTellsTheModel(t *testing.T) {
	h, _, forbidden := approvalHarness(t, "sqlite", Config{})
	h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "forbidden", Arguments: `{}`}}})
	h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "told: " + lastToolMessage(req)}
	})
	h.start()
	h.createAgent("a1")
	runID := h.createRun("a1", "go")
	run := h.waitRun(runID, 15*time.Second)
	if run.Output != "told: blocked by policy: never on Thursdays" || forbidden.runs.Load() != 0 {
		t.Fatalf("run output %q, tool runs %d", run.Output, forbidden.runs.Load())
	}
	blocked := h.eventsOf(runID, "tool.blocked")
	if len(blocked) != 1 || !strings.Contains(string(blocked[0].Payload), `"cause":"policy"`) || !strings.Contains(string(blocked[0].Payload), `"rule":"test:deny"`) {
		t.Fatalf("tool.blocked = %+v", blocked)
	}
}

// Cancelling a waiting run ends it cancelled and denies its approval.
func TestCancelWaitingRun(t *testing.T) {
	h, danger, _ := approvalHarness(t, "sqlite", Config{})
	h.llm.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "danger", Arguments: `{}`}}})
	h.start()
	h.createAgent("a1")
	runID := h.createRun("a1", "go")
	h.waitStatus(runID, store.RunWaitingApproval)
	a := h.pendingApproval(runID)
	if _, err := h.rt.CancelRun(context.Background(), testScope, runID); err != nil {
		t.Fatal(err)
	}
	if run := h.waitRun(runID, 15*time.Second); run.Status != store.RunCancelled || danger.runs.Load() != 0 {
		t.Fatalf("run = %s, tool runs %d", run.Status, danger.runs.Load())
	}
	got, err := h.store.(store.ApprovalStore).GetApproval(context.Background(), testScope, a.ID)
	if err != nil || got.Status != store.ApprovalDenied {
		t.Fatalf("approval = %+v, %v", got, err)
	}
}
