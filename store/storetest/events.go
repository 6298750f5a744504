package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var eventCases = []testCase{
	{"Event/Append", testEventAppend},
	{"Event/Payload", testEventPayload},
	{"Event/Times", testEventTimes},
	{"Event/ListFilters", testEventListFilters},
	{"Event/ListLimits", testEventListLimits},
	{"Event/BatchOrder", testEventBatchOrder},
	{"Event/Isolation", testEventIsolation},
	{"Event/LatestID", testEventLatestID},
	{"Event/TotalWhileWriting", testEventTotalWhileWriting},
	{"Event/CursorSeesEveryCommit", testEventCursorSeesEveryCommit},
}

// testEventCursorSeesEveryCommit has several writers append events of one
// group at once, through every kind of call that stores events, while a
// reader pages after its cursor as an SSE stream does. The reader must end up
// with exactly the full replay: an event that becomes visible after a higher
// id of its scope was read is lost to every cursor.
func testEventCursorSeesEveryCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, calls = 8, 60
	runs := make([]store.Run, writers)
	for i := range runs {
		runs[i], _ = createRun(t, s, scopeA, "a1", "s", "go")
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; n < calls; n++ {
				ev := []store.Event{{Scope: scopeA, RunID: runs[w].ID, GroupID: "g", Type: "step"},
					{Scope: scopeA, RunID: runs[w].ID, GroupID: "g", Type: "tool"}}
				var err error
				switch (w + n) % 3 {
				case 0:
					_, err = s.AppendEvents(ctx, ev[:1+n%2])
				case 1:
					_, err = s.SaveStep(ctx, scopeA, runs[w].ID, &store.Checkpoint{Step: n}, ev)
				default:
					_, err = s.SaveStep(ctx, scopeA, runs[w].ID, nil, ev[:1])
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d call %d: %w", w, n, err)
					return
				}
			}
		}(w)
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()

	var seen []int64
	var cursor int64
	read := func() int {
		evs, _, err := s.ListEvents(ctx, scopeA, store.EventFilter{GroupID: "g", AfterID: cursor, Limit: 1000, NoTotal: true})
		must(t, err)
		for _, e := range evs {
			seen = append(seen, e.ID)
			cursor = e.ID
		}
		return len(evs)
	}
	for done := false; !done; {
		select {
		case <-written:
			for read() > 0 {
			}
			done = true
		default:
			read()
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var all []int64
	for after := int64(0); ; {
		evs, _, err := s.ListEvents(ctx, scopeA, store.EventFilter{GroupID: "g", AfterID: after, Limit: 1000})
		must(t, err)
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			all = append(all, e.ID)
		}
		after = evs[len(evs)-1].ID
	}
	if len(seen) != len(all) {
		missed := 0
		got := map[int64]bool{}
		for _, id := range seen {
			got[id] = true
		}
		for _, id := range all {
			if !got[id] {
				missed++
			}
		}
		t.Fatalf("the cursor read %d events, the replay has %d: %d were never seen", len(seen), len(all), missed)
	}
	if !slices.Equal(seen, all) {
		t.Fatalf("the cursor read the events in another order than the replay")
	}
}

// testEventTotalWhileWriting lists a run's events while another goroutine
// appends to it: the total and the page must describe the same moment, or a
// client paging a live run thinks it lost events.
func testEventTotalWhileWriting(t *testing.T, s store.Store) {
	ctx := t.Context()
	done := make(chan struct{})
	writeErr := make(chan error, 1)
	go func() {
		defer close(writeErr)
		for n := 0; n < 300; n++ { // under one page's limit
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.AppendEvents(ctx, []store.Event{{Scope: scopeA, RunID: "live", Type: "step"}}); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	defer func() {
		close(done)
		must(t, <-writeErr)
	}()
	for i := 0; i < 200; i++ {
		events, total, err := s.ListEvents(ctx, scopeA, store.EventFilter{RunID: "live", Limit: 5000})
		must(t, err)
		if len(events) != total {
			t.Fatalf("list %d: %d events on the page, total says %d", i, len(events), total)
		}
	}
}

func testEventLatestID(t *testing.T, s store.Store) {
	ctx := t.Context()
	id, err := s.LatestEventID(ctx, scopeA, store.EventFilter{GroupID: "g"})
	must(t, err)
	if id != 0 {
		t.Fatalf("LatestEventID of nothing = %d, want 0", id)
	}
	out, err := s.AppendEvents(ctx, []store.Event{
		{Scope: scopeA, RunID: "r1", GroupID: "g", Type: "a"},
		{Scope: scopeA, RunID: "r2", GroupID: "g", Type: "b"},
		{Scope: scopeA, RunID: "r3", GroupID: "h", Type: "a"},
	})
	must(t, err)
	for _, tc := range []struct {
		f    store.EventFilter
		want int64
	}{
		{store.EventFilter{GroupID: "g"}, out[1].ID},
		{store.EventFilter{GroupID: "g", Types: []string{"a"}}, out[0].ID},
		{store.EventFilter{RunID: "r3"}, out[2].ID},
		{store.EventFilter{}, out[2].ID},
		{store.EventFilter{GroupID: "g", AfterID: out[1].ID, Limit: 1}, out[1].ID}, // AfterID and Limit ignored
	} {
		got, err := s.LatestEventID(ctx, scopeA, tc.f)
		must(t, err)
		if got != tc.want {
			t.Fatalf("LatestEventID(%+v) = %d, want %d", tc.f, got, tc.want)
		}
	}
	for _, other := range otherScopes {
		got, err := s.LatestEventID(ctx, other, store.EventFilter{GroupID: "g"})
		must(t, err)
		if got != 0 {
			t.Fatalf("scope %+v sees latest event %d", other, got)
		}
	}
}

func testEventAppend(t *testing.T, s store.Store) {
	ctx := t.Context()
	empty, err := s.AppendEvents(ctx, nil)
	must(t, err)
	if len(empty) != 0 {
		t.Fatalf("AppendEvents(nil) = %v", empty)
	}
	in := []store.Event{
		{Scope: scopeA, RunID: "r1", AgentID: "a", GroupID: "g", StepID: "st1", Type: "run.started", ID: 999},
		{Scope: scopeP, AgentID: "a", Type: "agent.note", Payload: payload(map[string]any{"k": "v"})},
	}
	out, err := s.AppendEvents(ctx, in)
	must(t, err)
	if len(out) != 2 {
		t.Fatalf("got %d events", len(out))
	}
	if out[0].ID <= 0 || out[1].ID <= out[0].ID {
		t.Fatalf("ids = %v, want increasing, assigned by the store", eventIDs(out))
	}
	for i := range in {
		want := in[i]
		want.ID, want.TS = out[i].ID, out[i].TS
		wantEqual(t, fmt.Sprintf("event %d", i), out[i], want)
		checkTime(t, "TS", out[i].TS)
	}
	listed, total := listEvents(t, s, scopeA, store.EventFilter{})
	if total != 1 {
		t.Fatalf("scope A total = %d, want 1", total)
	}
	wantEqual(t, "listed", listed, out[:1])
	listed, _ = listEvents(t, s, scopeP, store.EventFilter{})
	wantEqual(t, "listed in project", listed, out[1:])

	// Later appends get larger ids.
	more, err := s.AppendEvents(ctx, []store.Event{{Scope: scopeB, Type: "x"}})
	must(t, err)
	if more[0].ID <= out[1].ID {
		t.Fatalf("id %d after %d", more[0].ID, out[1].ID)
	}
	for _, bad := range []store.Event{
		{Scope: scopeA},
		{Scope: store.Scope{OrgID: "o"}, Type: "x"},
		{Scope: scopeA, Type: "x", Payload: json.RawMessage(`{not json`)},
	} {
		if _, err := s.AppendEvents(ctx, []store.Event{{Scope: scopeA, Type: "ok"}, bad}); err == nil {
			t.Fatalf("AppendEvents with %+v succeeded", bad)
		}
	}
	if _, total := listEvents(t, s, scopeA, store.EventFilter{}); total != 1 {
		t.Fatalf("a failed batch stored events: total %d", total)
	}
}

func testEventPayload(t *testing.T, s store.Store) {
	ctx := t.Context()
	payloads := []json.RawMessage{
		nil,
		json.RawMessage(`{"b": 1,  "a": [1, 2.50, "x"], "nested": {"z": null}}`), // spacing and key order kept
		json.RawMessage(`"a \u0000 nul and ✓ unicode"`),
		json.RawMessage(`[]`),
		json.RawMessage(`12345678901234567890`),
	}
	in := make([]store.Event, len(payloads))
	for i, p := range payloads {
		in[i] = store.Event{Scope: scopeA, Type: "p", Payload: p}
	}
	out, err := s.AppendEvents(ctx, in)
	must(t, err)
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{})
	for i, p := range payloads {
		if !bytes.Equal(out[i].Payload, p) || !bytes.Equal(listed[i].Payload, p) {
			t.Fatalf("payload %d: stored %q, listed %q, want %q", i, out[i].Payload, listed[i].Payload, p)
		}
		if (p == nil) != (listed[i].Payload == nil) {
			t.Fatalf("payload %d: nil-ness not kept: %#v", i, listed[i].Payload)
		}
	}
}

func testEventTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	given := time.Date(2024, 2, 29, 23, 59, 58, 123456789, zone)
	out, err := s.AppendEvents(ctx, []store.Event{
		{Scope: scopeA, Type: "given", TS: given},
		{Scope: scopeA, Type: "default"},
		{Scope: scopeA, Type: "old", TS: time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC)},
	})
	must(t, err)
	want := given.UTC().Truncate(time.Microsecond)
	if out[0].TS != want {
		t.Fatalf("given TS stored as %v, want %v", out[0].TS, want)
	}
	checkTime(t, "default TS", out[1].TS)
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{})
	for i := range out {
		if listed[i].TS != out[i].TS || listed[i].TS.Location() != time.UTC {
			t.Fatalf("event %d TS listed %v (%v), returned %v", i, listed[i].TS, listed[i].TS.Location(), out[i].TS)
		}
	}
	if listed[2].TS.UnixMicro() != 1 {
		t.Fatalf("1970 TS = %v", listed[2].TS)
	}
}

func testEventListFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := []store.Event{
		{Scope: scopeA, RunID: "r1", AgentID: "a", GroupID: "g1", Type: "run.started"},
		{Scope: scopeA, RunID: "r1", AgentID: "a", GroupID: "g1", Type: "llm.called"},
		{Scope: scopeA, RunID: "r2", AgentID: "b", GroupID: "g1", Type: "run.started"},
		{Scope: scopeA, AgentID: "a", Type: "agent.state_changed"},
		{Scope: scopeA, RunID: "r1", AgentID: "a", GroupID: "g1", Type: "run.completed"},
		{Scope: scopeA, RunID: "r3", AgentID: "b", Type: "tool.called"},
	}
	out, err := s.AppendEvents(ctx, in)
	must(t, err)
	id := func(idx ...int) []int64 {
		ids := []int64{}
		for _, i := range idx {
			ids = append(ids, out[i].ID)
		}
		return ids
	}
	for _, tc := range []struct {
		f    store.EventFilter
		want []int64
	}{
		{store.EventFilter{}, id(0, 1, 2, 3, 4, 5)},
		{store.EventFilter{RunID: "r1"}, id(0, 1, 4)},
		{store.EventFilter{AgentID: "a"}, id(0, 1, 3, 4)},
		{store.EventFilter{AgentID: "b"}, id(2, 5)},
		{store.EventFilter{GroupID: "g1"}, id(0, 1, 2, 4)},
		{store.EventFilter{Types: []string{"run.started"}}, id(0, 2)},
		{store.EventFilter{Types: []string{"run.started", "run.completed"}}, id(0, 2, 4)},
		{store.EventFilter{RunID: "r1", Types: []string{"llm.called", "tool.called"}}, id(1)},
		{store.EventFilter{AgentID: "a", GroupID: "g1", RunID: "r1"}, id(0, 1, 4)},
		{store.EventFilter{RunID: "none"}, id()},
	} {
		events, total := listEvents(t, s, scopeA, tc.f)
		wantEqual(t, fmt.Sprintf("ListEvents(%+v)", tc.f), eventIDs(events), tc.want)
		if total != len(tc.want) {
			t.Fatalf("ListEvents(%+v) total = %d, want %d", tc.f, total, len(tc.want))
		}
	}
	// AfterID and Limit page through; the total ignores both.
	events, total, err := s.ListEvents(ctx, scopeA, store.EventFilter{AgentID: "a", AfterID: out[0].ID, Limit: 2})
	must(t, err)
	if total != 4 {
		t.Fatalf("total with AfterID = %d, want 4", total)
	}
	wantEqual(t, "after first, limit 2", eventIDs(events), id(1, 3))
	events, _, err = s.ListEvents(ctx, scopeA, store.EventFilter{AgentID: "a", AfterID: out[3].ID, Limit: 2})
	must(t, err)
	wantEqual(t, "after fourth", eventIDs(events), id(4))
	events, total, err = s.ListEvents(ctx, scopeA, store.EventFilter{AfterID: out[5].ID})
	must(t, err)
	if len(events) != 0 || total != 6 {
		t.Fatalf("after the last = %d events, total %d", len(events), total)
	}
	wantEqual(t, "full events", func() []store.Event { e, _ := listEvents(t, s, scopeA, store.EventFilter{RunID: "r2"}); return e }(),
		[]store.Event{out[2]})
}

func testEventListLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := make([]store.Event, 1100)
	for i := range in {
		in[i] = store.Event{Scope: scopeA, RunID: "r", Type: "e"}
	}
	_, err := s.AppendEvents(ctx, in)
	must(t, err)
	events, total, err := s.ListEvents(ctx, scopeA, store.EventFilter{RunID: "r"})
	must(t, err)
	if len(events) != 100 || total != 1100 {
		t.Fatalf("default limit: %d events, total %d; want 100, 1100", len(events), total)
	}
	events, total, err = s.ListEvents(ctx, scopeA, store.EventFilter{RunID: "r", Limit: 5000})
	must(t, err)
	if len(events) != 1000 || total != 1100 {
		t.Fatalf("limit 5000: %d events, total %d; want 1000, 1100", len(events), total)
	}
	rest, _, err := s.ListEvents(ctx, scopeA, store.EventFilter{RunID: "r", AfterID: events[999].ID, Limit: 1000})
	must(t, err)
	if len(rest) != 100 {
		t.Fatalf("rest = %d events, want 100", len(rest))
	}
}

// testEventBatchOrder checks that a batch's ids follow the order given.
func testEventBatchOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := make([]store.Event, 300)
	for i := range in {
		in[i] = store.Event{Scope: scopeA, Type: "e", Payload: payload(map[string]int{"i": i})}
	}
	out, err := s.AppendEvents(ctx, in)
	must(t, err)
	listed, _ := listEvents(t, s, scopeA, store.EventFilter{})
	if len(listed) != len(in) {
		t.Fatalf("listed %d events", len(listed))
	}
	for i := range in {
		if out[i].ID != listed[i].ID || !bytes.Equal(listed[i].Payload, in[i].Payload) {
			t.Fatalf("event %d: returned id %d, listed id %d with payload %s; want payload %s",
				i, out[i].ID, listed[i].ID, listed[i].Payload, in[i].Payload)
		}
	}
}

func testEventIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.AppendEvents(ctx, []store.Event{{Scope: scopeA, RunID: "r", AgentID: "a", GroupID: "g", Type: "x"}})
	must(t, err)
	for _, sc := range otherScopes {
		for _, f := range []store.EventFilter{{}, {RunID: "r"}, {AgentID: "a"}, {GroupID: "g"}, {Types: []string{"x"}}} {
			events, total, err := s.ListEvents(ctx, sc, f)
			must(t, err)
			if total != 0 || len(events) != 0 {
				t.Fatalf("scope %+v filter %+v sees %d events of scope A", sc, f, total)
			}
		}
	}
}
