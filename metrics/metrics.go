// Package metrics is the daemon's instrumentation: Prometheus metrics on a
// registry of its own (no global default registry) and OpenTelemetry tracing
// (see tracing.go).
//
// Metrics are daemon-wide and their labels are few and bounded: never an
// agent, run, org or user id, so a scrape neither grows without end nor tells
// one tenant's activity apart from another's. Model and tool names come from
// configuration or from a model's output, so each of those labels keeps at
// most maxLabelValues distinct values and folds the rest into "other".
//
// Every method is safe on a nil *Metrics, so a component built without
// metrics (most tests) needs nothing.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "openintern"

// maxLabelValues bounds the distinct values of a label that comes from
// outside the daemon's code (a model name, a tool name the model made up).
const maxLabelValues = 64

// otherLabel takes the place of a label value past maxLabelValues.
const otherLabel = "other"

// scrapeTimeout bounds what a scrape asks the runtime and the store, so a
// slow database makes the inbox gauge go missing from one scrape rather than
// hold the scrape.
const scrapeTimeout = time.Second

// RuntimeStats is what the actor pool reports at scrape.
type RuntimeStats struct {
	Active  int // agents with an actor
	Running int // agents holding a run slot
	Waiting int // agents waiting for a run slot
}

// Metrics holds the daemon's collectors.
type Metrics struct {
	registry *prometheus.Registry

	runs         *prometheus.CounterVec
	turnDuration *prometheus.HistogramVec
	stepDuration prometheus.Histogram
	llmCalls     *prometheus.CounterVec
	llmDuration  *prometheus.HistogramVec
	llmTokens    *prometheus.CounterVec
	toolCalls    *prometheus.CounterVec
	toolDuration *prometheus.HistogramVec
	storeOps     *prometheus.HistogramVec
	batchSize    prometheus.Histogram
	sseClients   prometheus.Gauge

	models labelSet
	tools  labelSet
}

// New returns the daemon's metrics on a new registry, with the Go runtime's
// and the process's collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_total",
			Help: "Runs ended, by final status (completed, failed, cancelled).",
		}, []string{"status"}),
		turnDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "turn_duration_seconds",
			Help:    "Time an agent worked on one claimed run, from the claim until the run ended or was suspended, by outcome.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 600, 16),
		}, []string{"outcome"}),
		stepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "step_duration_seconds",
			Help:    "Time of one step of a run: the model call, its tool calls and the step's commit.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 300, 16),
		}),
		llmCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "llm_calls_total",
			Help: "Model calls, by provider, model and outcome (ok, or the error's class).",
		}, []string{"provider", "model", "outcome"}),
		llmDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "llm_call_duration_seconds",
			Help:    "Latency of model calls (retries included), by provider and model.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 300, 16),
		}, []string{"provider", "model"}),
		llmTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "llm_tokens_total",
			Help: "Tokens the models reported, by provider, model and kind (input, output; cache_read and cache_write are part of input).",
		}, []string{"provider", "model", "kind"}),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tool_calls_total",
			Help: "Tool calls, by tool and outcome (ok, error, blocked, unknown).",
		}, []string{"tool", "outcome"}),
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "tool_call_duration_seconds",
			Help:    "Latency of tool calls, by tool.",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 300, 16),
		}, []string{"tool"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_operation_duration_seconds",
			Help:    "Latency of the store's hot-path transactions, by operation (claim_run, save_step, finish_run, enqueue_messages).",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 30, 16),
		}, []string{"op"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "mailbox_batch_size",
			Help:    "Messages per mailbox group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 … 256 (mailbox.MaxBatch)
		}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sse_clients",
			Help: "Open SSE streams.",
		}),
		models: labelSet{max: maxLabelValues},
		tools:  labelSet{max: maxLabelValues},
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.runs, m.turnDuration, m.stepDuration, m.llmCalls, m.llmDuration, m.llmTokens,
		m.toolCalls, m.toolDuration, m.storeOps, m.batchSize, m.sseClients,
	)
	return m
}

// Registry is where the metrics are registered (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the metrics in the Prometheus text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		Registry:          m.registry, // counts its own scrapes and their errors
		EnableOpenMetrics: true,
		// A collector that fails (the store is down) drops its metrics from
		// the scrape instead of failing the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// WatchRuntime exports the actor pool's gauges, read from stats at each scrape.
func (m *Metrics) WatchRuntime(stats func(context.Context) (RuntimeStats, error)) {
	if m == nil {
		return
	}
	m.registry.MustRegister(&runtimeCollector{stats: stats})
}

// WatchInbox exports the number of unread inbox messages, counted by
// unread at each scrape. It is read from the store rather than counted in
// memory because messages are added by several paths (the mailbox, runs
// created with their message, messages agents send) and taken by claims in
// the store, and the store's count stays true across restarts and daemons.
func (m *Metrics) WatchInbox(unread func(context.Context) (int64, error)) {
	if m == nil {
		return
	}
	m.registry.MustRegister(&inboxCollector{unread: unread})
}

// WatchRoundTrips exports openintern_store_round_trips_total{op}: the
// round trips the store made to its database, by statement kind, read from
// trips at each scrape (a load test reads it before and after).
func (m *Metrics) WatchRoundTrips(trips func() map[string]int64) {
	if m == nil {
		return
	}
	m.registry.MustRegister(&roundTripCollector{trips: trips})
}

var roundTripDesc = prometheus.NewDesc(namespace+"_store_round_trips_total",
	"Round trips to the database by statement kind (a batch is one, op \"batch: \" and its statements' kinds).", []string{"op"}, nil)

type roundTripCollector struct{ trips func() map[string]int64 }

func (c *roundTripCollector) Describe(ch chan<- *prometheus.Desc) { ch <- roundTripDesc }

func (c *roundTripCollector) Collect(ch chan<- prometheus.Metric) {
	for op, n := range c.trips() {
		ch <- prometheus.MustNewConstMetric(roundTripDesc, prometheus.CounterValue, float64(n), op)
	}
}

// RunFinished counts a run that ended with status.
func (m *Metrics) RunFinished(status string) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(status).Inc()
}

// TurnDone records one claimed run's turn: outcome is the run's final status,
// or "suspended" (to resume later), or "error" (the store failed it).
func (m *Metrics) TurnDone(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.turnDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

// StepDone records one step's duration.
func (m *Metrics) StepDone(d time.Duration) {
	if m == nil {
		return
	}
	m.stepDuration.Observe(d.Seconds())
}

// LLMCalled records one model call and the tokens it reported.
func (m *Metrics) LLMCalled(provider, model, outcome string, d time.Duration, inputTokens, outputTokens int) {
	if m == nil {
		return
	}
	model = m.models.get(model)
	m.llmCalls.WithLabelValues(provider, model, outcome).Inc()
	m.llmDuration.WithLabelValues(provider, model).Observe(d.Seconds())
	if inputTokens > 0 {
		m.llmTokens.WithLabelValues(provider, model, "input").Add(float64(inputTokens))
	}
	if outputTokens > 0 {
		m.llmTokens.WithLabelValues(provider, model, "output").Add(float64(outputTokens))
	}
}

// LLMCacheTokens records the prompt-cache tokens of one model call (kinds
// cache_read and cache_write; they are also counted in input).
func (m *Metrics) LLMCacheTokens(provider, model string, readTokens, writeTokens int) {
	if m == nil {
		return
	}
	model = m.models.get(model)
	if readTokens > 0 {
		m.llmTokens.WithLabelValues(provider, model, "cache_read").Add(float64(readTokens))
	}
	if writeTokens > 0 {
		m.llmTokens.WithLabelValues(provider, model, "cache_write").Add(float64(writeTokens))
	}
}

// ToolCalled records one tool call. tool should be a registered tool's name;
// a name the model made up is best passed as "unknown".
func (m *Metrics) ToolCalled(tool, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	tool = m.tools.get(tool)
	m.toolCalls.WithLabelValues(tool, outcome).Inc()
	m.toolDuration.WithLabelValues(tool).Observe(d.Seconds())
}

// StoreOp records the latency of one store transaction of the hot path.
func (m *Metrics) StoreOp(op string, d time.Duration) {
	if m == nil {
		return
	}
	m.storeOps.WithLabelValues(op).Observe(d.Seconds())
}

// BatchCommitted records one mailbox group commit: its size and how long the
// store took (failed commits too: their latency is what a sender waited).
func (m *Metrics) BatchCommitted(size int, d time.Duration, _ error) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(size))
	m.storeOps.WithLabelValues("enqueue_messages").Observe(d.Seconds())
}

// SSEClients is the gauge of open SSE streams; nil on a nil *Metrics.
func (m *Metrics) SSEClients() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.sseClients
}

// labelSet admits the first max distinct values of a label and maps the rest
// to otherLabel.
type labelSet struct {
	mu   sync.RWMutex
	seen map[string]struct{}
	max  int
}

func (s *labelSet) get(v string) string {
	s.mu.RLock()
	_, ok := s.seen[v]
	n := len(s.seen)
	s.mu.RUnlock()
	if ok {
		return v
	}
	if n >= s.max {
		return otherLabel
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[v]; ok {
		return v
	}
	if len(s.seen) >= s.max {
		return otherLabel
	}
	if s.seen == nil {
		s.seen = make(map[string]struct{})
	}
	s.seen[v] = struct{}{}
	return v
}

var (
	activeDesc  = prometheus.NewDesc(namespace+"_agents_active", "Agents with an actor (activated, not passivated).", nil, nil)
	runningDesc = prometheus.NewDesc(namespace+"_agents_running", "Agents holding a run slot.", nil, nil)
	waitingDesc = prometheus.NewDesc(namespace+"_agents_waiting", "Agents waiting for a run slot.", nil, nil)
	inboxDesc   = prometheus.NewDesc(namespace+"_inbox_depth", "Unread inbox messages, all agents and tenants together.", nil, nil)
)

// runtimeCollector reads the pool's counters at scrape time.
type runtimeCollector struct {
	stats func(context.Context) (RuntimeStats, error)
}

func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeDesc
	ch <- runningDesc
	ch <- waitingDesc
}

func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(activeDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(st.Active))
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(st.Running))
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(st.Waiting))
}

// inboxCollector counts unread messages at scrape time.
type inboxCollector struct {
	unread func(context.Context) (int64, error)
}

func (c *inboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- inboxDesc }

func (c *inboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, err := c.unread(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(inboxDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(inboxDesc, prometheus.GaugeValue, float64(n))
}
