package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/openintern/openintern/store"
)

// recallTopK is how many memories a turn recalls into its context.
const recallTopK = 3

// recallCandidates is how many chunks each search leg of a turn's recall
// fetches: a few times recallTopK is enough to fuse well, and every turn
// pays for them.
const recallCandidates = 20

// SummaryQueue is the store's queue of completed runs waiting for their
// episodic summary (filled by FinishRun, see store.RunResult.Remember).
type SummaryQueue interface {
	PendingSummaries(ctx context.Context, limit int) ([]store.Run, error)
	SummariesDone(ctx context.Context, runs []store.Run) error
}

// Recalled is one memory recalled into a turn's context.
type Recalled struct {
	ID      string  `json:"id"`
	Type    string  `json:"type"`
	Snippet string  `json:"snippet"`
	Score   float64 `json:"score"`
	// Source cites the document the memory was ingested from (the trace
	// shows it as a link); absent otherwise.
	Source *Citation `json:"source,omitempty"`
}

// AgentMemory is what an agent's step loop needs of memory (actors.Memory):
// recall for a turn, the core prompt, and its runs' episodic summaries. Episodic summaries are
// written by one goroutine: a slow store or embedder never stalls an agent's
// step loop. A completed run reaches it through a bounded channel (so the
// hot path reads nothing back), and the store's summary queue is the truth:
// whatever the channel could not take, a failed write, or a crash leaves
// there is written by a catch-up pass over the queue, and each summary is
// taken off the queue once stored. None is dropped or lost.
type AgentMemory struct {
	svc    *Service
	queue  SummaryQueue
	logger *slog.Logger
	runs   chan store.Run
	behind chan struct{} // the channel was full: catch up from the store
	stop   chan struct{}
	done   chan struct{}
	// cancel aborts a write in progress when Close runs out of time.
	cancel context.CancelFunc
	ctx    context.Context
}

// NewAgentMemory starts the summary writer; Close stops it.
func NewAgentMemory(svc *Service, queue SummaryQueue, logger *slog.Logger) *AgentMemory {
	ctx, cancel := context.WithCancel(store.WithBackground(context.Background()))
	a := &AgentMemory{svc: svc, queue: queue, logger: logger, runs: make(chan store.Run, 256), behind: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go a.writer()
	return a
}

// summaryBatch bounds how many summaries share one transaction.
const summaryBatch = 64

// summaryLinger is how long the writer waits for more runs to share a
// batch: a run's summary is recallable this much later, which no turn
// notices (the session's own recent turns are in its history).
const summaryLinger = 300 * time.Millisecond

// Retry delays of the summary writer after a failed write (store or
// embedder unreachable): doubling from the first to the last.
const (
	summaryRetryFirst = time.Second
	summaryRetryMax   = 30 * time.Second
)

// writer catches up from the store at start (summaries a crash left
// behind), then writes the runs handed over, as many as are waiting in one
// transaction: under load the commits (and the term-count updates every
// writer of a scope waits on) are shared instead of queueing one behind
// another. After a failure it waits, then catches up from the store.
func (a *AgentMemory) writer() {
	defer close(a.done)
	catchUp := true
	var retry time.Duration
	var nextTry time.Time
	failed := func(err error) {
		catchUp = true
		retry = min(max(2*retry, summaryRetryFirst), summaryRetryMax)
		nextTry = time.Now().Add(retry)
		if a.ctx.Err() == nil {
			a.logger.Warn("memory: episodic summaries not stored; retrying", "in", retry, "err", err)
		}
	}
	batch := make([]store.Run, 0, summaryBatch)
	for {
		if catchUp && !time.Now().Before(nextTry) {
			if err := a.catchUp(); err != nil {
				failed(err)
			} else {
				catchUp, retry = false, 0
			}
		}
		var timer *time.Timer
		var again <-chan time.Time
		if catchUp {
			timer = time.NewTimer(time.Until(nextTry))
			again = timer.C
		}
		select {
		case <-a.stop:
		case <-a.behind:
			catchUp = true
		case <-again:
		case r := <-a.runs:
			if catchUp {
				break // the catch-up pass will find r in the store
			}
			batch = append(batch[:0], r)
			// Runs arriving within summaryLinger share the batch: every
			// transaction updates the scope's hottest rows (the term counts
			// of "run", "asked"… and the scope's total), whose versions
			// every recall then walks through until vacuum; fewer, larger
			// batches keep that short and the queue bounded under load.
			linger := time.NewTimer(summaryLinger)
		drain:
			for len(batch) < summaryBatch {
				select {
				case r := <-a.runs:
					batch = append(batch, r)
				case <-linger.C:
					break drain
				case <-a.stop:
					break drain
				}
			}
			linger.Stop()
			if err := a.write(batch); err != nil {
				failed(err)
			}
		}
		if timer != nil {
			timer.Stop()
		}
		select {
		case <-a.stop:
			return
		default:
		}
	}
}

// catchUp writes every summary the store holds queued.
func (a *AgentMemory) catchUp() error {
	for {
		select {
		case <-a.stop:
			return nil
		default:
		}
		runs, err := a.queue.PendingSummaries(a.ctx, summaryBatch)
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			return nil
		}
		if err := a.write(runs); err != nil {
			return err
		}
		if len(runs) < summaryBatch {
			return nil
		}
	}
}

// write stores the summaries of runs and takes those it is done with off
// the store's queue.
func (a *AgentMemory) write(runs []store.Run) error {
	done, err := a.store(runs)
	if derr := a.queue.SummariesDone(a.ctx, done); derr != nil && err == nil {
		err = derr
	}
	return err
}

// summaryID is the memory id of a run's summary: writing it twice (a crash
// after the write, before the queue heard of it) is a conflict, not a copy.
func summaryID(runID string) string { return "mem_" + runID }

// store writes the summaries of runs and returns the runs it is done with:
// written, already written, or not to be written (gone, or refused as
// invalid). err is the first failure worth retrying.
func (a *AgentMemory) store(runs []store.Run) (done []store.Run, err error) {
	var reqs []WriteRequest
	var of []store.Run
	for _, r := range runs {
		if r.Status != store.RunCompleted || r.AgentID == "" {
			done = append(done, r) // deleted since it was queued
			continue
		}
		text := fmt.Sprintf("Run %s. Asked: %s\nAnswered: %s", r.ID, truncateRunes(r.Input, 1000), truncateRunes(r.Output, 2000))
		req := WriteRequest{ID: summaryID(r.ID), Scope: r.Scope, Type: TypeEpisodic, AgentID: r.AgentID, Text: text,
			Metadata: map[string]string{"run_id": r.ID, "kind": "run_summary"}}
		if r.EndedAt != nil {
			req.CreatedAt = *r.EndedAt
		}
		reqs, of = append(reqs, req), append(of, r)
	}
	if len(reqs) > 1 {
		if _, err := a.svc.WriteBatch(a.ctx, reqs); err == nil {
			return append(done, of...), nil
		}
		// One summary already stored, or one bad one, must not cost the
		// others: write them one by one.
	}
	failed := 0
	for i, req := range reqs {
		_, werr := a.svc.Write(a.ctx, req)
		switch {
		case werr == nil, errors.Is(werr, store.ErrConflict):
			done, failed = append(done, of[i]), 0
		case errors.Is(werr, ErrInvalid), errors.Is(werr, store.ErrQuotaExceeded):
			// A full scope keeps its quota until someone deletes memories:
			// waiting would hold up every other scope's summaries.
			a.logger.Warn("memory: episodic summary refused", "agent_id", req.AgentID, "run_id", of[i].ID, "err", werr)
			done, failed = append(done, of[i]), 0
		default:
			// One summary the embedder refuses stays queued without
			// holding up the rest; several failures in a row mean the
			// store or the embedder is down, and the batch waits.
			if err == nil {
				err = werr
			}
			if failed++; failed == 3 || a.ctx.Err() != nil {
				return done, err
			}
		}
	}
	return done, err
}

// Close stops the writer and waits (up to ctx) for the batch in progress;
// what is still queued is in the store for the next start.
func (a *AgentMemory) Close(ctx context.Context) error {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	defer a.cancel()
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		a.cancel()
		<-a.done
		return fmt.Errorf("memory writer: %w", ctx.Err())
	}
}

func (a *AgentMemory) Recall(ctx context.Context, scope store.Scope, agentID, query string) ([]Recalled, error) {
	res, err := a.svc.Search(ctx, SearchRequest{Scope: scope, Query: query, TopK: recallTopK, Candidates: recallCandidates})
	if err != nil {
		return nil, err
	}
	out := make([]Recalled, len(res))
	for i, r := range res {
		out[i] = Recalled{ID: r.ID, Type: r.Type, Snippet: r.Snippet, Score: r.Score, Source: r.Source}
	}
	return out, nil
}

func (a *AgentMemory) CorePrompt(ctx context.Context, scope store.Scope, agentID string) (string, error) {
	blocks, err := a.svc.CoreBlocks(ctx, scope, agentID)
	if err != nil {
		return "", err
	}
	return RenderCore(blocks), nil
}

// CorePromptOf is CorePrompt of the agent's blocks as the store gave them
// (store.Claim.CoreBlocks, read with the run).
func (a *AgentMemory) CorePromptOf(stored []store.CoreBlock) string {
	return RenderCore(a.svc.withDefaults(slices.Clone(stored)))
}

// RememberRun hands a completed run to the writer; when the writer is
// behind, the run waits in the store's queue for its catch-up pass.
func (a *AgentMemory) RememberRun(run store.Run) {
	select {
	case a.runs <- run:
	default:
		select {
		case a.behind <- struct{}{}:
		default: // a catch-up is already pending
		}
	}
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
