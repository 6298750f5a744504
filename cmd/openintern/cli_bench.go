package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/store"
)

// benchSession is the session every bench agent's turns share, so each turn
// carries its agent's earlier turns as history, as a chat would.
const benchSession = "bench"

// benchErrorSamples is how many error messages the report keeps.
const benchErrorSamples = 5

func newBenchCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a daemon under load, over HTTP and SSE as a client sees it",
		Long: "Create --agents agents, send --turns turns (runs) with --concurrency in flight, wait for each\n" +
			"turn's end on its stream and check every answer, then report turns/s, latency percentiles,\n" +
			"the first against the last 10 % of turns, and errors. The agents are deleted at the end\n" +
			"unless --keep.\n\n" +
			"--model local runs an instant OpenAI-compatible model in this process: it asks for\n" +
			"--tool-calls read_file calls, then answers the nonce of the turn's input, which is checked.\n" +
			"With --spawn the bench starts `openintern serve` itself on a free port with that model\n" +
			"(store: --database-url, or a temporary SQLite directory), and stops it at the end; the rest\n" +
			"of its configuration comes from the environment (e.g. OPENINTERN_MEMORY_RECALL=off).\n" +
			"Without --spawn, --model-listen ADDR serves the local model at an address the daemon is\n" +
			"configured with. Any other --model is a model name of the daemon's provider; its answers\n" +
			"are checked for the nonce only.\n\n" +
			"When the daemon (or, with --database-url, PostgreSQL) runs on this machine, the report adds\n" +
			"their CPU time per turn (from /proc), the episodic-summary queue depth sampled each second,\n" +
			"and the SQL statements per turn when pg_stat_statements is loaded. Ctrl-C stops early with\n" +
			"a partial report.",
		Example: "  openintern bench --spawn --model local\n" +
			"  openintern bench --spawn --model local --database-url postgres://postgres@127.0.0.1/bench --turns 2000\n" +
			"  OPENINTERN_MEMORY_RECALL=off openintern bench --spawn --model local --json\n" +
			"  openintern bench --model local --model-listen 127.0.0.1:7070   # daemon started with LLM_BASE_URL=http://127.0.0.1:7070/v1",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := clientOptionsFrom(cmd, lookupEnv)
			b, err := benchFromFlags(cmd, opts)
			if err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			rep, err := b.run(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				rep.print(out)
			}
			switch {
			case rep.Interrupted:
				return &exitError{code: 130, err: errors.New("interrupted; the report covers the turns that ended")}
			case rep.Errors > 0:
				return &exitError{code: 1, err: fmt.Errorf("%d of %d turns failed", rep.Errors, rep.TurnsPlanned)}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.Int("agents", 16, "agents to create")
	fs.Int("turns", 400, "turns in all, over every agent")
	fs.Int("concurrency", 0, "turns in flight at once (default: --agents)")
	fs.String("model", "local", "local (the instant model in this process) or a model name of the daemon's provider")
	fs.Int("tool-calls", 1, "read_file calls the local model makes per turn before it answers")
	fs.Int("warmup", 0, "turns run first and left out of the figures")
	fs.Bool("keep", false, "keep the agents (and their runs) after the bench")
	fs.Bool("spawn", false, "start `openintern serve` (this binary) for the bench and stop it at the end")
	fs.String("database-url", "", "PostgreSQL URL of the daemon's store: the spawned daemon's store (empty: temporary SQLite), and where queue depth and SQL statements are read")
	fs.String("model-listen", "", "address of the local model without --spawn, e.g. 127.0.0.1:7070")
	fs.Duration("turn-timeout", 2*time.Minute, "a turn that has not ended after this is an error")
	fs.Duration("drain", 0, "with --database-url: after the last turn, wait up to this for the summary queue to empty and report how long it took")
	addClientFlags(fs)
	return cmd
}

// bench is one bench run's settings and state.
type bench struct {
	opts        clientOptions
	agents      int
	turns       int
	concurrency int
	model       string
	toolCalls   int
	warmup      int
	keep        bool
	spawn       bool
	databaseURL string
	modelListen string
	turnTimeout time.Duration
	drain       time.Duration

	id       string // unique per run: prefixes agent ids and nonces
	client   *apiClient
	agentIDs []string
}

func benchFromFlags(cmd *cobra.Command, opts clientOptions) (*bench, error) {
	fs := cmd.Flags()
	b := &bench{opts: opts}
	b.agents, _ = fs.GetInt("agents")
	b.turns, _ = fs.GetInt("turns")
	b.concurrency, _ = fs.GetInt("concurrency")
	b.model, _ = fs.GetString("model")
	b.toolCalls, _ = fs.GetInt("tool-calls")
	b.warmup, _ = fs.GetInt("warmup")
	b.keep, _ = fs.GetBool("keep")
	b.spawn, _ = fs.GetBool("spawn")
	b.databaseURL, _ = fs.GetString("database-url")
	b.modelListen, _ = fs.GetString("model-listen")
	b.turnTimeout, _ = fs.GetDuration("turn-timeout")
	b.drain, _ = fs.GetDuration("drain")
	if b.concurrency == 0 {
		b.concurrency = b.agents
	}
	switch {
	case b.agents < 1 || b.agents > 1000:
		return nil, errors.New("--agents must be 1 to 1000")
	case b.turns < 1:
		return nil, errors.New("--turns must be at least 1")
	case b.concurrency < 1 || b.concurrency > 10000:
		return nil, errors.New("--concurrency must be 1 to 10000")
	case b.toolCalls < 0 || b.toolCalls > 10:
		// A run has 12 steps by default: K tool steps and the answer must fit.
		return nil, errors.New("--tool-calls must be 0 to 10")
	case b.warmup < 0:
		return nil, errors.New("--warmup must not be negative")
	case b.turnTimeout <= 0:
		return nil, errors.New("--turn-timeout must be positive")
	case strings.TrimSpace(b.model) == "":
		return nil, errors.New("--model must be local or a model name")
	case b.local() && !b.spawn && b.modelListen == "":
		return nil, errors.New("--model local needs --spawn, or --model-listen ADDR with a daemon configured to use it (LLM_PROVIDER=openai-compatible LLM_BASE_URL=http://ADDR/v1 LLM_MODEL=" + localModelName + ")")
	case !b.local() && b.modelListen != "":
		return nil, errors.New("--model-listen is only for --model local")
	}
	if b.spawn && opts.Token != "" {
		// The spawned daemon runs without auth; a token would name a scope it does not know.
		b.opts.Token = ""
	}
	var id [3]byte
	_, _ = rand.Read(id[:])
	b.id = hex.EncodeToString(id[:])
	return b, nil
}

func (b *bench) local() bool { return b.model == "local" }

// benchReport is the bench's result; its JSON is the --json output.
type benchReport struct {
	URL          string   `json:"url"`
	Spawned      bool     `json:"spawned"`
	Store        string   `json:"store,omitempty"` // of a spawned daemon: sqlite or postgres
	Model        string   `json:"model"`
	Agents       int      `json:"agents"`
	Concurrency  int      `json:"concurrency"`
	ToolCalls    int      `json:"tool_calls_per_turn"`
	Warmup       int      `json:"warmup_turns"`
	TurnsPlanned int      `json:"turns_planned"`
	Completed    int      `json:"turns_completed"`
	Checked      int      `json:"answers_checked"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	Interrupted  bool     `json:"interrupted"`
	DurationS    float64  `json:"duration_s"`
	TurnsPerS    float64  `json:"turns_per_s"`

	Latency     latencyReport `json:"latency_ms"`
	FirstTenth  float64       `json:"first_10pct_p50_ms"`
	LastTenth   float64       `json:"last_10pct_p50_ms"`
	DaemonCPU   *float64      `json:"daemon_cpu_ms_per_turn,omitempty"`
	PostgresCPU *float64      `json:"postgres_cpu_ms_per_turn,omitempty"`
	BenchCPU    *float64      `json:"bench_cpu_ms_per_turn,omitempty"`
	Queue       *queueReport  `json:"summary_queue,omitempty"`
	SQL         *sqlReport    `json:"sql,omitempty"`
	RoundTrips  *tripsReport  `json:"round_trips,omitempty"`
	Notes       []string      `json:"notes,omitempty"`
}

type latencyReport struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type queueReport struct {
	Max     int64 `json:"max"`
	Final   int64 `json:"final"` // when the last turn ended
	Samples int   `json:"samples"`
	// Depths is the depth sampled each second of the measured part.
	Depths []int64 `json:"depths"`
	// DrainedAfterS is how long after the last turn the queue was first seen
	// empty (with --drain; nil: not waited for, or not empty in time).
	DrainedAfterS *float64 `json:"drained_after_s,omitempty"`
}

// turnResult is one turn as the bench saw it.
type turnResult struct {
	latency     time.Duration
	completed   bool // the run ended completed
	checked     bool // and its answer was the expected one
	interrupted bool // Ctrl-C ended it: neither a success nor an error
	err         string
}

func (b *bench) run(ctx context.Context, logw io.Writer) (*benchReport, error) {
	rep := &benchReport{Spawned: b.spawn, Model: b.model, Agents: b.agents, Concurrency: b.concurrency,
		ToolCalls: b.toolCalls, Warmup: b.warmup, TurnsPlanned: b.turns}
	if !b.local() {
		rep.ToolCalls = 0
	}
	// Cleanup runs on a context of its own: ctx may be done by Ctrl-C.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}

	if b.local() {
		addr := b.modelListen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		model, err := startLocalModel(addr, b.toolCalls)
		if err != nil {
			return nil, err
		}
		defer func() {
			cctx, cancel := cleanupCtx()
			defer cancel()
			_ = model.Close(cctx)
		}()
		if !b.spawn {
			fmt.Fprintf(logw, "local model at %s; the daemon must run with LLM_PROVIDER=openai-compatible LLM_BASE_URL=%s LLM_MODEL=%s\n",
				model.URL(), model.URL(), localModelName)
		}
		b.modelListen = model.URL()
	}

	var daemonPID int
	var depth queueDepther // the summary queue, when the bench can read it
	if b.spawn {
		d, err := b.spawnDaemon(ctx)
		if err != nil {
			return nil, err
		}
		defer func() {
			cctx, cancel := cleanupCtx()
			defer cancel()
			if err := d.stop(cctx); err != nil {
				fmt.Fprintf(logw, "bench: stopping the daemon: %v\n%s", err, d.logs.String())
			}
		}()
		b.opts.URL, daemonPID = d.url, d.cmd.Process.Pid
		rep.Store = "sqlite"
		if b.databaseURL != "" {
			rep.Store = "postgres"
		} else if q, err := openSQLiteQueue(filepath.Join(d.dir, "openintern.db")); err == nil {
			defer q.Close()
			depth = q
		}
	}
	rep.URL = b.opts.URL
	c, err := newAPIClient(b.opts)
	if err != nil {
		return nil, err
	}
	// One idle connection per turn in flight (each holds a request and a
	// stream), so connections are reused rather than redialled every turn.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2*b.concurrency + 4
	tr.MaxIdleConns = tr.MaxIdleConnsPerHost
	c.http = &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	b.client = c

	if daemonPID == 0 {
		if u, err := url.Parse(b.opts.URL); err == nil && localAddress(u.Hostname()) {
			port := portOf(u.Host)
			if port == 0 && u.Scheme == "http" {
				port = 80
			}
			daemonPID, _ = listenerPID(port)
		}
		if daemonPID == 0 {
			rep.Notes = append(rep.Notes, "daemon CPU not measured: the daemon's process is not visible on this machine")
		}
	}

	var pg *pgStats
	var pgMeter *cpuMeter
	if b.databaseURL != "" {
		pg, err = openPGStats(ctx, b.databaseURL)
		if err != nil {
			rep.Notes = append(rep.Notes, "no PostgreSQL figures: "+err.Error())
		} else {
			defer pg.Close()
			depth = pg
		}
		if pid, ok := postgresServerPID(b.databaseURL); ok {
			pgMeter = newCPUMeter(processTree(pid))
		} else {
			rep.Notes = append(rep.Notes, "PostgreSQL CPU not measured: its server is not visible on this machine")
		}
	}

	if err := b.createAgents(ctx); err != nil {
		b.deleteAgents(cleanupCtx)
		return nil, err
	}
	if !b.keep {
		defer b.deleteAgents(cleanupCtx)
	}

	if b.warmup > 0 {
		warm := b.runTurns(ctx, "w", b.warmup)
		for _, r := range warm {
			if !r.completed && !r.interrupted {
				rep.Notes = append(rep.Notes, "a warm-up turn failed: "+r.err)
				break
			}
		}
	}

	// The measured part.
	var daemonMeter *cpuMeter
	if daemonPID != 0 {
		daemonMeter = newCPUMeter(func() []int { return []int{daemonPID} })
	}
	if pgMeter != nil {
		pgMeter = newCPUMeter(pgMeter.pids) // restart after the warm-up
	}
	if pg != nil && pg.statements {
		if pg.before, err = pg.snapshot(ctx); err != nil {
			pg.statements, pg.reason = false, err.Error()
		}
	}
	tripsBefore := b.roundTrips(ctx)
	var queue *queueReport
	var queueMu sync.Mutex
	sampleQueue := func() {
		if depth == nil {
			return
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		n, err := depth.queueDepth(qctx)
		if err != nil {
			return
		}
		queueMu.Lock()
		defer queueMu.Unlock()
		if queue == nil {
			queue = &queueReport{}
		}
		queue.Max, queue.Final = max(queue.Max, n), n
		queue.Samples++
		queue.Depths = append(queue.Depths, n)
	}
	sample := func() {
		if daemonMeter != nil {
			daemonMeter.sample()
		}
		if pgMeter != nil {
			pgMeter.sample()
		}
		sampleQueue()
	}
	selfStart := selfCPU()
	started := time.Now()
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampler:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	results := b.runTurns(ctx, "t", b.turns)
	elapsed := time.Since(started)
	close(stopSampler)
	<-samplerDone
	sample()
	selfUsed := selfCPU() - selfStart

	rep.summarize(results, elapsed)
	if tripsBefore != nil {
		rctx, cancel := cleanupCtx()
		rep.RoundTrips = tripsBetween(tripsBefore, b.roundTrips(rctx), rep.Completed)
		cancel()
	}
	rep.Interrupted = ctx.Err() != nil
	if n := rep.Completed; n > 0 {
		perTurn := func(d time.Duration) *float64 {
			v := round2(float64(d) / float64(time.Millisecond) / float64(n))
			return &v
		}
		if daemonMeter != nil {
			rep.DaemonCPU = perTurn(daemonMeter.total)
		}
		if pgMeter != nil {
			rep.PostgresCPU = perTurn(pgMeter.total)
		}
		if selfUsed > 0 {
			rep.BenchCPU = perTurn(selfUsed)
		}
	}
	rep.Queue = queue
	if queue != nil && queue.Final > 0 && b.drain > 0 && ctx.Err() == nil {
		queue.DrainedAfterS = b.waitDrained(ctx, depth)
	}
	if pg != nil {
		rctx, cancel := cleanupCtx()
		rep.SQL = pg.report(rctx, rep.Completed)
		cancel()
	}
	return rep, nil
}

// queueDepther reads the episodic-summary queue's depth.
type queueDepther interface {
	queueDepth(ctx context.Context) (int64, error)
}

// waitDrained polls the summary queue each 100 ms until it is empty or
// b.drain has passed, and returns the seconds it took (nil: not empty).
func (b *bench) waitDrained(ctx context.Context, q queueDepther) *float64 {
	start := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for time.Since(start) < b.drain {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := q.queueDepth(qctx)
		cancel()
		if err == nil && n == 0 {
			v := round2(time.Since(start).Seconds())
			return &v
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return nil
}

// summarize fills the turn counts and latency figures from the results, in
// the order the turns were started.
func (r *benchReport) summarize(results []turnResult, elapsed time.Duration) {
	var lat []time.Duration
	for _, t := range results {
		switch {
		case t.interrupted:
		case t.completed:
			r.Completed++
			lat = append(lat, t.latency)
			if t.checked {
				r.Checked++
			} else {
				r.Errors++
				r.addError(t.err)
			}
		default:
			r.Errors++
			r.addError(t.err)
		}
	}
	r.DurationS = round2(elapsed.Seconds())
	if elapsed > 0 {
		r.TurnsPerS = round2(float64(r.Completed) / elapsed.Seconds())
	}
	if len(lat) == 0 {
		return
	}
	tenth := max(1, len(lat)/10)
	r.FirstTenth = ms(percentile(lat[:tenth], 0.5))
	r.LastTenth = ms(percentile(lat[len(lat)-tenth:], 0.5))
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	r.Latency = latencyReport{P50: ms(percentile(lat, 0.5)), P95: ms(percentile(lat, 0.95)), P99: ms(percentile(lat, 0.99)),
		Max: ms(slices.Max(lat)), Mean: ms(sum / time.Duration(len(lat)))}
}

func (r *benchReport) addError(msg string) {
	if len(r.ErrorSamples) < benchErrorSamples {
		r.ErrorSamples = append(r.ErrorSamples, msg)
	}
}

// percentile is the nearest-rank percentile of ds (not modified).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func (r *benchReport) print(w io.Writer) {
	where := r.URL
	if r.Spawned {
		where = "a spawned daemon (" + r.Store + ")"
	}
	model := "model " + r.Model
	if r.Model == "local" {
		model = fmt.Sprintf("the local model, %d tool call(s) a turn", r.ToolCalls)
	}
	fmt.Fprintf(w, "openintern bench: %d turns on %d agents, %d in flight, %s, against %s\n",
		r.TurnsPlanned, r.Agents, r.Concurrency, model, where)
	fmt.Fprintf(w, "  turns/s         %.1f  (%d completed, %d answers checked, %d errors, in %.2f s)\n",
		r.TurnsPerS, r.Completed, r.Checked, r.Errors, r.DurationS)
	fmt.Fprintf(w, "  latency         p50 %s  p95 %s  p99 %s  max %s\n",
		fmtMS(r.Latency.P50), fmtMS(r.Latency.P95), fmtMS(r.Latency.P99), fmtMS(r.Latency.Max))
	if r.FirstTenth > 0 {
		fmt.Fprintf(w, "  p50 first→last 10 %%  %s → %s (×%.2f)\n", fmtMS(r.FirstTenth), fmtMS(r.LastTenth), r.LastTenth/r.FirstTenth)
	}
	for _, c := range []struct {
		name string
		v    *float64
	}{{"daemon CPU", r.DaemonCPU}, {"PostgreSQL CPU", r.PostgresCPU}, {"bench CPU", r.BenchCPU}} {
		if c.v != nil {
			fmt.Fprintf(w, "  %-15s %s a turn\n", c.name, fmtMS(*c.v))
		}
	}
	if r.Queue != nil {
		fmt.Fprintf(w, "  summary queue   max %d, at the end %d (%d samples)", r.Queue.Max, r.Queue.Final, r.Queue.Samples)
		if r.Queue.DrainedAfterS != nil {
			fmt.Fprintf(w, ", empty %.1f s later", *r.Queue.DrainedAfterS)
		}
		fmt.Fprintln(w)
	}
	if r.SQL != nil {
		if !r.SQL.Available {
			fmt.Fprintf(w, "  SQL             not counted (%s)\n", r.SQL.Reason)
		} else {
			fmt.Fprintf(w, "  SQL             %.1f statements a turn (all of the database's, background work included)\n", r.SQL.PerTurn)
			fmt.Fprintf(w, "    %6s  %9s  %9s  %s\n", "/turn", "mean", "ms/turn", "statement")
			kinds := r.SQL.Kinds
			if r.SQL.Other != nil {
				kinds = append(slices.Clone(kinds), *r.SQL.Other)
			}
			for _, k := range kinds {
				fmt.Fprintf(w, "    %6.2f  %6.3f ms  %6.3f ms  %s\n", k.CallsPerTurn, k.MeanMS, k.MSPerTurn, k.Statement)
			}
		}
	}
	if r.RoundTrips != nil {
		r.RoundTrips.print(w)
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func (b *bench) createAgents(ctx context.Context) error {
	for i := range b.agents {
		id := fmt.Sprintf("bench-%s-%03d", b.id, i)
		body := map[string]any{"agent_id": id, "name": "bench " + id}
		if b.local() {
			body["tools"] = []string{benchTool}
		} else {
			body["model"] = b.model
		}
		if err := b.client.do(ctx, http.MethodPost, "/api/agents", body, nil); err != nil {
			return fmt.Errorf("create agent %s: %w", id, err)
		}
		b.agentIDs = append(b.agentIDs, id)
	}
	return nil
}

func (b *bench) deleteAgents(newCtx func() (context.Context, context.CancelFunc)) {
	ctx, cancel := newCtx()
	defer cancel()
	for _, id := range b.agentIDs {
		_ = b.client.do(ctx, http.MethodDelete, agentPath(id), nil, nil)
	}
}

// runTurns runs n turns with b.concurrency in flight and returns them in the
// order they were started. An agent has at most ceil(concurrency/agents)
// turns in flight at once.
func (b *bench) runTurns(ctx context.Context, tag string, n int) []turnResult {
	slots := make(chan string, b.concurrency)
	for j := range b.concurrency {
		slots <- b.agentIDs[j%len(b.agentIDs)]
	}
	results := make([]turnResult, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(b.concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if ctx.Err() != nil {
					results[i] = turnResult{interrupted: true}
					continue
				}
				agent := <-slots
				results[i] = b.turn(ctx, agent, fmt.Sprintf("%s-%s%d", b.id, tag, i))
				slots <- agent
			}
		}()
	}
	wg.Wait()
	return results
}

// turn sends one run and follows its stream until it ends, then checks it.
func (b *bench) turn(parent context.Context, agentID, nonce string) turnResult {
	ctx, cancel := context.WithTimeout(parent, b.turnTimeout)
	defer cancel()
	input := fmt.Sprintf("bench turn, nonce %s: answer with the nonce.", nonce)
	started := time.Now()
	fail := func(err error) turnResult {
		if parent.Err() != nil {
			return turnResult{interrupted: true} // Ctrl-C, not the turn's timeout
		}
		return turnResult{err: truncate(agentID+": "+err.Error(), 300)}
	}
	created, err := b.client.createRun(ctx, agentID, benchSession, input)
	if err != nil {
		return fail(fmt.Errorf("create run: %w", err))
	}
	var (
		terminal    *store.Event
		toolResults int
	)
	handle := func(ev streamEvent) error {
		switch ev.Type {
		case "tool.result":
			toolResults++
		case "run.completed", "run.failed", "run.cancelled":
			e := ev.Event
			terminal = &e
		}
		return nil
	}
	lastID, err := b.client.followStream(ctx, "/api/runs/"+url.PathEscape(created.RunID)+"/stream", 0, handle)
	if err == nil && terminal == nil {
		// The stream may end as the run is seen finished, before its last
		// events were sent (see followRun): read the rest from the store.
		var rest []json.RawMessage
		if rest, err = b.client.runEvents(ctx, created.RunID, lastID); err == nil {
			for _, raw := range rest {
				var ev streamEvent
				if json.Unmarshal(raw, &ev.Event) == nil {
					_ = handle(ev)
				}
			}
		}
	}
	latency := time.Since(started)
	if err != nil {
		return fail(fmt.Errorf("run %s: %w", created.RunID, err))
	}
	if terminal == nil {
		return fail(fmt.Errorf("run %s: the stream ended without the run's end", created.RunID))
	}
	res := turnResult{latency: latency}
	p := payloadFields(*terminal)
	if terminal.Type != "run.completed" {
		res.err = truncate(fmt.Sprintf("%s: run %s %s: %s", agentID, created.RunID, strings.TrimPrefix(terminal.Type, "run."), p.errorText()), 300)
		return res
	}
	res.completed = true
	switch {
	case b.local() && p.Output != benchAnswer(nonce):
		res.err = truncate(fmt.Sprintf("%s: run %s answered %q, want %q", agentID, created.RunID, p.Output, benchAnswer(nonce)), 300)
	case b.local() && toolResults != b.toolCalls:
		res.err = fmt.Sprintf("%s: run %s made %d tool calls, want %d", agentID, created.RunID, toolResults, b.toolCalls)
	case !b.local() && !strings.Contains(p.Output, nonce):
		res.err = truncate(fmt.Sprintf("%s: run %s answered %q, without the nonce %s", agentID, created.RunID, p.Output, nonce), 300)
	default:
		res.checked = true
	}
	return res
}

// spawnedDaemon is `openintern serve` started by the bench.
type spawnedDaemon struct {
	cmd  *exec.Cmd
	url  string
	logs *tailWriter
	done chan struct{}
	dir  string
}

func (b *bench) spawnDaemon(ctx context.Context) (*spawnedDaemon, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this binary to spawn the daemon: %w", err)
	}
	dir, err := os.MkdirTemp("", "openintern-bench-")
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	// Later entries win in exec's environment: these override the caller's.
	env := append(os.Environ(),
		"DATA_DIR="+dir, "DATABASE_URL="+b.databaseURL, "AUTH=off",
		"LOG_LEVEL=warn", "OPENINTERN_TOKEN=")
	if b.local() {
		env = append(env, "LLM_PROVIDER=openai-compatible", "LLM_BASE_URL="+b.modelListen, "LLM_MODEL="+localModelName, "LLM_API_KEY=")
	}
	// The daemon runs in the temporary directory, so no agent.config.json of
	// the caller's is read, and in a process group of its own, so the
	// terminal's Ctrl-C reaches only the bench, which then stops it in order.
	cmd := exec.Command(exe, "serve", "--host", "127.0.0.1", "--port", "0")
	cmd.Env, cmd.Dir = env, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d := &spawnedDaemon{cmd: cmd, logs: &tailWriter{max: 16 << 10}, done: make(chan struct{}), dir: dir}
	cmd.Stderr = d.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("spawn %s serve: %w", exe, err)
	}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "OpenIntern is serving on "); ok {
				select {
				case urlCh <- strings.TrimSpace(rest):
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(d.done)
	}()
	t := time.NewTimer(2 * time.Minute)
	defer t.Stop()
	select {
	case d.url = <-urlCh:
		return d, nil
	case <-d.done:
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("the spawned daemon exited at start:\n%s", d.logs.String())
	case <-ctx.Done():
	case <-t.C:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	_ = d.stop(sctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("the spawned daemon did not start in 2 minutes:\n%s", d.logs.String())
}

// stop asks the daemon to shut down (SIGTERM), kills it if it has not
// exited when ctx ends, and removes its directory.
func (d *spawnedDaemon) stop(ctx context.Context) error {
	defer os.RemoveAll(d.dir)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if st := d.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("the daemon exited with %v", st)
		}
		return nil
	case <-ctx.Done():
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("the daemon did not stop in time and was killed")
	}
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
