package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

var claimCases = []testCase{
	{"Claim/NoWork", testClaimNoWork},
	{"Claim/Batching", testClaimBatching},
	{"Claim/Resume", testClaimResume},
	{"Claim/RunIDConflict", testClaimRunIDConflict},
	{"Claim/SimultaneousSameAgent", testClaimSimultaneous},
	{"Claim/Concurrent", testClaimConcurrent},
	{"Claim/Alone", testClaimAlone},
	{"Claim/Extras", testClaimExtras},
}

// A claim's extras, where the store reads them, are what the turn would
// read itself right after: the claimed run's session history (another
// session's runs and the run itself left out) and the agent's core blocks.
func testClaimExtras(t *testing.T, s store.Store) {
	ctx := t.Context()
	extras := store.ClaimExtras{SessionHistory: 2, CoreBlocks: true}
	for i, input := range []string{"one", "two", "three"} {
		createRun(t, s, scopeA, "a", "s1", input)
		c, err := s.ClaimNextRun(ctx, scopeA, "a", newID("run"), extras)
		must(t, err)
		want, err := s.SessionHistory(ctx, scopeA, "a", "s1", 2)
		must(t, err)
		if c.HistoryRead {
			if len(c.History) != min(i, 2) || fmt.Sprint(c.History) != fmt.Sprint(want) {
				t.Errorf("claim %d: history %+v, want %+v", i, c.History, want)
			}
		}
		if c.CoreBlocksRead && len(c.CoreBlocks) != 0 {
			t.Errorf("claim %d: core blocks %+v of an agent that has none", i, c.CoreBlocks)
		}
		finish(t, s, scopeA, c.Run.ID, "out "+input)
	}
	createRun(t, s, scopeA, "a", "s2", "elsewhere")
	createRun(t, s, scopeA, "b", "s1", "another agent")
	c, err := s.ClaimNextRun(ctx, scopeA, "a", newID("run"), extras)
	must(t, err)
	if c.HistoryRead && len(c.History) != 0 {
		t.Errorf("a new session's claim has history %+v", c.History)
	}
	finish(t, s, scopeA, c.Run.ID, "ok")
	createRun(t, s, scopeA, "a", "", "no session")
	c, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"), extras)
	must(t, err)
	if c.HistoryRead && len(c.History) != 0 {
		t.Errorf("a run without a session has history %+v", c.History)
	}
	finish(t, s, scopeA, c.Run.ID, "ok")
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"), extras)
	wantErr(t, err, store.ErrNoWork)
}

// A claimed run's message is Alone only when no other message of the agent
// was unread: the agent then goes idle after the run without asking again.
func testClaimAlone(t *testing.T, s store.Store) {
	ctx := t.Context()
	newRun := func(input string) {
		t.Helper()
		if _, _, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"),
			AgentID: "a", SessionKey: "s", Input: input, SenderType: store.SenderUser, SenderID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	newRun("first")
	newRun("second")
	enqueue(t, s, scopeA, "b", "s", "another agent's")
	c, err := s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	if err != nil || c.Run.Input != "first" {
		t.Fatalf("claim: %+v, %v", c.Run, err)
	}
	if c.Alone {
		t.Fatal("first of two unread runs claimed as Alone")
	}
	finish(t, s, scopeA, c.Run.ID, "ok")
	c, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	if err != nil || c.Run.Input != "second" {
		t.Fatalf("claim: %+v, %v", c.Run, err)
	}
	if !c.Alone {
		t.Fatal("the last unread run is not claimed as Alone (another agent's message counted?)")
	}
	finish(t, s, scopeA, c.Run.ID, "ok")
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)
}

func testClaimNoWork(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)
	enqueue(t, s, scopeA, "b", "s", "for b")
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)
	c := claim(t, s, scopeA, "b")
	finish(t, s, scopeA, c.Run.ID, "ok")
	_, err = s.ClaimNextRun(ctx, scopeA, "b", newID("run"))
	wantErr(t, err, store.ErrNoWork)
}

// testClaimBatching walks an inbox through every rule of ClaimNextRun.
func testClaimBatching(t *testing.T, s store.Store) {
	ctx := t.Context()
	m1 := enqueue(t, s, scopeA, "a", "s1", "m1")[0]
	m2 := enqueue(t, s, scopeA, "a", "s1", "m2")[0]
	m3 := enqueue(t, s, scopeA, "a", "s2", "m3")[0]
	m4 := enqueue(t, s, scopeA, "a", "s1", "m4")[0]
	run, rm := createRun(t, s, scopeA, "a", "s1", "the run")
	m5 := enqueue(t, s, scopeA, "a", "s1", "m5")[0]
	enqueue(t, s, scopeA, "other", "s1", "not a's")
	enqueue(t, s, scopeB, "a", "s1", "not this scope")

	// The oldest message's session, up to the next run message: m1, m2, m4.
	id := newID("run")
	c, err := s.ClaimNextRun(ctx, scopeA, "a", id)
	must(t, err)
	if c.Resumed || c.Checkpoint != nil {
		t.Fatalf("new claim is Resumed=%v with checkpoint %+v", c.Resumed, c.Checkpoint)
	}
	wantEqual(t, "batch", seqs(c.Messages), []int64{m1.Seq, m2.Seq, m4.Seq})
	r := c.Run
	if r.ID != id || r.Scope != scopeA || r.AgentID != "a" || r.SessionKey != "s1" || r.Status != store.RunRunning ||
		r.Input != "m1\n\nm2\n\nm4" || r.EndedAt != nil || r.CancelRequested {
		t.Fatalf("claimed run = %+v", r)
	}
	checkTime(t, "CreatedAt", r.CreatedAt)
	checkTimePtr(t, "StartedAt", r.StartedAt)
	for _, m := range c.Messages {
		if m.RunID != id || m.Status != store.MessageUnread || m.Scope != scopeA {
			t.Fatalf("claimed message = %+v", m)
		}
	}
	stored, err := s.GetRun(ctx, scopeA, id)
	must(t, err)
	wantEqual(t, "stored run", stored, r)
	listed, _, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	wantEqual(t, "claimed messages as listed", []store.Message{listed[0], listed[1], listed[3]}, c.Messages)

	// Claimed again before it finishes: the same run, resumed.
	again := claim(t, s, scopeA, "a")
	if !again.Resumed || again.Checkpoint != nil {
		t.Fatalf("second claim Resumed=%v checkpoint %+v", again.Resumed, again.Checkpoint)
	}
	wantEqual(t, "resumed run", again.Run, r)
	wantEqual(t, "resumed messages", again.Messages, c.Messages)
	finish(t, s, scopeA, id, "done")

	// Then m3 alone: the only message of session s2.
	c = claim(t, s, scopeA, "a")
	wantEqual(t, "second batch", seqs(c.Messages), []int64{m3.Seq})
	if c.Run.SessionKey != "s2" || c.Run.Input != "m3" {
		t.Fatalf("second run = %+v", c.Run)
	}
	finish(t, s, scopeA, c.Run.ID, "done")

	// The pending run is next, with its own message.
	c = claim(t, s, scopeA, "a")
	if c.Run.ID != run.ID || c.Run.Status != store.RunRunning || c.Resumed || c.Run.Input != "the run" {
		t.Fatalf("third claim = %+v", c.Run)
	}
	checkTimePtr(t, "StartedAt", c.Run.StartedAt)
	wantEqual(t, "run message", c.Messages, []store.Message{rm})
	finish(t, s, scopeA, run.ID, "done")

	c = claim(t, s, scopeA, "a")
	wantEqual(t, "last batch", seqs(c.Messages), []int64{m5.Seq})
	finish(t, s, scopeA, c.Run.ID, "done")
	_, err = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
	wantErr(t, err, store.ErrNoWork)

	unread, _, err := s.ListMessages(ctx, scopeA, "a", store.MessageUnread, store.Page{})
	must(t, err)
	if len(unread) != 0 {
		t.Fatalf("unread after all runs: %+v", unread)
	}
	// Two pending runs in a row are two runs.
	r1, _ := createRun(t, s, scopeA, "a", "s", "one")
	r2, _ := createRun(t, s, scopeA, "a", "s", "two")
	if c := claim(t, s, scopeA, "a"); c.Run.ID != r1.ID || len(c.Messages) != 1 {
		t.Fatalf("claim = %+v, want %s alone", c, r1.ID)
	}
	finish(t, s, scopeA, r1.ID, "ok")
	if c := claim(t, s, scopeA, "a"); c.Run.ID != r2.ID || len(c.Messages) != 1 {
		t.Fatalf("claim = %+v, want %s alone", c, r2.ID)
	}
}

func testClaimResume(t *testing.T, s store.Store) {
	ctx := t.Context()
	msgs := enqueue(t, s, scopeA, "a", "s", "x", "y")
	c := claim(t, s, scopeA, "a")
	// Messages that arrive while it runs are not added to it.
	late := enqueue(t, s, scopeA, "a", "s", "late")
	state := []byte(`{"history":["x","y"],"n":1.5}`)
	_, err := s.SaveStep(ctx, scopeA, c.Run.ID, &store.Checkpoint{Step: 4, State: state}, nil)
	must(t, err)
	r := claim(t, s, scopeA, "a")
	if !r.Resumed || r.Run.ID != c.Run.ID || r.Run.Steps != 4 {
		t.Fatalf("resumed claim = %+v", r.Run)
	}
	wantEqual(t, "resumed messages", seqs(r.Messages), seqs(msgs))
	if r.Checkpoint == nil || r.Checkpoint.RunID != c.Run.ID || r.Checkpoint.Step != 4 || string(r.Checkpoint.State) != string(state) {
		t.Fatalf("checkpoint = %+v", r.Checkpoint)
	}
	checkTime(t, "checkpoint UpdatedAt", r.Checkpoint.UpdatedAt)
	finish(t, s, scopeA, c.Run.ID, "ok")
	n := claim(t, s, scopeA, "a")
	if n.Resumed || n.Checkpoint != nil || len(n.Messages) != 1 || n.Messages[0].Seq != late[0].Seq {
		t.Fatalf("claim after finish = %+v", n)
	}
}

func testClaimRunIDConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRun(t, s, scopeA, "b", "s", "x")
	existing, _, err := s.ListRuns(ctx, scopeA, store.RunFilter{}, store.Page{})
	must(t, err)
	msgs := enqueue(t, s, scopeA, "a", "s", "hello")
	_, err = s.ClaimNextRun(ctx, scopeA, "a", existing[0].ID)
	wantErr(t, err, store.ErrConflict)
	// Nothing was claimed: a fresh id takes the message.
	c := claim(t, s, scopeA, "a")
	if c.Resumed || len(c.Messages) != 1 || c.Messages[0].Seq != msgs[0].Seq {
		t.Fatalf("claim after a conflict = %+v", c)
	}
	if _, err := s.ClaimNextRun(ctx, scopeA, "a", ""); err == nil {
		t.Fatal("ClaimNextRun with an empty run id succeeded")
	}
}

// testClaimSimultaneous starts two claims for one agent at the same moment:
// they must be serialised, so one creates the run and the other resumes it.
func testClaimSimultaneous(t *testing.T, s store.Store) {
	ctx := t.Context()
	for round := range 5 {
		msgs := enqueue(t, s, scopeA, "a", "s", "1", "2", "3", "4")
		var wg sync.WaitGroup
		claims := make([]store.Claim, 2)
		errs := make([]error, 2)
		start := make(chan struct{})
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				claims[i], errs[i] = s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
			}()
		}
		close(start)
		wg.Wait()
		must(t, errors.Join(errs...))
		if claims[0].Run.ID != claims[1].Run.ID || claims[0].Resumed == claims[1].Resumed {
			t.Fatalf("round %d: claims got runs %s (resumed %v) and %s (resumed %v); want one run, resumed once",
				round, claims[0].Run.ID, claims[0].Resumed, claims[1].Run.ID, claims[1].Resumed)
		}
		for _, c := range claims {
			wantEqual(t, "claimed messages", seqs(c.Messages), seqs(msgs))
		}
		finish(t, s, scopeA, claims[0].Run.ID, "ok")
	}
}

// testClaimConcurrent runs claimers for one agent while messages and runs
// arrive: no message may end up in two runs, and every one is claimed.
func testClaimConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const claimers, batches = 3, 30
	var (
		mu        sync.Mutex
		runOf     = map[int64]string{}   // message seq -> the run it was claimed in
		runMsgs   = map[string][]int64{} // run -> its messages, as first claimed
		sent      = map[int64]bool{}
		failures  []string
		enqueuing = make(chan struct{})
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(enqueuing)
		for i := range batches {
			if i%5 == 4 {
				_, m, err := s.CreateRun(ctx, store.NewRun{Scope: scopeA, RunID: newID("run"), MessageID: newID("msg"),
					AgentID: "a", SessionKey: "s0", Input: "run"})
				if err != nil {
					fail("CreateRun: %v", err)
					return
				}
				mu.Lock()
				sent[m.Seq] = true
				mu.Unlock()
				continue
			}
			var batch []store.NewMessage
			for j := range 1 + i%3 {
				batch = append(batch, store.NewMessage{Scope: scopeA, ID: newID("msg"), AgentID: "a",
					SessionKey: fmt.Sprintf("s%d", (i+j)%2), Content: "m"})
			}
			msgs, err := s.EnqueueMessages(ctx, batch)
			if err != nil {
				fail("EnqueueMessages: %v", err)
				return
			}
			mu.Lock()
			for _, m := range msgs {
				sent[m.Seq] = true
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := s.ClaimNextRun(ctx, scopeA, "a", newID("run"))
				if errors.Is(err, store.ErrNoWork) {
					select {
					case <-enqueuing:
						return
					default:
						time.Sleep(time.Millisecond)
						continue
					}
				}
				if err != nil {
					fail("ClaimNextRun: %v", err)
					return
				}
				mu.Lock()
				got := seqs(c.Messages)
				if first, ok := runMsgs[c.Run.ID]; ok {
					if fmt.Sprint(first) != fmt.Sprint(got) {
						failures = append(failures, fmt.Sprintf("run %s claimed with %v, then with %v", c.Run.ID, first, got))
					}
				} else {
					runMsgs[c.Run.ID] = got
				}
				for _, seq := range got {
					if other, ok := runOf[seq]; ok && other != c.Run.ID {
						failures = append(failures, fmt.Sprintf("message %d in runs %s and %s", seq, other, c.Run.ID))
					}
					runOf[seq] = c.Run.ID
				}
				mu.Unlock()
				_, err = s.FinishRun(ctx, scopeA, c.Run.ID, store.RunResult{Status: store.RunCompleted}, nil)
				if err != nil && !errors.Is(err, store.ErrConflict) { // another claimer resumed and finished it
					fail("FinishRun: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	for seq := range sent {
		if _, ok := runOf[seq]; !ok {
			t.Errorf("message %d was never claimed", seq)
		}
	}
	if len(runOf) != len(sent) {
		t.Errorf("claimed %d messages, sent %d", len(runOf), len(sent))
	}
	unread, total, err := s.ListMessages(ctx, scopeA, "a", store.MessageUnread, store.Page{})
	must(t, err)
	if total != 0 {
		t.Errorf("%d messages left unread: %v", total, seqs(unread))
	}
	if len(runMsgs) < 2 {
		t.Errorf("only %d runs: the test did not exercise batching", len(runMsgs))
	}
}
