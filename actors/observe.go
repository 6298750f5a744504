package actors

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/tools"
)

// Observer is told what the agents do, for metrics. Its labels must stay
// daemon-wide: nothing here names an agent, a run or a tenant.
// Config.Observer nil observes nothing.
type Observer interface {
	// RunFinished: a run ended with status (completed, failed, cancelled).
	RunFinished(status string)
	// TurnDone: a claimed run's turn ended with outcome (the run's status,
	// "suspended", "fenced" (another node owns the agent now) or "error") after d.
	TurnDone(outcome string, d time.Duration)
	StepDone(d time.Duration)
	LLMCalled(provider, model, outcome string, d time.Duration, inputTokens, outputTokens int)
	ToolCalled(tool, outcome string, d time.Duration)
	// StoreOp: one store transaction of the turn (claim_run, save_step, finish_run).
	StoreOp(op string, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) RunFinished(string)                                        {}
func (nopObserver) TurnDone(string, time.Duration)                            {}
func (nopObserver) StepDone(time.Duration)                                    {}
func (nopObserver) LLMCalled(string, string, string, time.Duration, int, int) {}

// cacheObserver is an Observer that also counts prompt-cache tokens.
type cacheObserver interface {
	LLMCacheTokens(provider, model string, readTokens, writeTokens int)
}

func (nopObserver) ToolCalled(string, string, time.Duration) {}
func (nopObserver) StoreOp(string, time.Duration)            {}

// TracerName is the instrumentation scope of the agents' spans.
const TracerName = "github.com/openintern/openintern/actors"

func defaultTracer() trace.Tracer { return noop.NewTracerProvider().Tracer(TracerName) }

// Attribute keys of the OpenTelemetry GenAI semantic conventions, and the
// daemon's own.
const (
	attrOperation     = attribute.Key("gen_ai.operation.name")
	attrSystem        = attribute.Key("gen_ai.system") // older name of gen_ai.provider.name, still read by many backends
	attrProvider      = attribute.Key("gen_ai.provider.name")
	attrRequestModel  = attribute.Key("gen_ai.request.model")
	attrResponseModel = attribute.Key("gen_ai.response.model")
	attrInputTokens   = attribute.Key("gen_ai.usage.input_tokens")
	attrOutputTokens  = attribute.Key("gen_ai.usage.output_tokens")
	attrFinishReasons = attribute.Key("gen_ai.response.finish_reasons")
	attrAgentID       = attribute.Key("gen_ai.agent.id")
	attrAgentName     = attribute.Key("gen_ai.agent.name")
	attrConversation  = attribute.Key("gen_ai.conversation.id")
	attrToolName      = attribute.Key("gen_ai.tool.name")
	attrToolCallID    = attribute.Key("gen_ai.tool.call.id")
	attrToolType      = attribute.Key("gen_ai.tool.type")
	attrErrorType     = attribute.Key("error.type")
	attrRunID         = attribute.Key("openintern.run.id")
	attrRunStatus     = attribute.Key("openintern.run.status")
	attrGroupID       = attribute.Key("openintern.group.id")
	attrParentRun     = attribute.Key("openintern.parent_run.id")
	attrStep          = attribute.Key("openintern.step")
	attrToolOutcome   = attribute.Key("openintern.tool.outcome")
)

// startRunSpan starts the run's span; its name and agent attributes are set
// once the agent is loaded (setAgent).
func (t *turn) startRunSpan(ctx context.Context) context.Context {
	ctx, t.span = t.rt.cfg.Tracer.Start(ctx, "invoke_agent "+t.run.AgentID, trace.WithSpanKind(trace.SpanKindInternal))
	if t.span.IsRecording() {
		t.span.SetAttributes(attrOperation.String("invoke_agent"), attrAgentID.String(t.run.AgentID), attrRunID.String(t.run.ID))
		if t.run.SessionKey != "" {
			t.span.SetAttributes(attrConversation.String(t.run.SessionKey))
		}
		if t.run.GroupID != "" {
			t.span.SetAttributes(attrGroupID.String(t.run.GroupID))
		}
		if t.run.ParentRunID != "" {
			// A member's run of a group run: its own trace, found from the group run's id.
			t.span.SetAttributes(attrParentRun.String(t.run.ParentRunID))
		}
	}
	return ctx
}

func (t *turn) spanAgent() {
	if !t.span.IsRecording() {
		return
	}
	name := firstNonEmpty(t.agent.Name, t.agent.ID)
	t.span.SetName("invoke_agent " + name)
	t.span.SetAttributes(attrAgentName.String(name))
}

// endTurn closes the run's span and records the turn.
func (t *turn) endTurn(out turnOutcome) {
	outcome := t.status
	switch {
	case outcome != "":
	case out.suspended:
		outcome = "suspended"
	case out.fenced:
		outcome = "fenced" // another node owns the agent now
	case out.err != nil:
		outcome = "error"
	default:
		outcome = "ended" // someone else ended the run (a conflict at finish)
	}
	t.endStep()
	t.rt.cfg.Observer.TurnDone(outcome, time.Since(t.started))
	if t.span.IsRecording() {
		t.span.SetAttributes(attrRunStatus.String(outcome))
		switch {
		case out.err != nil:
			t.span.RecordError(out.err)
			t.span.SetStatus(codes.Error, out.err.Error())
		case t.runErr != nil:
			t.span.SetAttributes(attrErrorType.String(t.runErr.Code))
			if outcome == "failed" {
				t.span.SetStatus(codes.Error, t.runErr.Message)
			}
		}
	}
	t.span.End()
}

// startStep ends the previous step's span and starts the step's, a child of
// the run's. The step's model and tool calls are its children.
func (t *turn) startStep(ctx context.Context, step int) context.Context {
	t.endStep()
	t.stepStarted = time.Now()
	ctx, t.stepSpan = t.rt.cfg.Tracer.Start(ctx, "step", trace.WithSpanKind(trace.SpanKindInternal))
	if t.stepSpan.IsRecording() {
		t.stepSpan.SetAttributes(attrStep.Int(step))
	}
	return ctx
}

// endStep ends the current step's span, if any: at the next step or when
// the turn ends (the last step's span includes finishing the run).
func (t *turn) endStep() {
	if t.stepSpan == nil {
		return
	}
	t.rt.cfg.Observer.StepDone(time.Since(t.stepStarted))
	t.stepSpan.End()
	t.stepSpan = nil
}

// startLLMSpan starts a model call's span ("chat <model>", or "chat" when
// the request names no model and the provider picks; a client call).
func (t *turn) startLLMSpan(ctx context.Context, model string) trace.Span {
	name := "chat"
	if model != "" {
		name += " " + model
	}
	_, span := t.rt.cfg.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		provider := t.rt.model.Name()
		span.SetAttributes(attrOperation.String("chat"), attrProvider.String(provider), attrSystem.String(provider), attrRequestModel.String(model))
	}
	return span
}

// endLLM records a model call in its span and the metrics.
func (t *turn) endLLM(ctx context.Context, span trace.Span, model string, resp llm.Response, err error, d time.Duration) {
	outcome := "ok"
	if err != nil {
		outcome = llmOutcome(ctx, err)
	}
	provider := firstNonEmpty(resp.Provider, t.rt.model.Name())
	t.rt.cfg.Observer.LLMCalled(provider, firstNonEmpty(resp.Model, model), outcome, d, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	if c, ok := t.rt.cfg.Observer.(cacheObserver); ok && (resp.Usage.CacheReadTokens > 0 || resp.Usage.CacheWriteTokens > 0) {
		c.LLMCacheTokens(provider, firstNonEmpty(resp.Model, model), resp.Usage.CacheReadTokens, resp.Usage.CacheWriteTokens)
	}
	if span.IsRecording() {
		if err != nil {
			span.SetAttributes(attrErrorType.String(outcome))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attrResponseModel.String(firstNonEmpty(resp.Model, model)),
				attrInputTokens.Int(resp.Usage.PromptTokens), attrOutputTokens.Int(resp.Usage.CompletionTokens))
			if resp.FinishReason != "" {
				span.SetAttributes(attrFinishReasons.StringSlice([]string{resp.FinishReason}))
			}
		}
	}
	span.End()
}

// llmOutcome classifies a failed model call for the metrics: cancelled, or
// the run error's code without its "llm_" prefix (timeout, rate_limited, …).
func llmOutcome(ctx context.Context, err error) string {
	if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		return "cancelled"
	}
	return strings.TrimPrefix(llmRunError(err).Code, "llm_")
}

// startToolSpan starts a tool call's span ("execute_tool <tool>").
func (t *turn) startToolSpan(ctx context.Context, tc llm.ToolCall) trace.Span {
	_, span := t.rt.cfg.Tracer.Start(ctx, "execute_tool "+tc.Name, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		span.SetAttributes(attrOperation.String("execute_tool"), attrToolName.String(tc.Name), attrToolCallID.String(tc.ID), attrToolType.String("function"))
	}
	return span
}

// endTool records a tool call in its span and the metrics; ok false: it was
// cut short by a cancel or shutdown and will run again.
func (t *turn) endTool(span trace.Span, tc llm.ToolCall, out tools.Result, outcome tools.Outcome, ok bool, d time.Duration) {
	if !ok {
		span.SetStatus(codes.Error, "interrupted")
		span.End()
		return
	}
	name := tc.Name
	if outcome == tools.OutcomeUnknown {
		name = "unknown" // the model's made-up name is no label
	}
	t.rt.cfg.Observer.ToolCalled(name, outcome.String(), d)
	if span.IsRecording() {
		span.SetAttributes(attrToolOutcome.String(outcome.String()))
		if out.IsError {
			span.SetAttributes(attrErrorType.String(outcome.String()))
			span.SetStatus(codes.Error, truncate(out.Content, 256))
		}
	}
	span.End()
}

// timeStoreOp records the latency of a store call made by the turn.
func (r *Runtime) timeStoreOp(op string, started time.Time) {
	r.cfg.Observer.StoreOp(op, time.Since(started))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") // a rune cut in two is dropped

}
