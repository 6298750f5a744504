package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// instantModel answers at once: a read_file call first, then text. It stands in
// for an LLM so the benchmark measures the framework: store round trips,
// checkpoints, events, actors, HTTP.
type instantModel struct{}

func (instantModel) Name() string { return "instant" }

func (instantModel) Complete(_ context.Context, req llm.Request, onToken llm.TokenFunc) (llm.Response, error) {
	if last := req.Messages[len(req.Messages)-1]; last.Role == llm.RoleTool {
		if onToken != nil {
			onToken("done")
		}
		return llm.Response{Content: "done", FinishReason: "stop", Usage: llm.Usage{TotalTokens: 2}}, nil
	}
	return llm.Response{ToolCalls: []llm.ToolCall{{ID: "c1", Name: "read_file", Arguments: `{"path":"missing.txt"}`}}, FinishReason: "tool_calls"}, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTurn measures whole turns (message accepted over HTTP → run.completed
// stored), each with one tool call (two LLM calls, two checkpointed steps, every
// event persisted), all in one session so history stays in play.
//
// recall=off measures the framework alone; recall=on adds the memory recall and
// the episodic run summary that every turn makes by default.
func BenchmarkTurn(b *testing.B) {
	for _, recall := range []bool{false, true} {
		for _, kind := range storeKinds {
			for _, conc := range []int{1, 16} {
				name := fmt.Sprintf("recall=%s/%s/concurrency=%d", map[bool]string{false: "off", true: "on"}[recall], kind, conc)
				b.Run(name, func(b *testing.B) { benchTurns(b, kind, conc, recall) })
			}
		}
	}
}

func benchTurns(b *testing.B, kind string, conc int, recall bool) {
	cfg := newConfig(b, kind)
	cfg.MemoryRecall = recall
	m := startDaemon(b, cfg, instantModel{})
	scope := store.Scope{OrgID: "bench", UserID: "u"}
	for i := range conc {
		if status, body := rawRequest(m.URL(), scope, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":"b%02d","name":"b"}`, i)); status != http.StatusCreated {
			b.Fatalf("create agent: %d %s", status, body)
		}
	}
	completed := m.Bus.Subscribe(b.Context(), scope, func(e store.Event) bool { return e.Type == "run.completed" || e.Type == "run.failed" })
	waiters := make([]chan store.Event, conc)
	for i := range waiters {
		waiters[i] = make(chan store.Event, 4)
	}
	go func() {
		for e := range completed {
			var i int
			if _, err := fmt.Sscanf(e.AgentID, "b%02d", &i); err != nil {
				b.Errorf("run.completed of an agent the benchmark did not make: %q", e.AgentID)
				continue
			}
			waiters[i] <- e
		}
	}()

	var (
		mu        sync.Mutex
		latencies []time.Duration
		// The first and last tenth of each agent's turns: the session grows
		// between them, and a turn's cost must not.
		early, late []time.Duration
		wg          sync.WaitGroup
	)
	perWorker := max(b.N/conc, 1)
	b.ResetTimer()
	cpu0, start := cpuTime(), time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := fmt.Sprintf("b%02d", w)
			for i := range perWorker {
				t0 := time.Now()
				status, body := rawRequest(m.URL(), scope, "POST", "/api/agents/"+agent+"/messages", fmt.Sprintf(`{"content":"turn %d","session_key":"long"}`, i))
				if status != http.StatusAccepted {
					b.Errorf("post: %d %s", status, body)
					return
				}
				select {
				case e := <-waiters[w]:
					if e.Type != "run.completed" {
						b.Errorf("run failed: %s", e.Payload)
						return
					}
				case <-time.After(30 * time.Second):
					b.Errorf("turn timed out")
					return
				}
				lat := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, lat)
				switch {
				case i < perWorker/10:
					early = append(early, lat)
				case i >= perWorker-perWorker/10:
					late = append(late, lat)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	turns := len(latencies)
	if turns == 0 {
		return
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(turns)/elapsed.Seconds(), "turns/s")
	b.ReportMetric(float64(latencies[turns/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(latencies[turns*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(turns), "cpu-ms/turn")
	if len(early) > 0 && len(late) > 0 {
		slices.Sort(early)
		slices.Sort(late)
		b.ReportMetric(float64(early[len(early)/2].Microseconds())/1000, "p50-first10%-ms")
		b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "p50-last10%-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAcceptMessages measures messages accepted durably per second over
// HTTP, 64 senders at once (the agents are paused so only acceptance is measured).
func BenchmarkAcceptMessages(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind, func(b *testing.B) {
			m := startDaemon(b, newConfig(b, kind), instantModel{})
			scope := store.Scope{OrgID: "bench", UserID: "u"}
			const agents = 8
			for i := range agents {
				rawRequest(m.URL(), scope, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":"p%d","name":"p"}`, i))
				rawRequest(m.URL(), scope, "POST", fmt.Sprintf("/api/agents/p%d/pause", i), "")
			}
			var wg sync.WaitGroup
			per := max(b.N/64, 1)
			b.ResetTimer()
			start := time.Now()
			for w := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if status, body := rawRequest(m.URL(), scope, "POST", fmt.Sprintf("/api/agents/p%d/messages", (w+i)%agents), `{"content":"x"}`); status != http.StatusAccepted {
							b.Errorf("post: %d %s", status, body)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*64)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkActiveAgentMemory activates 10,000 agents and reports the heap each
// active agent actor costs. A registered idle agent costs only its store row.
func BenchmarkActiveAgentMemory(b *testing.B) {
	const n = 10000
	cfg := newConfig(b, "sqlite")
	cfg.AgentIdleTimeout = config.Duration(time.Hour)
	m := startDaemon(b, cfg, instantModel{})
	scope := store.Scope{OrgID: "mem", UserID: "u"}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		m.Runtime.Wake(scope, fmt.Sprintf("agent-%05d", i))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := m.Runtime.Stats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if st.ActiveAgents >= n && st.RunningAgents == 0 && st.WaitingAgents == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("stats %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perAgent := float64(after.HeapInuse-before.HeapInuse) / n
	b.ReportMetric(perAgent, "heap-bytes/active-agent")
	b.ReportMetric(perAgent*n/(1<<20), "MiB/10k-active")
}
