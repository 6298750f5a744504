package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/openintern/openintern/store"
)

// otlpSink is an OTLP/HTTP trace receiver on 127.0.0.1: it decodes what the
// daemon's exporter really sends (protobuf ExportTraceServiceRequest).
type otlpSink struct {
	srv *httptest.Server

	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
	bad      []string
}

func newOTLPSink(t *testing.T) *otlpSink {
	s := &otlpSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.receive))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *otlpSink) receive(w http.ResponseWriter, r *http.Request) {
	// No keep-alive: the exporter's idle connection would outlive the test.
	w.Header().Set("Connection", "close")
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
		s.bad = append(s.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				s.services = append(s.services, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			s.spans = append(s.spans, ss.GetSpans()...)
		}
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *otlpSink) received() ([]*tracepb.Span, []string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.spans), slices.Clone(s.services), slices.Clone(s.bad)
}

// attrs flattens a span's attributes: strings, ints and string lists.
func attrs(sp *tracepb.Span) map[string]any {
	out := map[string]any{}
	for _, kv := range sp.GetAttributes() {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			out[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			out[kv.GetKey()] = v.IntValue
		case *commonpb.AnyValue_ArrayValue:
			var list []string
			for _, e := range v.ArrayValue.GetValues() {
				list = append(list, e.GetStringValue())
			}
			out[kv.GetKey()] = list
		}
	}
	return out
}

func wantAttrs(t *testing.T, sp *tracepb.Span, want map[string]any) {
	t.Helper()
	got := attrs(sp)
	for k, v := range want {
		if w, ok := v.([]string); ok {
			if g, _ := got[k].([]string); !slices.Equal(g, w) {
				t.Errorf("span %q: %s = %v, want %v", sp.GetName(), k, got[k], w)
			}
			continue
		}
		if got[k] != v {
			t.Errorf("span %q: %s = %#v, want %#v", sp.GetName(), k, got[k], v)
		}
	}
}

// TestTracesExportedByOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, one run of
// the real daemon is exported by OTLP/HTTP as one trace with the GenAI
// semantic conventions: invoke_agent (the run) → step → chat <model> and
// execute_tool <tool>. Closing the daemon flushes the spans.
func TestTracesExportedByOTLP(t *testing.T) {
	sink := newOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "openintern-trace-test")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	t.Setenv("OTEL_SDK_DISABLED", "")

	d := startDaemon(t, newConfig(t, "sqlite"), usageModel{})
	c := d.client("acme", "alice")
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "tracer", "name": "Tracy", "model": "instant-default"}, nil)
	runID := c.createRun("tracer", "conv-1", "read something")
	if run := c.waitRun(runID, 10*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	// Closing shuts the tracer provider down, which exports what is batched.
	d.stop()

	spans, services, bad := sink.received()
	if len(bad) > 0 {
		t.Fatalf("the sink got exports it could not read: %v", bad)
	}
	if len(services) == 0 || services[0] != "openintern-trace-test" {
		t.Errorf("resource service.name = %v, want openintern-trace-test (OTEL_SERVICE_NAME)", services)
	}
	byName := map[string][]*tracepb.Span{}
	for _, sp := range spans {
		byName[sp.GetName()] = append(byName[sp.GetName()], sp)
	}
	names := make([]string, 0, len(byName))
	for n, list := range byName {
		names = append(names, fmt.Sprintf("%s×%d", n, len(list)))
	}
	slices.Sort(names)
	t.Logf("spans received: %v", names)

	runs := byName["invoke_agent Tracy"]
	steps := byName["step"]
	chats := byName["chat instant-default"]
	tools := byName["execute_tool read_file"]
	if len(runs) != 1 || len(steps) != 2 || len(chats) != 2 || len(tools) != 1 || len(spans) != 6 {
		t.Fatalf("spans: %d invoke_agent Tracy, %d step, %d chat instant-default, %d execute_tool read_file; want 1, 2, 2, 1 and no other (got %v)",
			len(runs), len(steps), len(chats), len(tools), names)
	}
	run := runs[0]
	trace := run.GetTraceId()
	if len(run.GetParentSpanId()) != 0 {
		t.Errorf("the run's span has a parent %s", hex.EncodeToString(run.GetParentSpanId()))
	}
	wantAttrs(t, run, map[string]any{
		"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "tracer", "gen_ai.agent.name": "Tracy",
		"gen_ai.conversation.id": "conv-1", "openintern.run.id": runID, "openintern.run.status": "completed",
	})
	for _, sp := range spans {
		if !bytes.Equal(sp.GetTraceId(), trace) {
			t.Errorf("span %q is in another trace", sp.GetName())
		}
		if sp.GetEndTimeUnixNano() < sp.GetStartTimeUnixNano() || sp.GetStartTimeUnixNano() == 0 {
			t.Errorf("span %q: start %d, end %d", sp.GetName(), sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano())
		}
	}
	stepOf := map[string]int64{} // span id → step number
	for _, st := range steps {
		if !bytes.Equal(st.GetParentSpanId(), run.GetSpanId()) {
			t.Errorf("step span's parent is not the run's span")
		}
		n, _ := attrs(st)["openintern.step"].(int64)
		stepOf[string(st.GetSpanId())] = n
	}
	if len(stepOf) != 2 || !slices.Equal(sortedValues(stepOf), []int64{1, 2}) {
		t.Errorf("steps numbered %v, want 1 and 2", stepOf)
	}
	finishByStep := map[int64][]string{}
	for _, ch := range chats {
		step, ok := stepOf[string(ch.GetParentSpanId())]
		if !ok {
			t.Errorf("chat span's parent is no step span")
		}
		if ch.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("chat span kind %v, want client", ch.GetKind())
		}
		wantAttrs(t, ch, map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "instant", "gen_ai.system": "instant",
			"gen_ai.request.model": "instant-default", "gen_ai.response.model": "instant-1",
			"gen_ai.usage.input_tokens": int64(11), "gen_ai.usage.output_tokens": int64(5),
		})
		reasons, _ := attrs(ch)["gen_ai.response.finish_reasons"].([]string)
		finishByStep[step] = reasons
	}
	if !slices.Equal(finishByStep[1], []string{"tool_calls"}) || !slices.Equal(finishByStep[2], []string{"stop"}) {
		t.Errorf("finish reasons by step = %v, want tool_calls then stop", finishByStep)
	}
	tool := tools[0]
	if stepOf[string(tool.GetParentSpanId())] != 1 {
		t.Errorf("execute_tool's parent is not step 1")
	}
	wantAttrs(t, tool, map[string]any{
		"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file", "gen_ai.tool.call.id": "c1",
	})
}

func sortedValues(m map[string]int64) []int64 {
	out := make([]int64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
