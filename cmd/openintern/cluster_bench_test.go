package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// BenchmarkCluster measures clusters of 1, 2 and 3 daemon processes on one
// PostgreSQL database and Redis, with the instant two-step model of the
// harness (a read_file call, then the answer). Each of 32 workers keeps one
// turn in flight for its agent: it sends the message to the next node in
// turn, and waits for run.completed on the agent's stream, opened on
// another node than the one it sends to. Reported:
//   - turns/s: b.N turns over the elapsed time;
//   - wake-p50/p99-ms: from the message's 202 on node A to the owner's
//     run.started (its event time, taken by the owner; one clock, one machine);
//   - fanout-p50/p99-ms: from the time of a run.started or run.completed
//     event on its owner to its arrival on a stream served by another node
//     (with 1 node: the same node), which includes the event's commit;
//   - turn-p50/p99-ms: from sending to run.completed on the stream.
//
// A worker opens its stream (?from=now) afresh for each turn, so a turn's
// figures include opening one stream.
//
// Each b.N starts a fresh cluster, so give a fixed count:
//
//	go test -run '^$' -bench BenchmarkCluster -benchtime 400x ./cmd/openintern/
func BenchmarkCluster(b *testing.B) {
	for _, nodes := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) { benchCluster(b, nodes) })
	}
}

type benchSample struct {
	wake, turn time.Duration
	fanout     []time.Duration
}

func benchCluster(b *testing.B, nodes int) {
	const workers = 32
	c := newCluster(b, clusterOpts{nodes: nodes})
	agents := agentIDs("k", workers)
	c.createAgents(c.nodes[0], agents)
	// Warm-up: every agent has run once (and is owned somewhere).
	for i, a := range agents {
		if id, status := c.send(c.nodes[i%nodes], a, a+" warm"); id == "" {
			b.Fatalf("warm-up: %d", status)
		}
	}
	c.waitIdle(workers, 120*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	turns := make(chan int, b.N)
	for i := range b.N {
		turns <- i
	}
	close(turns)
	var (
		mu      sync.Mutex
		samples []benchSample
		errs    []error
	)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := benchWorker(ctx, c, w, agents[w], turns, func(s benchSample) {
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(errs) > 0 {
		b.Fatalf("%d workers failed, first: %v", len(errs), errs[0])
	}
	if len(samples) != b.N {
		b.Fatalf("%d turns measured, want %d", len(samples), b.N)
	}
	var wake, turn, fanout []time.Duration
	for _, s := range samples {
		wake = append(wake, max(s.wake, 0))
		turn = append(turn, s.turn)
		fanout = append(fanout, s.fanout...)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "turns/s")
	b.ReportMetric(pctMS(wake, 50), "wake-p50-ms")
	b.ReportMetric(pctMS(wake, 99), "wake-p99-ms")
	b.ReportMetric(pctMS(fanout, 50), "fanout-p50-ms")
	b.ReportMetric(pctMS(fanout, 99), "fanout-p99-ms")
	b.ReportMetric(pctMS(turn, 50), "turn-p50-ms")
	b.ReportMetric(pctMS(turn, 99), "turn-p99-ms")
}

// pctMS is the p-th percentile of ds in milliseconds (0 when empty).
func pctMS(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := min(len(ds)-1, (len(ds)*p+99)/100-1)
	return float64(ds[max(i, 0)].Microseconds()) / 1000
}

// benchWorker runs turns for agent: the w-th worker sends its t-th turn to
// node (w+t) mod N and watches the agent on the node after that one.
func benchWorker(ctx context.Context, c *cluster, w int, agent string, turns <-chan int, record func(benchSample)) error {
	nodes := len(c.nodes)
	t := 0
	for i := range turns {
		sendTo := c.nodes[(w+t)%nodes]
		watch := c.nodes[(w+t+1)%nodes]
		t++
		resp, err := c.openStream(ctx, watch, "/api/agents/"+agent+"/stream?from=now", 0)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		// The ready event: "now" is fixed; what follows is news.
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "event: ready") {
		}
		input := fmt.Sprintf("%s turn %d", agent, i)
		sent := time.Now()
		if id, status := c.send(sendTo, agent, input); id == "" {
			resp.Body.Close()
			return fmt.Errorf("turn %d on %s: status %d", i, sendTo.id, status)
		}
		accepted := time.Now()
		var (
			s       benchSample
			arrived []store.Event
			at      []time.Time
			data    string
			done    bool
		)
		for !done && sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
				continue
			}
			if line != "" || data == "" {
				continue
			}
			var e store.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				resp.Body.Close()
				return fmt.Errorf("sse data %q: %w", data, err)
			}
			data = ""
			if e.ID == 0 {
				continue
			}
			now := time.Now()
			arrived, at = append(arrived, e), append(at, now)
			switch e.Type {
			case "run.started":
				s.wake = e.TS.Sub(accepted)
			case "run.completed":
				s.turn = now.Sub(sent)
				done = true
			case "run.failed", "run.cancelled":
				resp.Body.Close()
				return fmt.Errorf("turn %d: %s", i, e.Type)
			}
		}
		resp.Body.Close()
		if !done {
			return fmt.Errorf("turn %d: the stream on %s ended before run.completed (%v)", i, watch.id, sc.Err())
		}
		// Fan-out across nodes: only when the stream's node is not the
		// owner that wrote the events (the model knows who ran the turn).
		if calls := c.model.callsOf(input + "#1"); nodes == 1 || (len(calls) > 0 && nodeOfKey(calls[0].node) != watch.id) {
			for k, e := range arrived {
				// Only events stamped right before their commit: a step's
				// events are stamped as it goes and committed at its end.
				if e.Type == "run.started" || e.Type == "run.completed" {
					s.fanout = append(s.fanout, max(at[k].Sub(e.TS), 0))
				}
			}
		}
		record(s)
	}
	return nil
}
