package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// The runs summary (GET /api/metrics/summary): the stores read the few
// columns of a window's runs in one query (RunSamples) and everything else is
// computed here, once for both, in Go: percentiles need every duration
// anyway, and a window is bounded (MaxSummaryRuns, the newest first).

// MaxSummaryRuns bounds the runs one summary reads; a window with more is
// summarised over its newest MaxSummaryRuns runs and says so (Truncated).
const MaxSummaryRuns = 100_000

// maxBreakdown bounds each per-agent, role or group list (the busiest first),
// and maxFailureReasons the failure reasons listed.
const (
	maxBreakdown      = 100
	maxFailureReasons = 10
)

// RunSample is what a summary reads of a run.
type RunSample struct {
	AgentID   string // "" for a group run
	GroupID   string
	RoleID    string
	Status    string
	StartedAt *time.Time
	EndedAt   *time.Time
	Usage     Usage
	Error     *RunError
}

// RunSampleFilter selects a scope's runs created in [Since, Until); empty
// ids match every run.
type RunSampleFilter struct {
	Since, Until             time.Time
	AgentID, RoleID, GroupID string
	// Limit is the most runs read, the newest first (0: MaxSummaryRuns; at
	// most one more, to tell that a window had more).
	Limit int
}

// SummaryStore reads the runs a summary is made of.
type SummaryStore interface {
	RunSamples(ctx context.Context, scope Scope, f RunSampleFilter) ([]RunSample, error)
}

// SampleLimit is the number of runs RunSamples reads for f.
func SampleLimit(f RunSampleFilter) int {
	if f.Limit <= 0 {
		return MaxSummaryRuns
	}
	if f.Limit > MaxSummaryRuns+1 {
		return MaxSummaryRuns + 1
	}
	return f.Limit
}

// Latency is the spread of run durations (ended_at - started_at), in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// FailureReason counts the failed runs with one error code.
type FailureReason struct {
	Code    string `json:"code"`
	Count   int    `json:"count"`
	Example string `json:"example"` // the message of one of them
}

// WindowStats summarise a set of runs.
type WindowStats struct {
	Runs     int            `json:"runs"`
	ByStatus map[string]int `json:"by_status"`
	// SuccessRate is completed / finished (completed, failed or cancelled);
	// nil when none finished.
	SuccessRate    *float64        `json:"success_rate"`
	LatencyMS      *Latency        `json:"latency_ms"` // nil when no run both started and ended
	Tokens         Usage           `json:"tokens"`
	FailureReasons []FailureReason `json:"failure_reasons"`
}

// KeyedRunStats are the stats of one agent, role or group.
type KeyedRunStats struct {
	ID string `json:"id"`
	WindowStats
}

// RunSummary is the summary of a window's runs.
type RunSummary struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Truncated: the window had more runs than were read; the summary covers
	// the newest of them.
	Truncated bool `json:"truncated"`
	WindowStats
	// ByAgent counts agents' runs; ByRole member runs by their role; ByGroup
	// the group runs (the orchestrations, not their members' runs). Each is
	// the busiest first, at most 100.
	ByAgent []KeyedRunStats `json:"by_agent"`
	ByRole  []KeyedRunStats `json:"by_role"`
	ByGroup []KeyedRunStats `json:"by_group"`
}

// Summarize makes the summary of runs (as RunSamples read them for f).
func Summarize(runs []RunSample, f RunSampleFilter, truncated bool) RunSummary {
	sum := RunSummary{Since: f.Since, Until: f.Until, Truncated: truncated, WindowStats: windowStats(runs)}
	var byAgent, byRole, byGroup = map[string][]RunSample{}, map[string][]RunSample{}, map[string][]RunSample{}
	for _, r := range runs {
		switch {
		case r.AgentID != "":
			byAgent[r.AgentID] = append(byAgent[r.AgentID], r)
			if r.RoleID != "" {
				byRole[r.RoleID] = append(byRole[r.RoleID], r)
			}
		case r.GroupID != "":
			byGroup[r.GroupID] = append(byGroup[r.GroupID], r)
		}
	}
	sum.ByAgent, sum.ByRole, sum.ByGroup = breakdown(byAgent), breakdown(byRole), breakdown(byGroup)
	return sum
}

func breakdown(groups map[string][]RunSample) []KeyedRunStats {
	out := make([]KeyedRunStats, 0, len(groups))
	for id, runs := range groups {
		out = append(out, KeyedRunStats{ID: id, WindowStats: windowStats(runs)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Runs != out[j].Runs {
			return out[i].Runs > out[j].Runs
		}
		return out[i].ID < out[j].ID
	})
	return out[:min(len(out), maxBreakdown)]
}

func windowStats(runs []RunSample) WindowStats {
	st := WindowStats{Runs: len(runs), ByStatus: map[string]int{}, FailureReasons: []FailureReason{}}
	var durations []float64
	reasons := map[string]*FailureReason{}
	for _, r := range runs {
		st.ByStatus[r.Status]++
		st.Tokens.PromptTokens += r.Usage.PromptTokens
		st.Tokens.CompletionTokens += r.Usage.CompletionTokens
		st.Tokens.TotalTokens += r.Usage.TotalTokens
		st.Tokens.CacheReadTokens += r.Usage.CacheReadTokens
		st.Tokens.CacheWriteTokens += r.Usage.CacheWriteTokens
		if r.StartedAt != nil && r.EndedAt != nil {
			durations = append(durations, float64(r.EndedAt.Sub(*r.StartedAt).Microseconds())/1000)
		}
		if r.Status == RunFailed {
			code, msg := "unknown", ""
			if r.Error != nil {
				code, msg = r.Error.Code, r.Error.Message
				if code == "" {
					code = "unknown"
				}
			}
			fr := reasons[code]
			if fr == nil {
				fr = &FailureReason{Code: code, Example: cut(msg, 200)}
				reasons[code] = fr
			}
			fr.Count++
		}
	}
	if finished := st.ByStatus[RunCompleted] + st.ByStatus[RunFailed] + st.ByStatus[RunCancelled]; finished > 0 {
		rate := float64(st.ByStatus[RunCompleted]) / float64(finished)
		st.SuccessRate = &rate
	}
	if len(durations) > 0 {
		sort.Float64s(durations)
		st.LatencyMS = &Latency{Count: len(durations), P50: percentile(durations, 0.50), P90: percentile(durations, 0.90),
			P99: percentile(durations, 0.99), Max: durations[len(durations)-1]}
	}
	for _, fr := range reasons {
		st.FailureReasons = append(st.FailureReasons, *fr)
	}
	sort.Slice(st.FailureReasons, func(i, j int) bool {
		a, b := st.FailureReasons[i], st.FailureReasons[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Code < b.Code
	})
	st.FailureReasons = st.FailureReasons[:min(len(st.FailureReasons), maxFailureReasons)]
	return st
}

// percentile is the nearest-rank p-th percentile of sorted values: a
// duration some run actually took.
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// DecodeJSON fills the sample's usage and error from their stored JSON
// (runErr nil: the run has none).
func (r *RunSample) DecodeJSON(usage, runErr []byte) error {
	if len(usage) > 0 {
		if err := json.Unmarshal(usage, &r.Usage); err != nil {
			return fmt.Errorf("decode run usage: %w", err)
		}
	}
	if runErr != nil {
		r.Error = &RunError{}
		if err := json.Unmarshal(runErr, r.Error); err != nil {
			return fmt.Errorf("decode run error: %w", err)
		}
	}
	return nil
}
