package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openintern/openintern/metrics"
)

// TestNilMetrics: a component built without metrics calls them all the same.
func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.RunFinished("completed")
	m.TurnDone("completed", time.Second)
	m.StepDone(time.Second)
	m.LLMCalled("p", "m", "ok", time.Second, 1, 2)
	m.ToolCalled("t", "ok", time.Second)
	m.StoreOp("save_step", time.Second)
	m.BatchCommitted(3, time.Second, nil)
	m.WatchRuntime(func(context.Context) (metrics.RuntimeStats, error) { return metrics.RuntimeStats{}, nil })
	m.WatchInbox(func(context.Context) (int64, error) { return 0, nil })
	if g := m.SSEClients(); g != nil {
		t.Fatalf("SSEClients of nil = %v, want nil", g)
	}
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

// TestRecordedAndServed: what is recorded is served, under the documented
// names and labels, and the exposition passes Prometheus's lint.
func TestRecordedAndServed(t *testing.T) {
	m := metrics.New()
	m.RunFinished("completed")
	m.RunFinished("completed")
	m.RunFinished("failed")
	m.TurnDone("completed", 20*time.Millisecond)
	m.StepDone(10 * time.Millisecond)
	m.LLMCalled("openai", "gpt-x", "ok", 5*time.Millisecond, 7, 3)
	m.LLMCalled("openai", "gpt-x", "rate_limited", 5*time.Millisecond, 0, 0)
	m.ToolCalled("read_file", "error", time.Millisecond)
	m.StoreOp("save_step", time.Millisecond)
	m.BatchCommitted(3, time.Millisecond, nil)
	m.SSEClients().Inc()
	m.WatchRuntime(func(context.Context) (metrics.RuntimeStats, error) {
		return metrics.RuntimeStats{Active: 5, Running: 2, Waiting: 1}, nil
	})
	m.WatchInbox(func(context.Context) (int64, error) { return 42, nil })

	body := scrape(t, m)
	for _, want := range []string{
		`openintern_runs_total{status="completed"} 2`,
		`openintern_runs_total{status="failed"} 1`,
		`openintern_turn_duration_seconds_count{outcome="completed"} 1`,
		`openintern_step_duration_seconds_count 1`,
		`openintern_llm_calls_total{model="gpt-x",outcome="ok",provider="openai"} 1`,
		`openintern_llm_calls_total{model="gpt-x",outcome="rate_limited",provider="openai"} 1`,
		`openintern_llm_call_duration_seconds_count{model="gpt-x",provider="openai"} 2`,
		`openintern_llm_tokens_total{kind="input",model="gpt-x",provider="openai"} 7`,
		`openintern_llm_tokens_total{kind="output",model="gpt-x",provider="openai"} 3`,
		`openintern_tool_calls_total{outcome="error",tool="read_file"} 1`,
		`openintern_store_operation_duration_seconds_count{op="save_step"} 1`,
		`openintern_store_operation_duration_seconds_count{op="enqueue_messages"} 1`,
		`openintern_mailbox_batch_size_sum 3`,
		`openintern_sse_clients 1`,
		`openintern_agents_active 5`,
		`openintern_agents_running 2`,
		`openintern_agents_waiting 1`,
		`openintern_inbox_depth 42`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", body)
	}
	problems, err := testutil.CollectAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "openintern_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestFailingCollectorDropsOnlyItsOwn: a store that is down takes the inbox
// gauge out of the scrape, not the scrape.
func TestFailingCollectorDropsOnlyItsOwn(t *testing.T) {
	m := metrics.New()
	m.RunFinished("completed")
	m.WatchInbox(func(context.Context) (int64, error) { return 0, errors.New("store down") })
	m.WatchRuntime(func(ctx context.Context) (metrics.RuntimeStats, error) {
		if _, ok := ctx.Deadline(); !ok {
			return metrics.RuntimeStats{}, errors.New("a scrape's read has no deadline")
		}
		return metrics.RuntimeStats{Active: 1}, nil
	})
	body := scrape(t, m)
	if strings.Contains(body, "openintern_inbox_depth ") {
		t.Fatalf("inbox depth served although its read failed:\n%s", body)
	}
	for _, want := range []string{`openintern_runs_total{status="completed"} 1`, `openintern_agents_active 1`} {
		if !strings.Contains(body, want) {
			t.Fatalf("scrape lacks %q:\n%s", want, body)
		}
	}
}

// TestLabelValuesBounded: names from outside the code (models, tools) take
// at most 64 label values each; the rest count under "other".
func TestLabelValuesBounded(t *testing.T) {
	m := metrics.New()
	for i := range 100 {
		m.LLMCalled("openai", fmt.Sprintf("model-%03d", i), "ok", time.Millisecond, 1, 1)
		m.ToolCalled(fmt.Sprintf("tool-%03d", i), "ok", time.Millisecond)
	}
	body := scrape(t, m)
	if !strings.Contains(body, `openintern_llm_calls_total{model="model-063",outcome="ok",provider="openai"} 1`) {
		t.Fatal("the 64th model has no series of its own")
	}
	if strings.Contains(body, `model="model-064"`) {
		t.Fatal("the 65th model got a series of its own")
	}
	if !strings.Contains(body, `openintern_llm_calls_total{model="other",outcome="ok",provider="openai"} 36`) {
		t.Fatalf("the models past 64 are not counted under other:\n%s", body)
	}
	if !strings.Contains(body, `openintern_tool_calls_total{outcome="ok",tool="other"} 36`) {
		t.Fatal("the tools past 64 are not counted under other")
	}
}

func TestWatchRoundTrips(t *testing.T) {
	m := metrics.New()
	trips := map[string]int64{"select events": 7, "background: begin": 2}
	m.WatchRoundTrips(func() map[string]int64 { return trips })
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "openintern_store_round_trips_total" {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "op" {
					got[l.GetValue()] = mt.GetCounter().GetValue()
				}
			}
		}
	}
	if len(got) != 2 || got["select events"] != 7 || got["background: begin"] != 2 {
		t.Fatalf("round trips exported = %v, want %v", got, trips)
	}
}
