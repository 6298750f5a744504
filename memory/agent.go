package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
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
// recall for a turn, the core prompt, and its runs' episodic summaries.
// Episodic summaries are written by one goroutine: a slow store or embedder
// never stalls an agent's step loop. A completed run reaches it through a
// bounded channel (so the hot path reads nothing back), and the store's
// summary queue is the truth: whatever the channel could not take, a failed
// write, or a crash leaves there is written by a catch-up pass over the
// queue, and each run is taken off the queue once its summary is stored.
// None is dropped or lost.
//
// A summary covers a stretch of one session: the runs of a session that end
// less than SessionPause apart share one, of at most SessionRuns runs.
// Under load that divides what recall costs (the summaries' chunks, postings
// and vectors, written and then searched) by up to SessionRuns; at the pace
// of a person typing each run still gets its own. A session's latest runs
// are in its own turns' history meanwhile, so only other sessions wait (up to
// SessionPause) to recall them.
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

// SessionRuns is the most runs one episodic summary covers.
const SessionRuns = 16

// SessionPause ends a session's summary: a run that ends this long after the
// session's previous one starts the next.
const SessionPause = time.Second

// NewAgentMemory starts the summary writer; Close stops it.
func NewAgentMemory(svc *Service, queue SummaryQueue, logger *slog.Logger) *AgentMemory {
	ctx, cancel := context.WithCancel(store.WithBackground(context.Background()))
	a := &AgentMemory{svc: svc, queue: queue, logger: logger, runs: make(chan store.Run, 256), behind: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go a.writer()
	return a
}

// summaryBatch bounds how many runs a catch-up reads at once.
const summaryBatch = 64

// Retry delays of the summary writer after a failed write (store or
// embedder unreachable): doubling from the first to the last.
const (
	summaryRetryFirst = time.Second
	summaryRetryMax   = 30 * time.Second
)

// sessionOf is the key of a run's session: its summaries' grouping.
type sessionOf struct {
	scope   store.Scope
	agentID string
	session string
}

// openSummary is a session's runs whose summary is not written yet.
type openSummary struct {
	runs []store.Run
	last time.Time // when its latest run arrived
}

// writer catches up from the store at start (summaries a crash left
// behind), then gathers the runs handed over by session and writes a
// session's summary once it holds SessionRuns runs or the session has paused;
// summaries due together share one transaction. After a failure it waits,
// then catches up from the store, which still holds every run not written.
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
	open := map[sessionOf]*openSummary{}
	tick := time.NewTicker(SessionPause / 4)
	defer tick.Stop()
	for {
		if catchUp && !time.Now().Before(nextTry) {
			// The store holds every open session's runs too: the catch-up
			// writes them, so they are forgotten here.
			clear(open)
			if err := a.catchUp(); err != nil {
				failed(err)
			} else {
				catchUp, retry = false, 0
			}
		}
		var due [][]store.Run
		select {
		case <-a.stop:
			return
		case <-a.behind:
			catchUp = true
		case <-tick.C:
			now := time.Now()
			for k, o := range open {
				if now.Sub(o.last) >= SessionPause {
					due = append(due, o.runs)
					delete(open, k)
				}
			}
		case r := <-a.runs:
			if catchUp {
				break // the catch-up pass will find r in the store
			}
			k := sessionOf{r.Scope, r.AgentID, r.SessionKey}
			o := open[k]
			if o == nil {
				o = &openSummary{}
				open[k] = o
			}
			o.runs, o.last = append(o.runs, r), time.Now()
			if len(o.runs) >= SessionRuns {
				due = append(due, o.runs)
				delete(open, k)
			}
		}
		if len(due) > 0 && !catchUp {
			if err := a.write(due); err != nil {
				failed(err)
			}
		}
	}
}

// catchUp writes the summaries of every run the store holds queued, a
// session's runs of each page together.
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
		if err := a.write(bySession(runs)); err != nil {
			return err
		}
		if len(runs) < summaryBatch {
			return nil
		}
	}
}

// bySession splits runs into their sessions' groups of at most SessionRuns,
// each in the order given.
func bySession(runs []store.Run) [][]store.Run {
	var groups [][]store.Run
	at := map[sessionOf]int{}
	for _, r := range runs {
		k := sessionOf{r.Scope, r.AgentID, r.SessionKey}
		i, ok := at[k]
		if !ok || len(groups[i]) >= SessionRuns {
			i = len(groups)
			at[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

// write stores the summaries of groups (each a session's runs) and takes
// the runs it is done with off the store's queue.
func (a *AgentMemory) write(groups [][]store.Run) error {
	done, err := a.store(groups)
	if derr := a.queue.SummariesDone(a.ctx, done); derr != nil && err == nil {
		err = derr
	}
	return err
}

// summaryID is the memory id of a summary whose first run is runID: writing
// it twice (a crash after the write, before the queue heard of it) is a
// conflict, not a copy.
func summaryID(runID string) string { return "mem_" + runID }

// Metadata of a summary: the runs it covers, the first of them apart.
const (
	metaRunID  = "run_id"
	metaRunIDs = "run_ids"
)

// summaryRequest is the summary of a session's runs, nil when none of them
// is to be summarised (deleted, or not completed, since it was queued).
func summaryRequest(runs []store.Run) *WriteRequest {
	var kept []store.Run
	for _, r := range runs {
		if r.Status == store.RunCompleted && r.AgentID != "" {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	var text strings.Builder
	ids := make([]string, len(kept))
	for i, r := range kept {
		ids[i] = r.ID
		if i > 0 {
			text.WriteString("\n\n")
		}
		fmt.Fprintf(&text, "Run %s. Asked: %s\nAnswered: %s", r.ID, truncateRunes(r.Input, 1000), truncateRunes(r.Output, 2000))
	}
	first, last := kept[0], kept[len(kept)-1]
	meta := map[string]string{metaRunID: first.ID, "kind": "run_summary", "session_key": first.SessionKey}
	if len(kept) > 1 {
		meta[metaRunIDs] = strings.Join(ids, ",")
	}
	req := &WriteRequest{ID: summaryID(first.ID), Scope: first.Scope, Type: TypeEpisodic, AgentID: first.AgentID,
		Text: text.String(), Metadata: meta}
	if last.EndedAt != nil {
		req.CreatedAt = *last.EndedAt
	}
	return req
}

// summarised are the runs a stored summary covers.
func summarised(m Memory) []string {
	if ids := m.Metadata[metaRunIDs]; ids != "" {
		return strings.Split(ids, ",")
	}
	return []string{m.Metadata[metaRunID]}
}

// store writes the summaries of groups and returns the runs it is done with:
// summarised, already summarised, or not to be (gone, or refused as
// invalid). err is the first failure worth retrying.
func (a *AgentMemory) store(groups [][]store.Run) (done []store.Run, err error) {
	var reqs []WriteRequest
	var of [][]store.Run
	for _, g := range groups {
		if req := summaryRequest(g); req != nil {
			reqs, of = append(reqs, *req), append(of, g)
		} else {
			done = append(done, g...)
		}
	}
	if len(reqs) > 1 {
		if _, err := a.svc.WriteBatch(a.ctx, reqs); err == nil {
			for _, g := range of {
				done = append(done, g...)
			}
			return done, nil
		}
		// One summary already stored, or one bad one, must not cost the
		// others: write them one by one.
	}
	failed := 0
	for i, req := range reqs {
		_, werr := a.svc.Write(a.ctx, req)
		if errors.Is(werr, store.ErrConflict) {
			// Stored before a crash, perhaps with fewer runs than are queued
			// now: the runs it does not cover get a summary of their own.
			var covered, rest []store.Run
			covered, rest, werr = a.uncovered(req, of[i])
			done = append(done, covered...)
			if werr == nil && len(rest) > 0 {
				var more []store.Run
				more, werr = a.store([][]store.Run{rest})
				done = append(done, more...)
			}
			if werr == nil {
				failed = 0
				continue
			}
		}
		switch {
		case werr == nil:
			done, failed = append(done, of[i]...), 0
		case errors.Is(werr, ErrInvalid), errors.Is(werr, store.ErrQuotaExceeded):
			// A full scope keeps its quota until someone deletes memories:
			// waiting would hold up every other scope's summaries.
			a.logger.Warn("memory: episodic summary refused", "agent_id", req.AgentID, "run_id", req.Metadata[metaRunID], "err", werr)
			done, failed = append(done, of[i]...), 0
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

// uncovered splits group into the runs the stored summary req.ID covers and
// the rest.
func (a *AgentMemory) uncovered(req WriteRequest, group []store.Run) (covered, rest []store.Run, err error) {
	m, err := a.svc.Get(a.ctx, req.Scope, req.ID)
	if err != nil {
		return nil, nil, err
	}
	ids := summarised(m)
	for _, r := range group {
		if slices.Contains(ids, r.ID) {
			covered = append(covered, r)
		} else {
			rest = append(rest, r)
		}
	}
	return covered, rest, nil
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
