package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// usageModel is instantModel with a model name and token counts in its
// answers: a read_file call first, then text.
type usageModel struct{}

func (usageModel) Name() string { return "instant" }

func (usageModel) Complete(ctx context.Context, req llm.Request, onToken llm.TokenFunc) (llm.Response, error) {
	resp, err := instantModel{}.Complete(ctx, req, onToken)
	resp.Model = "instant-1"
	resp.Usage = llm.Usage{PromptTokens: 11, CompletionTokens: 5, TotalTokens: 16}
	return resp, err
}

// scrapeMetrics reads the daemon's /metrics and returns the raw text and its
// parsed families.
func scrapeMetrics(t *testing.T, base string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, raw)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, raw)
	}
	return string(raw), fams
}

// metricValue sums the series of the family whose labels include labels:
// a counter's or gauge's value, a histogram's sample count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
series:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

// waitMetrics scrapes until ok accepts the families (bounded).
func waitMetrics(t *testing.T, base string, what string, ok func(map[string]*dto.MetricFamily) bool) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, fams := scrapeMetrics(t, base)
		if ok(fams) {
			return raw, fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s:\n%s", what, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsEndpoint: one run through the mailbox shows in /metrics as it
// happened (inbox depth while the agent is paused, the run, its steps, model
// and tool calls, store latencies, batch sizes, SSE clients), and no label
// names a tenant, agent or run.
func TestMetricsEndpoint(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), usageModel{})
			c := d.client("acme-metrics-org", "alice-metrics")
			c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "metered-agent", "name": "Metered"}, nil)
			c.must(http.StatusOK, "POST", "/api/agents/metered-agent/pause", nil, nil)
			for i := range 3 {
				c.must(http.StatusAccepted, "POST", "/api/agents/metered-agent/messages", map[string]string{"content": fmt.Sprintf("m%d", i), "session_key": "s"}, nil)
			}
			_, fams := scrapeMetrics(t, d.URL())
			if v, _ := metricValue(fams, "openintern_inbox_depth", nil); v != 3 {
				t.Fatalf("inbox depth with 3 messages queued for a paused agent = %v, want 3", v)
			}
			if v, _ := metricValue(fams, "openintern_runs_total", nil); v != 0 {
				t.Fatalf("runs_total before any run = %v", v)
			}
			batched := fams["openintern_mailbox_batch_size"].GetMetric()[0].GetHistogram()
			if batched.GetSampleSum() != 3 || batched.GetSampleCount() < 1 || batched.GetSampleCount() > 3 {
				t.Fatalf("mailbox batches: %d holding %v messages, want 1 to 3 holding 3", batched.GetSampleCount(), batched.GetSampleSum())
			}

			stream := c.openStream("/api/agents/metered-agent/stream", "")
			waitMetrics(t, d.URL(), "one SSE client", func(f map[string]*dto.MetricFamily) bool {
				v, _ := metricValue(f, "openintern_sse_clients", nil)
				return v == 1
			})

			// The three messages of one session make one run of two steps:
			// read_file, then the answer.
			c.must(http.StatusOK, "POST", "/api/agents/metered-agent/resume", nil, nil)
			// One scrape reads its collectors at different instants (the inbox
			// depth from the store): wait for one that saw the turn's end from
			// each side.
			raw, fams := waitMetrics(t, d.URL(), "the run's turn", func(f map[string]*dto.MetricFamily) bool {
				turns, _ := metricValue(f, "openintern_turn_duration_seconds", map[string]string{"outcome": "completed"})
				runs, _ := metricValue(f, "openintern_runs_total", nil)
				depth, _ := metricValue(f, "openintern_inbox_depth", nil)
				return turns >= 1 && runs >= 1 && depth == 0
			})
			stream.Body.Close()
			for _, tc := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"openintern_runs_total", map[string]string{"status": "completed"}, 1},
				{"openintern_runs_total", nil, 1},
				{"openintern_step_duration_seconds", nil, 2},
				{"openintern_llm_calls_total", map[string]string{"provider": "instant", "outcome": "ok"}, 2},
				{"openintern_llm_call_duration_seconds", map[string]string{"provider": "instant"}, 2},
				{"openintern_llm_tokens_total", map[string]string{"provider": "instant", "kind": "input"}, 22},
				{"openintern_llm_tokens_total", map[string]string{"provider": "instant", "kind": "output"}, 10},
				{"openintern_tool_calls_total", map[string]string{"tool": "read_file"}, 1},
				{"openintern_tool_call_duration_seconds", map[string]string{"tool": "read_file"}, 1},
				{"openintern_store_operation_duration_seconds", map[string]string{"op": "finish_run"}, 1},
				{"openintern_inbox_depth", nil, 0},
			} {
				if got, _ := metricValue(fams, tc.name, tc.labels); got != tc.want {
					t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
				}
			}
			for _, op := range []string{"claim_run", "save_step", "enqueue_messages"} {
				if got, _ := metricValue(fams, "openintern_store_operation_duration_seconds", map[string]string{"op": op}); got < 1 {
					t.Errorf("store latency of %s: %v samples", op, got)
				}
			}
			if got, ok := metricValue(fams, "openintern_agents_active", nil); !ok || got < 1 {
				t.Errorf("agents_active = %v (%v), want the metered agent", got, ok)
			}
			for _, name := range []string{"openintern_agents_running", "openintern_agents_waiting", "go_goroutines", "process_resident_memory_bytes"} {
				if _, ok := fams[name]; !ok {
					t.Errorf("no %s", name)
				}
			}
			for _, secret := range []string{"acme-metrics-org", "alice-metrics", "metered-agent", "Metered"} {
				if strings.Contains(raw, secret) {
					t.Errorf("/metrics names %q: metrics must not tell tenants, agents or runs apart", secret)
				}
			}
			// Run ids are "run_" and a UUID (table names such as run_summary_queue may appear).
			if id := regexp.MustCompile(`run_[0-9a-f]{8}-[0-9a-f]{4}-`).FindString(raw); id != "" {
				t.Errorf("/metrics names the run id %q: metrics must not tell runs apart", id)
			}
			waitMetrics(t, d.URL(), "the SSE client gone", func(f map[string]*dto.MetricFamily) bool {
				v, _ := metricValue(f, "openintern_sse_clients", nil)
				return v == 0
			})
			if t.Failed() {
				t.Logf("/metrics:\n%s", raw)
			}
		})
	}
}

// TestMetricsCountEveryRunStatus: failed and cancelled runs are counted by
// their status too.
func TestMetricsCountEveryRunStatus(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), failingModel{})
	c := d.client("acme", "alice")
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "a", "name": "A"}, nil)
	c.must(http.StatusOK, "POST", "/api/agents/a/pause", nil, nil)
	cancelled := c.createRun("a", "s", "never runs")
	c.must(http.StatusAccepted, "POST", "/api/runs/"+cancelled+"/cancel", nil, nil)
	c.must(http.StatusOK, "POST", "/api/agents/a/resume", nil, nil)
	failed := c.createRun("a", "s", "fails")
	if run := c.waitRun(failed, 10*time.Second); run.Status != store.RunFailed {
		t.Fatalf("run = %+v, want failed", run)
	}
	_, fams := waitMetrics(t, d.URL(), "the failed run", func(f map[string]*dto.MetricFamily) bool {
		v, _ := metricValue(f, "openintern_runs_total", map[string]string{"status": "failed"})
		return v == 1
	})
	if v, _ := metricValue(fams, "openintern_runs_total", map[string]string{"status": "cancelled"}); v != 1 {
		t.Errorf("cancelled runs = %v, want 1", v)
	}
	if v, _ := metricValue(fams, "openintern_llm_calls_total", map[string]string{"provider": "failing", "outcome": "bad_request"}); v != 1 {
		t.Errorf("failed model calls by outcome bad_request = %v, want 1", v)
	}
}

// failingModel refuses every request as a bad request.
type failingModel struct{}

func (failingModel) Name() string { return "failing" }

func (failingModel) Complete(context.Context, llm.Request, llm.TokenFunc) (llm.Response, error) {
	return llm.Response{}, fmt.Errorf("refused: %w", llm.ErrBadRequest)
}
