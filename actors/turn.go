package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// workingState is what a checkpoint holds: the run's conversation so far.
type workingState struct {
	Messages []llm.Message `json:"messages"`
	Usage    store.Usage   `json:"usage"`
	// Open is the step in progress once the model's answer asking for tools
	// is stored, with the results of the calls that have finished, each
	// stored (with its tool.result event) as it finishes. A run resumed from
	// it neither asks the model again nor runs a finished call again.
	Open *openStep `json:"open,omitempty"`
	// Model is the model the run started with, resolved so that it names
	// the same provider and model after a restart (see llm.Router.Canonical),
	// even if the agent's model or the default changed meanwhile. Empty in
	// checkpoints made before it existed: those resolve as today.
	Model string `json:"model,omitempty"`
}

// canonicalModel is implemented by a provider that routes by model name
// (llm.Router).
type canonicalModel interface {
	Canonical(model string) (string, error)
}

// openStep is a step whose tool calls are running.
type openStep struct {
	Step   int         `json:"step"`
	Answer llm.Message `json:"answer"`
	// Results are by position in Answer.ToolCalls (call ids from a model are
	// not always unique); nil: not finished.
	Results []*toolResult `json:"results"`
}

// toolResult is a finished tool call as the model will see it.
type toolResult struct {
	CallID  string `json:"call_id"`
	Content string `json:"content"`
	IsError bool   `json:"is_error,omitempty"`
}

// cycleHints are what the actor knows before a cycle: whether mail arrived
// (then the claim is tried at once, without the HasWork read that spares an
// empty inbox a claim transaction) and the agent's row from an earlier turn.
type cycleHints struct {
	mail     bool
	agent    *store.Agent
	agentGen uint64
}

// runCycle claims the agent's next unit of work and executes it. It is the body
// of the agent's worker goroutine.
func (r *Runtime) runCycle(ctx context.Context, key agentKey, w *worker, hints cycleHints, claimed func(runID string)) turnOutcome {
	if !hints.mail {
		has, err := r.store.HasWork(ctx, key.scope, key.agentID)
		if err == nil && !has {
			return turnOutcome{noWork: true}
		}
	}
	claimStarted := time.Now()
	// What the turn reads next comes with the claim where the store can.
	extras := store.ClaimExtras{SessionHistory: r.cfg.SessionHistory, CoreBlocks: r.cfg.Memory != nil}
	claim, err := r.store.ClaimNextRun(ctx, key.scope, key.agentID, NewRunID(), extras)
	r.timeStoreOp("claim_run", claimStarted)
	if errors.Is(err, store.ErrNoWork) {
		return turnOutcome{noWork: true}
	}
	if err != nil {
		switch {
		case errors.Is(err, store.ErrFenced):
			return turnOutcome{fenced: true}
		case stopped(ctx):
			return turnOutcome{suspended: true}
		}
		return turnOutcome{err: fmt.Errorf("claim: %w", err)}
	}
	claimed(claim.Run.ID)
	t := &turn{rt: r, scope: key.scope, claim: claim, run: claim.Run, w: w, cached: hints.agent, started: claimStarted}
	if l, ok := store.FenceOf(ctx); ok {
		t.fence = &l
	}
	out := t.execute(t.startRunSpan(ctx))
	t.endTurn(out)
	out.runID = claim.Run.ID
	out.alone = claim.Alone
	if t.row != nil {
		out.agent, out.agentGen = t.row, hints.agentGen
	}
	return out
}

// turn executes one run: steps of LLM call, tool calls and checkpoint.
type turn struct {
	roleID string // the role the agent acts in within its group, if any (tool policy rules match it)
	rt     *Runtime
	scope  store.Scope
	claim  store.Claim
	run    store.Run
	agent  store.Agent
	w      *worker
	// fence is the agent's lease the turn's writes are made under (nil:
	// unfenced, a single daemon).
	fence *store.Lease

	cached *store.Agent // the agent's row from an earlier turn, if the actor has it
	row    *store.Agent // the row this turn read or reused, before any role is applied

	state   workingState
	steps   int           // steps finished and checkpointed
	pending []store.Event // events of the current step, stored at its next commit
	// openUnstored is the step whose open state (the model's answer and its
	// calls, all read-only) is not stored yet, 0 when none; openErr is the
	// error of storing it while a slow call ran.
	openUnstored int
	openErr      error

	// Observation (see observe.go): when the turn started, the spans of the
	// run and of the current step, and how the run ended (set once FinishRun
	// has stored it).
	started     time.Time
	span        trace.Span
	stepSpan    trace.Span
	stepStarted time.Time
	status      string
	runErr      *store.RunError
}

func (t *turn) execute(ctx context.Context) turnOutcome {
	if t.run.CancelRequested {
		return t.finish(store.RunResult{Status: store.RunCancelled, Error: &store.RunError{Code: "cancelled", Message: "cancelled by request"}})
	}
	agent, err := t.loadAgent(ctx)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return t.finish(store.RunResult{Status: store.RunFailed, Error: &store.RunError{Code: "agent_not_found", Message: "the agent was deleted"}})
		}
		return t.infraError(ctx, fmt.Errorf("load agent: %w", err))
	}
	t.agent = agent
	t.spanAgent()

	firstStep := 1
	if cp := t.claim.Checkpoint; cp != nil {
		if err := json.Unmarshal(cp.State, &t.state); err != nil {
			return t.finish(store.RunResult{Status: store.RunFailed, Error: &store.RunError{Code: "bad_checkpoint", Message: err.Error()}})
		}
		firstStep = cp.Step + 1
		t.steps = cp.Step
		t.emit("run.resumed", "", map[string]any{"from_step": cp.Step})
	} else {
		typ := "run.started"
		if t.claim.Resumed {
			// Resumed before its first checkpoint: run.started was stored only if
			// the first step got as far as its first commit.
			_, n, err := t.rt.store.ListEvents(ctx, t.scope, store.EventFilter{RunID: t.run.ID, Types: []string{"run.started"}, Limit: 1})
			if err != nil {
				return t.infraError(ctx, fmt.Errorf("check run start: %w", err))
			}
			if n > 0 {
				typ = "run.resumed"
			}
		}
		ids := make([]string, len(t.claim.Messages))
		for i, m := range t.claim.Messages {
			ids[i] = m.ID
		}
		// run.started comes first, before what building the context records
		// (memory.searched), so a client that keys on it sees the whole run.
		t.emit(typ, "", map[string]any{"input": t.run.Input, "session_key": t.run.SessionKey, "message_ids": ids, "from_step": 0})
		if err := t.buildContext(ctx); err != nil {
			return t.infraError(ctx, err)
		}
	}

	specs := withoutSkillToolUnlessGranted(t.rt.tools.SpecsFor(ctx, t.scope, t.agent.Tools), t.agent)
	for step := firstStep; step <= t.rt.cfg.MaxSteps; step++ {
		if t.w.pause.Load() {
			return t.suspend()
		}
		stepID := "step_" + strconv.Itoa(step)
		stepCtx := t.startStep(ctx, step)
		open := t.state.Open
		if open == nil || open.Step != step {
			if t.fence != nil {
				// A model call is paid for before anything of the step is
				// written (and fenced): a node that was frozen past its lease
				// must find that out first, not after the call.
				if err := t.rt.confirmLease(ctx, *t.fence); err != nil {
					return t.infraError(ctx, fmt.Errorf("confirm lease: %w", err))
				}
			}
			t.state.Open = nil
			t.emit("step.started", stepID, map[string]any{"step": step})
			resp, llmErr := t.callModel(stepCtx, stepID, specs)
			if llmErr != nil {
				switch cause := context.Cause(ctx); {
				case cause == errRunCancelled:
					return t.finish(store.RunResult{Status: store.RunCancelled, Steps: step - 1, Usage: t.state.Usage, Error: &store.RunError{Code: "cancelled", Message: "cancelled by request"}})
				case ctx.Err() != nil:
					return t.suspend()
				}
				rerr := llmRunError(llmErr)
				out := t.finish(store.RunResult{Status: store.RunFailed, Steps: step, Usage: t.state.Usage, Error: rerr})
				out.llmFailure = rerr
				return out
			}
			answer := llm.Message{Role: llm.RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls, Thinking: resp.Thinking}
			if len(resp.ToolCalls) == 0 {
				t.state.Messages = append(t.state.Messages, answer)
				t.emit("step.completed", stepID, map[string]any{"step": step, "final": true})
				return t.finish(store.RunResult{Status: store.RunCompleted, Output: resp.Content, Steps: step, Usage: t.state.Usage})
			}
			for _, tc := range resp.ToolCalls {
				t.emit("tool.called", stepID, map[string]any{"call_id": tc.ID, "name": tc.Name, "arguments": rawOrString(tc.Arguments)})
			}
			// Store what the model asked for before running tools, so a watcher
			// sees the calls while they are in flight and a crash from here on
			// does not ask the model again. Calls that all only read may run
			// first: a crash before the step is stored then asks the model
			// again, which repeats no side effect, and a step whose calls are
			// quick is stored in one write instead of two. A call still running
			// after openStepGrace gets the open step stored meanwhile.
			open = &openStep{Step: step, Answer: answer, Results: make([]*toolResult, len(resp.ToolCalls))}
			t.state.Open = open
			if t.onlyReads(resp.ToolCalls) {
				t.openUnstored = step
			} else if err := t.commitOpen(step); err != nil {
				return t.commitFailed(ctx, err)
			}
		}
		// Each result is stored as its call finishes, but the last one's: the
		// step's own commit below stores it with the step, a moment later, in
		// one transaction less. If the step stops there instead, it is stored
		// first. (A kill in that moment runs the last call again: its side
		// effects are keyed by the call, and none of its events were stored.)
		unsaved := false
		for i, tc := range open.Answer.ToolCalls {
			if open.Results[i] != nil {
				continue // finished before a crash: its result is stored
			}
			res, how, ask, err := t.runTool(stepCtx, stepID, step, i, tc)
			if err := t.openErr; err != nil {
				return t.commitFailed(ctx, err)
			}
			if how == toolFailed {
				return t.infraError(ctx, err)
			}
			if how == toolWaits && ctx.Err() == nil {
				return t.waitForApproval(stepID, step, i, ask)
			}
			if how != toolDone {
				break
			}
			open.Results[i] = &res
			if i == len(open.Answer.ToolCalls)-1 && ctx.Err() == nil {
				unsaved = true
				continue
			}
			if err := t.commitOpen(step); err != nil {
				return t.commitFailed(ctx, err)
			}
		}
		if unsaved && ctx.Err() != nil {
			if err := t.commitOpen(step); err != nil {
				return t.commitFailed(ctx, err)
			}
		}
		if context.Cause(ctx) == errRunCancelled {
			return t.finish(store.RunResult{Status: store.RunCancelled, Steps: step, Usage: t.state.Usage, Error: &store.RunError{Code: "cancelled", Message: "cancelled by request"}})
		}
		if ctx.Err() != nil {
			// Stopped mid-step: the finished calls are stored, the rest run on resume.
			return t.suspend()
		}
		t.state.Messages = append(t.state.Messages, open.Answer)
		for i, tc := range open.Answer.ToolCalls {
			r := open.Results[i]
			t.state.Messages = append(t.state.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: tc.ID, Name: tc.Name, Content: r.Content})
		}
		t.state.Open = nil
		t.emit("step.completed", stepID, map[string]any{"step": step, "tool_calls": len(open.Answer.ToolCalls)})
		cpState, _ := json.Marshal(t.state)
		if err := t.commit(&store.Checkpoint{RunID: t.run.ID, Step: step, State: cpState, UpdatedAt: time.Now().UTC()}); err != nil {
			return t.commitFailed(ctx, err)
		}
		t.steps = step
	}
	reason := fmt.Sprintf("the run reached the step limit (%d) without a final answer", t.rt.cfg.MaxSteps)
	return t.finish(store.RunResult{Status: store.RunFailed, Steps: t.rt.cfg.MaxSteps, Usage: t.state.Usage, Error: &store.RunError{Code: "max_steps", Message: reason}})
}

func (t *turn) loadAgent(ctx context.Context) (store.Agent, error) {
	var (
		a   store.Agent
		err error
	)
	switch {
	case t.cached != nil && t.cached.ID == t.run.AgentID:
		a = *t.cached
	case t.claim.Run.AgentID == store.MainAgentID:
		a, err = t.rt.store.EnsureAgent(ctx, store.Agent{Scope: t.scope, ID: store.MainAgentID, Name: "Main agent"})
	default:
		a, err = t.rt.store.GetAgent(ctx, t.scope, t.run.AgentID)
	}
	if err != nil {
		return a, err
	}
	row := a
	t.row = &row
	if t.run.GroupID != "" {
		if a, err = t.actInRole(ctx, a); err != nil {
			return a, err
		}
	}
	return withSkillTool(a), nil
}

// noTools is an allowed list no tool name matches: a role with an empty tool
// list permits nothing (an empty allowed list would permit everything).
var noTools = []string{""}

// actInRole applies the agent's role in the run's group: the role's prompt
// comes first, its model is used when the agent names none, and its tool list,
// when it has one, replaces the agent's. An agent that has left the group works
// as itself.
func (t *turn) actInRole(ctx context.Context, a store.Agent) (store.Agent, error) {
	roleID := t.run.RoleID
	if roleID == "" {
		m, err := t.rt.store.GetMember(ctx, t.scope, t.run.GroupID, a.ID)
		if errors.Is(err, store.ErrNotFound) {
			return a, nil
		}
		if err != nil {
			return a, fmt.Errorf("membership: %w", err)
		}
		roleID = m.RoleID
	}
	role, err := t.rt.store.GetRole(ctx, t.scope, roleID)
	if errors.Is(err, store.ErrNotFound) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("role: %w", err)
	}
	t.roleID = role.ID
	prompt := a.SystemPrompt
	if prompt == "" {
		prompt = t.rt.cfg.DefaultPrompt
	}
	var b strings.Builder
	fmt.Fprintf(&b, "You are a member of the team %q with the role %s.", t.run.GroupID, role.Name)
	if role.Description != "" {
		b.WriteString(" " + role.Description)
	}
	if role.SystemPrompt != "" {
		b.WriteString("\n\n" + role.SystemPrompt)
	}
	b.WriteString("\n\n" + prompt)
	a.SystemPrompt = b.String()
	if a.Model == "" {
		a.Model = role.Model
	}
	// A role's skills add to the agent's (its tools replace them, below).
	a.Skills = mergeSkills(a.Skills, role.Skills)
	if role.AllowedTools != nil {
		a.Tools = role.AllowedTools
		if len(a.Tools) == 0 {
			a.Tools = noTools
		}
	}
	return a, nil
}

// buildContext starts the conversation: system prompt, the session's earlier
// turns (windowed, so a turn's cost does not grow with the session), the input.
func (t *turn) buildContext(ctx context.Context) error {
	prompt := t.agent.SystemPrompt
	if prompt == "" {
		prompt = t.rt.cfg.DefaultPrompt
	}
	mem := t.rt.cfg.Memory
	if mem != nil {
		// Memory failures degrade the turn (no recall) rather than fail it.
		var core string
		var err error
		if t.claim.CoreBlocksRead {
			core = mem.CorePromptOf(t.claim.CoreBlocks)
		} else {
			core, err = mem.CorePrompt(ctx, t.scope, t.run.AgentID)
		}
		if err == nil && core != "" {
			prompt += "\n\n" + core
		}
	}
	prompt += t.skillsPrompt(ctx)
	msgs := []llm.Message{{Role: llm.RoleSystem, Content: prompt}}
	if mem != nil && t.run.Input != "" {
		recalled, err := mem.Recall(ctx, t.scope, t.run.AgentID, t.run.Input)
		payload := map[string]any{"query": t.run.Input, "results": recalled}
		if err != nil {
			payload["error"] = err.Error()
		}
		t.emit("memory.searched", "", payload)
		if len(recalled) > 0 {
			var b strings.Builder
			b.WriteString("Relevant memories (snippets; memory_get gives the full text):\n")
			for _, r := range recalled {
				fmt.Fprintf(&b, "- [%s %s] %s\n", r.Type, r.ID, r.Snippet)
			}
			msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: b.String()})
		}
	}
	if t.rt.cfg.SessionHistory > 0 && t.run.SessionKey != "" {
		history := t.claim.History
		if !t.claim.HistoryRead {
			var err error
			history, err = t.rt.store.SessionHistory(ctx, t.scope, t.run.AgentID, t.run.SessionKey, t.rt.cfg.SessionHistory)
			if err != nil {
				return fmt.Errorf("session history: %w", err)
			}
		}
		for _, h := range history {
			if h.RunID == t.run.ID {
				continue
			}
			msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: h.Input}, llm.Message{Role: llm.RoleAssistant, Content: h.Output})
		}
	}
	msgs = append(msgs, llm.Message{Role: llm.RoleUser, Content: t.run.Input})
	t.state.Messages = msgs
	return nil
}

func (t *turn) callModel(ctx context.Context, stepID string, specs []llm.ToolSpec) (llm.Response, error) {
	model := t.state.Model
	if model == "" {
		model = t.agent.Model
		if model == "" {
			model = t.rt.cfg.DefaultModel
		}
		if c, ok := t.rt.model.(canonicalModel); ok {
			// Pinned in the checkpoint; an unknown name fails in Complete below.
			if canonical, err := c.Canonical(model); err == nil {
				t.state.Model = canonical
				model = canonical
			}
		}
	}
	req := llm.Request{Model: model, Messages: t.state.Messages, Tools: specs}
	started := time.Now()
	onToken := func(delta string) {
		payload, _ := json.Marshal(map[string]string{"delta": delta})
		t.rt.bus.Publish(context.Background(), store.Event{
			Scope: t.scope, RunID: t.run.ID, AgentID: t.run.AgentID, GroupID: t.run.GroupID,
			StepID: stepID, Type: "llm.token", TS: time.Now().UTC(), Payload: payload,
		})
	}
	span := t.startLLMSpan(ctx, model)
	resp, err := t.rt.model.Complete(ctx, req, onToken)
	t.endLLM(ctx, span, model, resp, err, time.Since(started))
	payload := map[string]any{
		"provider":        firstNonEmpty(resp.Provider, t.rt.model.Name()),
		"model":           firstNonEmpty(resp.Model, model),
		"prompt_messages": len(req.Messages),
		"prompt_tail":     req.Messages[len(req.Messages)-1],
		"duration_ms":     time.Since(started).Milliseconds(),
	}
	if err != nil {
		payload["error"] = err.Error()
		t.emit("llm.called", stepID, payload)
		return resp, err
	}
	// Model output is stored (events, checkpoint, the run's output): a NUL,
	// which PostgreSQL text cannot hold, is replaced on every store alike.
	resp.Content = store.CleanText(resp.Content)
	for i := range resp.ToolCalls {
		tc := &resp.ToolCalls[i]
		tc.ID, tc.Name, tc.Arguments = store.CleanText(tc.ID), store.CleanText(tc.Name), store.CleanText(tc.Arguments)
	}
	t.state.Usage.PromptTokens += resp.Usage.PromptTokens
	t.state.Usage.CompletionTokens += resp.Usage.CompletionTokens
	t.state.Usage.TotalTokens += resp.Usage.TotalTokens
	t.state.Usage.CacheReadTokens += resp.Usage.CacheReadTokens
	t.state.Usage.CacheWriteTokens += resp.Usage.CacheWriteTokens
	if resp.FallbackFrom != "" {
		payload["fallback_from"] = resp.FallbackFrom
		payload["failed"] = resp.Failed
	}
	if len(resp.Thinking) > 0 {
		payload["thinking"] = resp.Thinking
	}
	payload["content"] = resp.Content
	payload["tool_calls"] = resp.ToolCalls
	payload["finish_reason"] = resp.FinishReason
	payload["usage"] = resp.Usage
	t.emit("llm.called", stepID, payload)
	return resp, nil
}

// toolRun is how runTool left a call.
type toolRun int

const (
	toolDone        toolRun = iota // finished: its result is recorded
	toolInterrupted                // cut short by a cancel or shutdown; runs again on resume
	toolWaits                      // the policy asks a person; the run waits (ask is set)
	toolFailed                     // the store could not be read (err is set)
)

// approvalAsk is a call that must wait for a person's approval.
type approvalAsk struct {
	call    tools.Call
	verdict tools.Verdict
}

// openStepGrace is how long read-only calls run before their open step is
// stored anyway, so that a watcher sees a slow call in flight.
const openStepGrace = 100 * time.Millisecond

// readOnlyTools is a ToolRouter that knows which tools only read
// (tools.Registry).
type readOnlyTools interface {
	ReadOnly(scope store.Scope, name string) bool
}

// onlyReads reports whether every call names a tool that declares it
// changes nothing.
func (t *turn) onlyReads(calls []llm.ToolCall) bool {
	ro, ok := t.rt.tools.(readOnlyTools)
	if !ok {
		return false
	}
	for _, tc := range calls {
		if !ro.ReadOnly(t.scope, tc.Name) {
			return false
		}
	}
	return true
}

// routeDetail routes a call with the agent's allowed tools. While the open
// step is unstored (see openUnstored), a call that outlasts openStepGrace
// has it stored as it runs; the call only reads, so the two do not meet.
func (t *turn) routeDetail(ctx context.Context, call tools.Call) tools.Routed {
	if t.openUnstored == 0 {
		return t.rt.tools.RouteDetail(ctx, call, t.agent.Tools)
	}
	allowed := t.agent.Tools
	done := make(chan tools.Routed, 1)
	go func() { done <- t.rt.tools.RouteDetail(ctx, call, allowed) }()
	grace := time.NewTimer(openStepGrace)
	defer grace.Stop()
	select {
	case r := <-done:
		return r
	case <-grace.C:
	}
	step := t.openUnstored
	t.openUnstored = 0
	t.openErr = t.commitOpen(step)
	return <-done
}

// runTool runs one call of an open step and queues its tool.result event.
// A call the policy asks a person about runs once its approval is approved
// (with call.ApprovalID set), gets a denial as its result once denied or
// expired, and otherwise makes the run wait (toolWaits). A call cut short by
// a cancel or shutdown of the run (toolInterrupted) has no result: it is
// not recorded and runs again when the run resumes.
func (t *turn) runTool(ctx context.Context, stepID string, step, index int, tc llm.ToolCall) (toolResult, toolRun, *approvalAsk, error) {
	started := time.Now()
	call := tools.Call{
		Scope: t.scope, AgentID: t.run.AgentID, AgentName: t.agent.Name, Role: t.roleID, RunID: t.run.ID, GroupID: t.run.GroupID, ParentRunID: t.run.ParentRunID,
		SessionKey: t.run.SessionKey, CallID: tc.ID, Name: tc.Name, Args: json.RawMessage(tc.Arguments),
		Key: fmt.Sprintf("%s/%d/%d/%s", t.run.ID, step, index, tc.ID),
	}
	span := t.startToolSpan(ctx, tc)
	routed := t.routeDetail(ctx, call)
	blocked := map[string]any{}
	if routed.Outcome == tools.OutcomeNeedsApproval {
		verdict := tools.Verdict{Effect: tools.EffectAsk, Reason: routed.Result.Content}
		if routed.Verdict != nil {
			verdict = *routed.Verdict
		}
		as := t.rt.approvals
		if as == nil {
			routed = tools.Routed{Outcome: tools.OutcomeBlocked, Verdict: routed.Verdict, Result: tools.Result{IsError: true,
				Content: fmt.Sprintf("tool %q needs a person's approval (%s), but this daemon keeps no approvals", tc.Name, verdict.Reason)}}
			blocked["cause"] = "approval_unavailable"
		} else {
			a, err := as.GetApprovalForCall(ctx, t.scope, t.run.ID, call.Key)
			switch {
			case errors.Is(err, store.ErrNotFound) || (err == nil && a.Status == store.ApprovalPending):
				t.endTool(span, tc, routed.Result, routed.Outcome, false, time.Since(started))
				return toolResult{}, toolWaits, &approvalAsk{call: call, verdict: verdict}, nil
			case err != nil:
				t.endTool(span, tc, routed.Result, routed.Outcome, false, time.Since(started))
				if ctx.Err() != nil {
					return toolResult{}, toolInterrupted, nil, nil
				}
				return toolResult{}, toolFailed, nil, fmt.Errorf("approval of %s: %w", call.Key, err)
			case a.Status == store.ApprovalApproved && a.ArgsHash == tools.ArgsHash(call.Args):
				call.ApprovalID = a.ID
				routed = t.routeDetail(ctx, call)
			default:
				content := "denied: expired"
				cause := "expired"
				switch a.Status {
				case store.ApprovalApproved:
					// The checkpointed call cannot change, so this is a bug
					// or tampering: the approval was for other arguments.
					content, cause = "denied: the approval was given for other arguments", "approval_mismatch"
				case store.ApprovalDenied:
					content, cause = "denied by "+a.DecidedBy, "denied"
					if a.DecisionReason != "" {
						content += ": " + a.DecisionReason
					}
				}
				routed = tools.Routed{Outcome: tools.OutcomeBlocked, Verdict: routed.Verdict, Result: tools.Result{Content: content, IsError: true}}
				blocked["cause"], blocked["approval_id"] = cause, a.ID
			}
		}
	}
	out, outcome := routed.Result, routed.Outcome
	interrupted := outcome == tools.OutcomeError && ctx.Err() != nil
	t.endTool(span, tc, out, outcome, !interrupted, time.Since(started))
	if interrupted {
		return toolResult{}, toolInterrupted, nil, nil
	}
	out.Content = store.CleanText(out.Content)
	if outcome == tools.OutcomeBlocked {
		blocked["call_id"], blocked["name"], blocked["reason"] = tc.ID, tc.Name, out.Content
		if _, ok := blocked["cause"]; !ok {
			blocked["cause"] = "not_permitted"
			if routed.Verdict != nil {
				blocked["cause"] = "policy"
			}
		}
		if v := routed.Verdict; v != nil && v.Rule != "" {
			blocked["rule"] = v.Rule
		}
		t.emit("tool.blocked", stepID, blocked)
	}
	t.emit("tool.result", stepID, map[string]any{
		"call_id": tc.ID, "name": tc.Name, "content": out.Content, "is_error": out.IsError,
		"outcome": outcome.String(), "duration_ms": time.Since(started).Milliseconds(),
	})
	return toolResult{CallID: tc.ID, Content: out.Content, IsError: out.IsError}, toolDone, nil, nil
}

// waitForApproval stores the call's approval (pending), the checkpoint with
// the open step and its finished results, tool.requires_approval and the
// run's waiting_approval status in one transaction, and ends the turn: the
// agent gives back its slot and claims nothing until the approval is
// decided (ResolveApproval, or its expiry), which makes the run claimable
// again; it then resumes here without asking the model again.
func (t *turn) waitForApproval(stepID string, step, index int, ask *approvalAsk) turnOutcome {
	call := ask.call
	a := store.Approval{
		ID: tools.DerivedID("appr_", call), RunID: t.run.ID, AgentID: t.run.AgentID, Step: step, CallIndex: index,
		CallID: call.CallID, CallKey: call.Key, Tool: call.Name, Arguments: string(call.Args),
		ArgsHash: tools.ArgsHash(call.Args), Reason: ask.verdict.Reason, Rule: ask.verdict.Rule,
		ExpiresAt: time.Now().Add(t.rt.cfg.ApprovalTimeout).UTC(),
	}
	t.emit("tool.requires_approval", stepID, map[string]any{
		"approval_id": a.ID, "call_id": call.CallID, "name": call.Name, "arguments": rawOrString(string(call.Args)),
		"reason": a.Reason, "rule": a.Rule, "expires_at": a.ExpiresAt,
	})
	raw, err := json.Marshal(t.state)
	if err != nil {
		return turnOutcome{err: fmt.Errorf("checkpoint: %w", err)}
	}
	sctx, cancel := t.storeCtx()
	defer cancel()
	started := time.Now()
	_, evs, err := t.rt.approvals.WaitForApproval(sctx, t.scope, a,
		&store.Checkpoint{RunID: t.run.ID, Step: step - 1, State: raw, UpdatedAt: time.Now().UTC()}, t.pending)
	t.rt.timeStoreOp("wait_for_approval", started)
	if _, err := t.rt.rec.Stored(evs, err); err != nil {
		if errors.Is(err, store.ErrFenced) {
			return turnOutcome{fenced: true}
		}
		if errors.Is(err, store.ErrPermanent) {
			return t.rejected(fmt.Errorf("wait for approval: %w", err))
		}
		// Not stored: the run is still running and the next claim resumes
		// it, finding the approval decided (a race with a resolver) or
		// asking again.
		return turnOutcome{err: fmt.Errorf("wait for approval: %w", err)}
	}
	t.pending = nil
	t.status = store.RunWaitingApproval
	return turnOutcome{}
}

// commitOpen stores the queued events with a checkpoint of the last finished
// step that also holds the open one (its answer and finished results).
func (t *turn) commitOpen(step int) error {
	raw, err := json.Marshal(t.state)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return t.commit(&store.Checkpoint{RunID: t.run.ID, Step: step - 1, State: raw, UpdatedAt: time.Now().UTC()})
}

// emit queues an event for the step's next commit.
func (t *turn) emit(typ, stepID string, payload any) {
	raw, err := json.Marshal(payload)
	if err != nil {
		raw, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
	}
	t.pending = append(t.pending, store.Event{
		Scope: t.scope, RunID: t.run.ID, AgentID: t.run.AgentID, GroupID: t.run.GroupID,
		StepID: stepID, Type: typ, TS: time.Now().UTC(), Payload: raw,
	})
}

// commit stores the queued events and the checkpoint in one transaction, then
// publishes the events live. It uses its own bounded context: a step that
// finished before a shutdown or cancel is still worth keeping.
func (t *turn) commit(cp *store.Checkpoint) error {
	sctx, cancel := t.storeCtx()
	defer cancel()
	started := time.Now()
	_, err := t.rt.rec.Stored(t.rt.store.SaveStep(sctx, t.scope, t.run.ID, cp, t.pending))
	t.rt.timeStoreOp("save_step", started)
	if err != nil {
		return err
	}
	t.pending = t.pending[:0]
	t.openUnstored = 0 // a checkpoint holds the open step, if any
	return nil
}

// storeCtx is the runtime's storeCtx under the turn's fence.
func (t *turn) storeCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := t.rt.storeCtx()
	if t.fence != nil {
		ctx = store.WithFence(ctx, *t.fence)
	}
	return ctx, cancel
}

func (t *turn) commitFailed(ctx context.Context, err error) turnOutcome {
	if errors.Is(err, store.ErrFenced) {
		return turnOutcome{fenced: true}
	}
	if errors.Is(err, store.ErrPermanent) {
		return t.rejected(fmt.Errorf("save step: %w", err))
	}
	return t.infraError(ctx, fmt.Errorf("save step: %w", err))
}

// rejected fails the run because the store refused what it was given (see
// store.ErrPermanent): retrying would fail the same way, with the model
// called again each time and the agent's inbox blocked behind the run. The
// events the store refused are dropped; run.failed says why.
func (t *turn) rejected(err error) turnOutcome {
	t.pending = nil
	return t.finish(store.RunResult{Status: store.RunFailed, Steps: t.steps, Usage: t.state.Usage,
		Error: &store.RunError{Code: "store_rejected", Message: err.Error()}})
}

// finish ends the run with its final events and marks its messages read, in one transaction.
func (t *turn) finish(res store.RunResult) turnOutcome {
	switch res.Status {
	case store.RunCompleted:
		t.emit("run.completed", "", map[string]any{"output": res.Output, "steps": res.Steps, "usage": res.Usage})
	case store.RunFailed:
		t.emit("run.failed", "", map[string]any{"error": res.Error, "steps": res.Steps})
	case store.RunCancelled:
		t.emit("run.cancelled", "", map[string]any{"error": res.Error, "steps": res.Steps})
	}
	if res.Status == store.RunCompleted {
		res.Outbox = t.reportToParent(res.Output)
		res.Remember = t.rt.cfg.Memory != nil
	}
	sctx, cancel := t.storeCtx()
	defer cancel()
	started := time.Now()
	_, err := t.rt.rec.Stored(t.rt.store.FinishRun(sctx, t.scope, t.run.ID, res, t.pending))
	t.rt.timeStoreOp("finish_run", started)
	if err != nil {
		if errors.Is(err, store.ErrFenced) {
			// Another node owns the agent now and finishes the run itself.
			return turnOutcome{fenced: true}
		}
		if errors.Is(err, store.ErrPermanent) && (res.Error == nil || res.Error.Code != "store_rejected") {
			cancel()
			return t.rejected(fmt.Errorf("finish run: %w", err))
		}
		if errors.Is(err, store.ErrConflict) {
			// Someone else ended it (a cancel of a run that was never started, or a
			// duplicate activation); nothing of ours to record.
			return turnOutcome{}
		}
		return turnOutcome{err: fmt.Errorf("finish run: %w", err)}
	}
	t.pending = nil
	t.status, t.runErr = res.Status, res.Error
	t.rt.cfg.Observer.RunFinished(res.Status)
	for _, m := range res.Outbox {
		t.rt.Wake(m.Scope, m.AgentID)
	}
	if t.run.ParentRunID != "" {
		t.rt.groupRunChanged(t.scope, t.run.GroupID, t.run.ParentRunID)
	}
	// FinishRun queued the run for its episodic summary in the transaction
	// that completed it, so a failed finish (retried from the checkpoint)
	// never leaves a summary of a run that did not end, nor two of one that
	// did; this hands the writer what it needs to write it.
	if mem := t.rt.cfg.Memory; mem != nil && res.Remember {
		ended := time.Now()
		mem.RememberRun(store.Run{Scope: t.scope, ID: t.run.ID, AgentID: t.run.AgentID, SessionKey: t.run.SessionKey,
			Input: t.run.Input, Status: store.RunCompleted, Output: res.Output, EndedAt: &ended})
	}
	return turnOutcome{}
}

// reportToParent is the message a spawned agent sends its parent when it
// finishes work the parent gave it. It is stored in the transaction that ends
// the run, so the report is neither lost nor sent twice.
func (t *turn) reportToParent(output string) []store.NewMessage {
	parent := t.agent.ParentID
	if parent == "" {
		return nil
	}
	fromParent := false
	for _, m := range t.claim.Messages {
		if m.SenderType == store.SenderAgent && m.SenderID == parent {
			fromParent = true
		}
	}
	if !fromParent {
		return nil
	}
	return []store.NewMessage{{
		Scope: t.scope, ID: reportMessageID(t.run.ID), AgentID: parent, SessionKey: "agent:" + t.run.AgentID,
		GroupID: t.run.GroupID, SenderType: store.SenderAgent, SenderID: t.run.AgentID,
		Content: fmt.Sprintf("Report from %s (run %s):\n%s", t.run.AgentID, t.run.ID, output),
	}}
}

// suspend leaves the run running with its last checkpoint; a later activation
// resumes it. Events of the step not yet stored are dropped with it; what was
// stored (the model's answer, finished tool results) is reused on resume.
func (t *turn) suspend() turnOutcome {
	return turnOutcome{suspended: true}
}

func (t *turn) infraError(ctx context.Context, err error) turnOutcome {
	if errors.Is(err, store.ErrFenced) {
		return turnOutcome{fenced: true}
	}
	if stopped(ctx) {
		return turnOutcome{suspended: true}
	}
	return turnOutcome{err: err}
}

// stopped says whether the worker was stopped for a reason that leaves its
// run running: a shutdown, or a lease another node took.
func stopped(ctx context.Context) bool {
	cause := context.Cause(ctx)
	return cause == errShutdown || cause == errLeaseLost
}

func llmRunError(err error) *store.RunError {
	code := "llm_error"
	switch {
	case errors.Is(err, llm.ErrAuth):
		code = "llm_auth"
	case errors.Is(err, llm.ErrRateLimited):
		code = "llm_rate_limited"
	case errors.Is(err, llm.ErrUnavailable):
		code = "llm_unavailable"
	case errors.Is(err, llm.ErrBadRequest):
		code = "llm_bad_request"
	case errors.Is(err, context.DeadlineExceeded):
		code = "llm_timeout"
	}
	return &store.RunError{Code: code, Message: err.Error()}
}

// rawOrString keeps valid JSON arguments as JSON in the event and anything else as text.
func rawOrString(s string) any {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
