package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// fakeTrace is an in-memory TraceReader that follows store.EventStore's
// ListEvents contract: events of the scope matching the filter, after AfterID,
// in id order, at most Limit (default 100, capped at maxLimit when set), and
// the count of all matching events.
type fakeTrace struct {
	mu       sync.Mutex
	events   []store.Event
	maxLimit int
	calls    int
	err      error
}

func (f *fakeTrace) add(scope store.Scope, runID string, types ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, typ := range types {
		id := int64(len(f.events) + 1)
		f.events = append(f.events, store.Event{
			Scope: scope, ID: id, RunID: runID, AgentID: "main", Type: typ,
			TS:      time.Date(2025, 1, 1, 0, 0, int(id), 0, time.UTC),
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, id)),
		})
	}
}

func (f *fakeTrace) ListEvents(_ context.Context, scope store.Scope, filter store.EventFilter) ([]store.Event, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, 0, f.err
	}
	limit := filter.Limit
	if limit <= 0 {
		limit = 100
	}
	if f.maxLimit > 0 && limit > f.maxLimit {
		limit = f.maxLimit
	}
	var out []store.Event
	total := 0
	for _, e := range f.events {
		if e.Scope != scope || (filter.RunID != "" && e.RunID != filter.RunID) ||
			(len(filter.Types) > 0 && !slices.Contains(filter.Types, e.Type)) {
			continue
		}
		total++
		if e.ID > filter.AfterID && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, total, nil
}

var (
	scopeA = store.Scope{OrgID: "org-a", UserID: "u1"}
	scopeB = store.Scope{OrgID: "org-b", UserID: "u1"}
)

type exportedTrace struct {
	RunID  string            `json:"run_id"`
	Count  int               `json:"count"`
	Events []json.RawMessage `json:"events"`
}

func decodeTraceEvents(t *testing.T, raws []json.RawMessage) []store.Event {
	t.Helper()
	evs := make([]store.Event, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &evs[i]); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	return evs
}

func exportCall(scope store.Scope, runID, args string) Call {
	return Call{Scope: scope, AgentID: "main", RunID: runID, CallID: "c1", Name: "export_trace", Args: json.RawMessage(args)}
}

func TestExportTraceDefaultsToCallingRun(t *testing.T) {
	f := &fakeTrace{}
	f.add(scopeA, "run-1", "run.started", "llm.called", "tool.called")
	f.add(scopeA, "run-2", "run.started")
	f.add(scopeB, "run-1", "run.started", "secret.event") // same run id, other scope
	f.add(scopeA, "run-1", "run.completed")

	r := NewRegistry()
	mustRegister(t, r, NewExportTrace(f))
	res, out := r.Route(context.Background(), exportCall(scopeA, "run-1", `{}`), nil)
	if out != OutcomeOK || res.IsError {
		t.Fatalf("export: %v %+v", out, res)
	}
	if strings.Contains(res.Content, "secret.event") || strings.Contains(res.Content, "org-") {
		t.Fatalf("export leaked another scope or the scope itself: %s", res.Content)
	}
	var got exportedTrace
	if err := json.Unmarshal([]byte(res.Content), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, res.Content)
	}
	evs := decodeTraceEvents(t, got.Events)
	if got.RunID != "run-1" || got.Count != 4 || len(evs) != 4 {
		t.Fatalf("got run %q count %d events %d", got.RunID, got.Count, len(evs))
	}
	wantTypes := []string{"run.started", "llm.called", "tool.called", "run.completed"}
	wantIDs := []int64{1, 2, 3, 7}
	for i, e := range evs {
		if e.Type != wantTypes[i] || e.ID != wantIDs[i] || e.RunID != "run-1" {
			t.Fatalf("event %d = %+v, want %s #%d", i, e, wantTypes[i], wantIDs[i])
		}
	}
	if string(evs[3].Payload) != `{"n":7}` || !evs[3].TS.Equal(time.Date(2025, 1, 1, 0, 0, 7, 0, time.UTC)) {
		t.Fatalf("payload/ts not kept: %+v", evs[3])
	}

	// Another run of the same scope, named explicitly.
	res, _ = r.Route(context.Background(), exportCall(scopeA, "run-1", `{"run_id":"run-2"}`), nil)
	if err := json.Unmarshal([]byte(res.Content), &got); err != nil || got.RunID != "run-2" || got.Count != 1 {
		t.Fatalf("run-2: %v %s", err, res.Content)
	}
}

func TestExportTraceOtherScopeIsNotFound(t *testing.T) {
	f := &fakeTrace{}
	f.add(scopeB, "run-b", "run.started", "run.completed")
	tool := NewExportTrace(f)
	for _, c := range []Call{
		exportCall(scopeA, "run-a", `{"run_id":"run-b"}`), // another scope's run by id
		exportCall(scopeA, "run-b", `{}`),                 // even as the "calling" run
		exportCall(scopeA, "run-a", `{"run_id":"nope"}`),  // no such run at all
	} {
		res, err := tool.Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if !res.IsError || !strings.Contains(res.Content, "not found") || strings.Contains(res.Content, "run.started") {
			t.Fatalf("%s: %+v", c.Args, res)
		}
	}
	res, _ := tool.Run(context.Background(), exportCall(scopeB, "", `{"run_id":"run-b"}`))
	if res.IsError {
		t.Fatalf("own scope: %+v", res)
	}
}

func TestExportTraceNoRun(t *testing.T) {
	tool := NewExportTrace(&fakeTrace{})
	res, err := tool.Run(context.Background(), exportCall(scopeA, "", ``))
	if err != nil || !res.IsError || !strings.Contains(res.Content, "no run_id given") {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestExportTracePagesThroughEverything(t *testing.T) {
	for _, maxLimit := range []int{0, 100, 7} {
		t.Run(fmt.Sprintf("store caps limit at %d", maxLimit), func(t *testing.T) {
			f := &fakeTrace{maxLimit: maxLimit}
			types := make([]string, 1234)
			for i := range types {
				types[i] = fmt.Sprintf("t%d", i%3)
			}
			f.add(scopeA, "run-1", types...)
			f.add(scopeA, "run-2", "other")
			r := NewRegistry(WithMaxResultBytes(1 << 20))
			mustRegister(t, r, NewExportTrace(f))
			res, out := r.Route(context.Background(), exportCall(scopeA, "run-1", `{}`), nil)
			if out != OutcomeOK {
				t.Fatalf("%v %s", out, res.Content)
			}
			var got exportedTrace
			if err := json.Unmarshal([]byte(res.Content), &got); err != nil {
				t.Fatal(err)
			}
			evs := decodeTraceEvents(t, got.Events)
			if got.Count != 1234 || len(evs) != 1234 {
				t.Fatalf("count %d, events %d, want 1234", got.Count, len(evs))
			}
			for i, e := range evs {
				if e.ID != int64(i+1) {
					t.Fatalf("event %d has id %d", i, e.ID)
				}
			}
			if maxLimit == 0 && f.calls != 3 { // 500 + 500 + 234
				t.Fatalf("ListEvents called %d times, want 3", f.calls)
			}
		})
	}
}

func TestExportTraceJSONL(t *testing.T) {
	f := &fakeTrace{}
	f.add(scopeA, "run-1", "a", "b", "c")
	res, err := NewExportTrace(f).Run(context.Background(), exportCall(scopeA, "run-1", `{"format":"jsonl"}`))
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	lines := strings.Split(strings.TrimSuffix(res.Content, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), res.Content)
	}
	for i, l := range lines {
		var e store.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Type != string(rune('a'+i)) {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
	}
}

func TestExportTraceSummarizes(t *testing.T) {
	f := &fakeTrace{}
	var types []string
	for i := range 2000 {
		types = append(types, []string{"llm.called", "tool.called", "tool.result", "step.saved"}[i%4])
	}
	f.add(scopeA, "run-1", types...)
	r := NewRegistry()
	mustRegister(t, r, NewExportTrace(f))

	res, out := r.Route(context.Background(), exportCall(scopeA, "run-1", `{"format":"json"}`), nil)
	if out != OutcomeOK || res.IsError {
		t.Fatalf("%v %+v", out, res)
	}
	if len(res.Content) > DefaultMaxResultBytes || strings.Contains(res.Content, "[truncated:") {
		t.Fatalf("summary is %d bytes or was cut by the router", len(res.Content))
	}
	var s struct {
		RunID      string            `json:"run_id"`
		Count      int               `json:"count"`
		Truncated  bool              `json:"truncated"`
		Note       string            `json:"note"`
		FirstID    int64             `json:"first_id"`
		LastID     int64             `json:"last_id"`
		Types      map[string]int    `json:"types"`
		Shown      int               `json:"shown"`
		LastEvents []json.RawMessage `json:"last_events"`
	}
	if err := json.Unmarshal([]byte(res.Content), &s); err != nil {
		t.Fatalf("summary is not JSON: %v", err)
	}
	if !s.Truncated || s.Count != 2000 || s.RunID != "run-1" || s.FirstID != 1 || s.LastID != 2000 {
		t.Fatalf("summary header %+v", s)
	}
	for _, typ := range []string{"llm.called", "tool.called", "tool.result", "step.saved"} {
		if s.Types[typ] != 500 {
			t.Fatalf("types %v", s.Types)
		}
	}
	last := decodeTraceEvents(t, s.LastEvents)
	if len(last) == 0 || len(last) != s.Shown || len(last) > exportTraceTail {
		t.Fatalf("last events: %d, shown %d", len(last), s.Shown)
	}
	for i, e := range last {
		if want := int64(2000 - len(last) + 1 + i); e.ID != want {
			t.Fatalf("last event %d has id %d, want %d", i, e.ID, want)
		}
	}
	if !strings.Contains(s.Note, "2000 events") {
		t.Fatalf("note %q", s.Note)
	}

	// jsonl: the summary is the first line, the last events follow.
	res, _ = r.Route(context.Background(), exportCall(scopeA, "run-1", `{"format":"jsonl"}`), nil)
	lines := strings.Split(strings.TrimSuffix(res.Content, "\n"), "\n")
	if len(res.Content) > DefaultMaxResultBytes {
		t.Fatalf("jsonl summary is %d bytes", len(res.Content))
	}
	var head map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &head); err != nil || head["truncated"] != true || head["count"] != float64(2000) {
		t.Fatalf("jsonl head %q: %v", lines[0], err)
	}
	if _, has := head["last_events"]; has {
		t.Fatal("jsonl head repeats the events")
	}
	if int(head["shown"].(float64)) != len(lines)-1 || len(lines) < 2 {
		t.Fatalf("shown %v, lines %d", head["shown"], len(lines))
	}
	var e store.Event
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil || e.ID != 2000 {
		t.Fatalf("last jsonl line %q: %v", lines[len(lines)-1], err)
	}
}

func TestExportTraceHugePayload(t *testing.T) {
	f := &fakeTrace{}
	f.add(scopeA, "run-1", "run.started", "llm.response")
	big, _ := json.Marshal(map[string]string{"text": strings.Repeat("<x>", 20000)})
	f.events[1].Payload = big
	res, err := NewExportTrace(f).Run(context.Background(), exportCall(scopeA, "run-1", `{}`))
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	if len(res.Content) > DefaultMaxResultBytes {
		t.Fatalf("%d bytes", len(res.Content))
	}
	var s struct {
		Truncated  bool          `json:"truncated"`
		Count      int           `json:"count"`
		LastEvents []store.Event `json:"last_events"`
	}
	if err := json.Unmarshal([]byte(res.Content), &s); err != nil {
		t.Fatal(err)
	}
	if !s.Truncated || s.Count != 2 || len(s.LastEvents) != 2 {
		t.Fatalf("%+v", s)
	}
	if got := string(s.LastEvents[1].Payload); got != fmt.Sprintf(`{"omitted_bytes":%d}`, len(big)) {
		t.Fatalf("huge payload shown as %.100s", got)
	}
	if string(s.LastEvents[0].Payload) != `{"n":1}` {
		t.Fatalf("small payload changed: %s", s.LastEvents[0].Payload)
	}
}

func TestExportTraceStoreErrors(t *testing.T) {
	errDB := errors.New("database is locked")
	tool := NewExportTrace(&fakeTrace{err: fmt.Errorf("sqlite: %w", errDB)})
	_, err := tool.Run(context.Background(), exportCall(scopeA, "run-1", `{}`))
	if !errors.Is(err, errDB) || !strings.Contains(err.Error(), `run "run-1"`) {
		t.Fatalf("err = %v, want it to wrap the store error", err)
	}
	res, err := NewExportTrace(&fakeTrace{err: store.ErrNotFound}).Run(context.Background(), exportCall(scopeA, "run-1", `{}`))
	if err != nil || !res.IsError || res.Content != `run "run-1" not found` {
		t.Fatalf("ErrNotFound: %v %+v", err, res)
	}

	// Through the router, a store failure is an error result with its message.
	r := NewRegistry()
	mustRegister(t, r, tool)
	res, out := r.Route(context.Background(), exportCall(scopeA, "run-1", `{}`), nil)
	if out != OutcomeError || !strings.Contains(res.Content, "database is locked") {
		t.Fatalf("%v %+v", out, res)
	}
}

// stuckTrace returns the same page forever; export_trace must not loop.
type stuckTrace struct{ calls int }

func (s *stuckTrace) ListEvents(context.Context, store.Scope, store.EventFilter) ([]store.Event, int, error) {
	s.calls++
	return []store.Event{{ID: 1, RunID: "r", Type: "x"}, {ID: 2, RunID: "r", Type: "x"}}, 1000, nil
}

func TestExportTraceGuardsAgainstABadStore(t *testing.T) {
	st := &stuckTrace{}
	_, err := NewExportTrace(st).Run(context.Background(), exportCall(scopeA, "r", `{}`))
	if err == nil || !strings.Contains(err.Error(), "not in increasing id order") || st.calls != 2 {
		t.Fatalf("err = %v after %d calls", err, st.calls)
	}
}

func TestExportTraceSchemaThroughRouter(t *testing.T) {
	r := NewRegistry()
	mustRegister(t, r, NewExportTrace(&fakeTrace{}))
	res, _ := r.Route(context.Background(), exportCall(scopeA, "r", `{"format":"xml"}`), nil)
	if !res.IsError || !strings.Contains(res.Content, `argument "format": must be one of "json", "jsonl"; got "xml"`) {
		t.Fatalf("%+v", res)
	}
	res, _ = r.Route(context.Background(), exportCall(scopeA, "r", `{"run_id":""}`), nil)
	if !res.IsError || !strings.Contains(res.Content, `argument "run_id": must not be empty`) {
		t.Fatalf("%+v", res)
	}
}
