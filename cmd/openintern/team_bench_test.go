package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// BenchmarkGroupRuns starts group runs in 100 groups of 5 agents (4 members
// and a lead) at once with an instant model and measures group runs per
// second and the decision latency (run started over HTTP → run.completed with
// the decision, seen on the bus).
func BenchmarkGroupRuns(b *testing.B) {
	for _, kind := range storeKinds {
		for _, mode := range []string{"parallel", "serial"} {
			b.Run(kind+"/"+mode, func(b *testing.B) { benchGroupRuns(b, kind, mode) })
		}
	}
}

func benchGroupRuns(b *testing.B, kind, mode string) {
	const groups, size = 100, 5
	cfg := newConfig(b, kind)
	cfg.MemoryRecall = false
	cfg.MaxRunningAgents = 256
	m := startDaemon(b, cfg, instantModel{})
	scope := store.Scope{OrgID: "bench", UserID: "u"}
	do := func(method, path, body string, want int) []byte {
		status, out := rawRequest(m.URL(), scope, method, path, body)
		if status != want {
			b.Fatalf("%s %s: %d %s", method, path, status, out)
		}
		return out
	}
	do("POST", "/api/roles", `{"role_id":"worker","name":"Worker"}`, http.StatusCreated)
	do("POST", "/api/roles", `{"role_id":"lead","name":"Lead","is_lead":true}`, http.StatusCreated)
	for g := range groups {
		members := ""
		for i := range size {
			agent := fmt.Sprintf("g%03d-a%d", g, i)
			do("POST", "/api/agents", fmt.Sprintf(`{"agent_id":%q,"name":"a"}`, agent), http.StatusCreated)
			role := "worker"
			if i == size-1 {
				role = "lead"
			}
			if members != "" {
				members += ","
			}
			members += fmt.Sprintf(`{"agent_id":%q,"role_id":%q}`, agent, role)
		}
		do("POST", "/api/groups", fmt.Sprintf(`{"group_id":"g%03d","name":"g","members":[%s]}`, g, members), http.StatusCreated)
	}
	// Every terminal event of the groups, member runs' too; the group runs'
	// are picked out by the ids their POSTs returned.
	terminal := m.Bus.Subscribe(b.Context(), scope, func(e store.Event) bool {
		return e.GroupID != "" && (e.Type == "run.completed" || e.Type == "run.failed")
	})
	var (
		endMu sync.Mutex
		ended = map[string]store.Event{}
		endAt = map[string]time.Time{}
	)
	go func() {
		for e := range terminal {
			endMu.Lock()
			ended[e.RunID], endAt[e.RunID] = e, time.Now()
			endMu.Unlock()
		}
	}()

	var latencies []time.Duration
	rounds := max(b.N/groups, 1)
	b.ResetTimer()
	start := time.Now()
	for range rounds {
		var (
			mu      sync.Mutex
			started = map[string]time.Time{}
			wg      sync.WaitGroup
		)
		for g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				status, out := rawRequest(m.URL(), scope, "POST", fmt.Sprintf("/api/groups/g%03d/runs", g), fmt.Sprintf(`{"input":"task","mode":%q}`, mode))
				if status != http.StatusCreated {
					b.Errorf("start: %d %s", status, out)
					return
				}
				var r struct {
					RunID string `json:"run_id"`
				}
				_ = json.Unmarshal(out, &r)
				mu.Lock()
				started[r.RunID] = t0
				mu.Unlock()
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(120 * time.Second)
		for {
			endMu.Lock()
			finished := 0
			for id := range started {
				if e, ok := ended[id]; ok {
					if e.Type != "run.completed" {
						endMu.Unlock()
						b.Fatalf("group run failed: %s", e.Payload)
					}
					finished++
				}
			}
			endMu.Unlock()
			if finished == len(started) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d group runs finished in 120 s", finished, len(started))
			}
			time.Sleep(5 * time.Millisecond)
		}
		endMu.Lock()
		for id, t0 := range started {
			latencies = append(latencies, endAt[id].Sub(t0))
		}
		endMu.Unlock()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	n := len(latencies)
	b.ReportMetric(float64(rounds*groups)/elapsed.Seconds(), "group-runs/s")
	if n > 0 {
		b.ReportMetric(float64(latencies[n/2].Microseconds())/1000, "decision-p50-ms")
		b.ReportMetric(float64(latencies[n*99/100].Microseconds())/1000, "decision-p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}
