package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// recallTopK is how many memories a turn recalls into its context.
const recallTopK = 3

// agentMemory adapts memory.Service to actors.Memory. Episodic summaries go
// through a bounded queue drained by one goroutine, so a slow store never
// stalls an agent's step loop; when the queue is full a summary is dropped
// and logged.
type agentMemory struct {
	svc    *memory.Service
	logger *slog.Logger
	queue  chan memory.WriteRequest
	wg     sync.WaitGroup
}

var _ actors.Memory = (*agentMemory)(nil)

func newAgentMemory(svc *memory.Service, logger *slog.Logger) *agentMemory {
	a := &agentMemory{svc: svc, logger: logger, queue: make(chan memory.WriteRequest, 256)}
	a.wg.Add(1)
	go a.writer()
	return a
}

// summaryBatch bounds how many queued summaries share one transaction.
const summaryBatch = 64

// writer stores queued summaries, as many as are waiting in one transaction:
// under load the commits (and the term-count updates every writer of a scope
// waits on) are shared instead of queueing one behind another.
func (a *agentMemory) writer() {
	defer a.wg.Done()
	batch := make([]memory.WriteRequest, 0, summaryBatch)
	for req := range a.queue {
		batch = append(batch[:0], req)
	drain:
		for len(batch) < summaryBatch {
			select {
			case r, ok := <-a.queue:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		a.store(batch)
	}
}

func (a *agentMemory) store(batch []memory.WriteRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(batch) > 1 {
		if _, err := a.svc.WriteBatch(ctx, batch); err == nil {
			return
		}
		// One bad summary must not cost the others: write them one by one.
	}
	for _, req := range batch {
		if _, err := a.svc.Write(ctx, req); err != nil {
			a.logger.Warn("memory: episodic summary not stored", "agent_id", req.AgentID, "run_id", req.Metadata["run_id"], "err", err)
		}
	}
}

// Close stops accepting summaries and waits (up to ctx) for queued ones.
func (a *agentMemory) Close(ctx context.Context) error {
	close(a.queue)
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory writer: %w", ctx.Err())
	}
}

func (a *agentMemory) Recall(ctx context.Context, scope store.Scope, agentID, query string) ([]actors.Recalled, error) {
	res, err := a.svc.Search(ctx, memory.SearchRequest{Scope: scope, Query: query, TopK: recallTopK})
	if err != nil {
		return nil, err
	}
	out := make([]actors.Recalled, len(res))
	for i, r := range res {
		out[i] = actors.Recalled{ID: r.ID, Type: r.Type, Snippet: r.Snippet, Score: r.Score}
	}
	return out, nil
}

func (a *agentMemory) CorePrompt(ctx context.Context, scope store.Scope, agentID string) (string, error) {
	blocks, err := a.svc.CoreBlocks(ctx, scope, agentID)
	if err != nil {
		return "", err
	}
	return memory.RenderCore(blocks), nil
}

// RememberRun queues "asked X, answered Y" as an episodic memory.
func (a *agentMemory) RememberRun(scope store.Scope, agentID, runID, input, output string) {
	text := fmt.Sprintf("Run %s. Asked: %s\nAnswered: %s", runID, truncateRunes(input, 1000), truncateRunes(output, 2000))
	req := memory.WriteRequest{Scope: scope, Type: memory.TypeEpisodic, AgentID: agentID, Text: text,
		Metadata: map[string]string{"run_id": runID, "kind": "run_summary"}}
	select {
	case a.queue <- req:
	default:
		a.logger.Warn("memory: summary queue full; dropping the run summary", "agent_id", agentID, "run_id", runID)
	}
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
