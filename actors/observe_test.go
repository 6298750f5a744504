package actors

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/metrics"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// discardExporter drops finished spans, so the SDK's own cost is measured.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkTurnInstrumentation measures what observing one turn costs: the
// observation calls of a run of two steps (a model call each, one tool call,
// a claim, two step commits and the finish), as BenchmarkTurn in
// cmd/openintern runs them, without the work they observe. "none" is the
// runtime's default (no observer, no-op tracer), "metrics" what the daemon
// runs by default (Prometheus, tracing off), "metrics+tracing" adds a
// recording OpenTelemetry SDK whose exporter drops the spans.
func BenchmarkTurnInstrumentation(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(discardExporter{})))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, variant := range []struct {
		name string
		cfg  Config
	}{
		{"none", Config{}},
		{"metrics", Config{Observer: metrics.New()}},
		{"metrics+tracing", Config{Observer: metrics.New(), Tracer: tp.Tracer(TracerName)}},
	} {
		b.Run(variant.name, func(b *testing.B) {
			rt := New(variant.cfg, nil, nil, llm.NewOffline(), nil, quietLogger())
			run := store.Run{ID: "run_bench", AgentID: "a", SessionKey: "s"}
			agent := store.Agent{ID: "a", Name: "Agent"}
			call := llm.ToolCall{ID: "c1", Name: "read_file", Arguments: `{"path":"x"}`}
			answers := []llm.Response{
				{Model: "m", ToolCalls: []llm.ToolCall{call}, FinishReason: "tool_calls", Usage: llm.Usage{PromptTokens: 100, CompletionTokens: 10}},
				{Model: "m", Content: "done", FinishReason: "stop", Usage: llm.Usage{PromptTokens: 120, CompletionTokens: 5}},
			}
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				rt.timeStoreOp("claim_run", start)
				t := &turn{rt: rt, run: run, agent: agent, started: start}
				ctx := t.startRunSpan(context.Background())
				t.spanAgent()
				for step := 1; step <= 2; step++ {
					stepCtx := t.startStep(ctx, step)
					span := t.startLLMSpan(stepCtx, "m")
					t.endLLM(stepCtx, span, "m", answers[step-1], nil, time.Millisecond)
					if step == 1 {
						tspan := t.startToolSpan(stepCtx, call)
						t.endTool(tspan, call, tools.Result{Content: "x"}, tools.OutcomeOK, true, time.Millisecond)
						rt.timeStoreOp("save_step", start)
					}
					rt.timeStoreOp("save_step", start)
				}
				rt.timeStoreOp("finish_run", start)
				t.status = store.RunCompleted
				rt.cfg.Observer.RunFinished(store.RunCompleted)
				t.endTurn(turnOutcome{})
			}
		})
	}
}
