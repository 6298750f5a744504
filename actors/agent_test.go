package actors

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// An agent whose turn (or wait for a slot) outlasts the idle timeout is
// passivated once it is idle: proto.actor disarms a receive timeout when it
// fires, so the actor must arm it again.
func TestAgentsPassivateAfterLongTurnsAndSlotWaits(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: 300 * time.Millisecond, MaxRunning: 1})
	h.llm.SetDefault(func(llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "done", Delay: time.Second}
	})
	h.start()
	h.createAgent("slow")
	h.createAgent("queued")
	// "queued" waits about a second for the one slot, then runs a second.
	runs := []string{h.createRun("slow", "work"), h.createRun("queued", "work")}
	for _, id := range runs {
		if run := h.waitRun(id, 20*time.Second); run.Status != store.RunCompleted {
			t.Fatalf("run = %+v", run)
		}
	}
	waitFor(t, 10*time.Second, "both agents to be passivated", func() bool {
		return h.stats().ActiveAgents == 0
	})
}

// The supervisor stops an agent that says it is idle only when it has seen
// every wake sent to it: a wake racing the idle notice keeps it active.
func TestPassivationHandshakeKeepsAgentWokenDuringIdleNotice(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Hour})
	probes := make(chan *probe, 4)
	h.rt = h.newRuntime()
	h.rt.newAgent = func(key agentKey) actor.Actor {
		p := &probe{key: key, got: make(chan any, 16)}
		probes <- p
		return p
	}
	if err := h.rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.rt.Wake(testScope, "a1")
	p := <-probes
	p.expect(t, "*actors.agentWake")

	h.rt.Wake(testScope, "a1")         // in flight when the agent says it is idle
	p.sendIdle(t, h.rt.system.Root, 1) // it has seen only the first wake
	if st := h.stats(); st.ActiveAgents != 1 {
		t.Fatalf("after a stale idle notice: active = %d, want 1", st.ActiveAgents)
	}
	p.expect(t, "*actors.agentWake")

	p.sendIdle(t, h.rt.system.Root, 2) // now it has seen both
	p.expect(t, "*actor.Stopping")
	if st := h.stats(); st.ActiveAgents != 0 {
		t.Fatalf("after an up-to-date idle notice: active = %d, want 0", st.ActiveAgents)
	}
	// The next wake activates it again.
	h.rt.Wake(testScope, "a1")
	p2 := <-probes
	p2.expect(t, "*actors.agentWake")
}

// With the slots taken, agents get one in the order they asked for it.
func TestSlotQueueIsFIFO(t *testing.T) {
	h := newHarness(t, Config{MaxRunning: 2, IdleTimeout: time.Hour})
	var mu sync.Mutex
	release := map[string]chan struct{}{}
	arrived := make(chan string, 16)
	// Calls still held when the test ends (it failed) return, so the server can close.
	ended := make(chan struct{})
	t.Cleanup(func() { close(ended) })
	h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		name := strings.TrimPrefix(req.LastUserMessage(), "work for ")
		mu.Lock()
		ch := release[name]
		mu.Unlock()
		arrived <- name
		select {
		case <-ch:
		case <-ended:
		}
		return llmtest.Reply{Text: "ok"}
	})
	h.start()
	names := []string{"a", "b", "c", "d", "e", "f"}
	runs := map[string]string{}
	for _, n := range names {
		h.createAgent(n)
		mu.Lock()
		release[n] = make(chan struct{})
		mu.Unlock()
	}
	next := func() string {
		t.Helper()
		select {
		case n := <-arrived:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no LLM call arrived")
			return ""
		}
	}
	runs["a"] = h.createRun("a", "work for a")
	runs["b"] = h.createRun("b", "work for b")
	got := []string{next(), next()}
	if !(got[0] == "a" && got[1] == "b" || got[0] == "b" && got[1] == "a") {
		t.Fatalf("first calls = %v, want a and b", got)
	}
	// Queue the rest one at a time, so the order they ask in is known.
	for i, n := range names[2:] {
		runs[n] = h.createRun(n, "work for "+n)
		waitFor(t, 10*time.Second, n+" to queue", func() bool { return h.stats().WaitingAgents == i+1 })
	}
	// Each slot freed goes to the head of the queue.
	for i, n := range names[:4] {
		close(release[n])
		if got := next(); got != names[i+2] {
			t.Fatalf("after %s finished, %s got the slot, want %s", n, got, names[i+2])
		}
	}
	close(release["e"])
	close(release["f"])
	for _, n := range names {
		if run := h.waitRun(runs[n], 10*time.Second); run.Status != store.RunCompleted {
			t.Fatalf("run of %s = %+v", n, run)
		}
	}
}

// Runs failing on the LLM take the agent to error with a backoff that doubles
// up to the cap, and a run that succeeds resets it.
func TestLLMFailuresBackOffExponentiallyAndResetOnSuccess(t *testing.T) {
	h := newHarness(t, Config{ErrorBackoff: 200 * time.Millisecond, ErrorBackoffMax: 400 * time.Millisecond, IdleTimeout: time.Hour})
	h.llm.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if strings.HasPrefix(req.LastUserMessage(), "fail") {
			return llmtest.Reply{Status: http.StatusServiceUnavailable, ErrorMessage: "overloaded"}
		}
		return llmtest.Reply{Text: "ok"}
	})
	h.createAgent("a1")
	// Queued before the agent starts, so they run back to back.
	var runs []string
	for _, in := range []string{"fail 1", "fail 2", "fail 3", "succeed", "fail 4"} {
		runs = append(runs, h.createRun("a1", in))
	}
	h.start()
	h.rt.Wake(testScope, "a1")
	want := []string{store.RunFailed, store.RunFailed, store.RunFailed, store.RunCompleted, store.RunFailed}
	for i, id := range runs {
		if run := h.waitRun(id, 20*time.Second); run.Status != want[i] {
			t.Fatalf("run %d = %+v, want %s", i, run, want[i])
		}
	}
	var errs []stateChange
	var changes []stateChange
	waitFor(t, 10*time.Second, "four error transitions", func() bool {
		changes = h.stateChanges("a1")
		errs = errs[:0]
		for _, c := range changes {
			if c.To == store.AgentError {
				errs = append(errs, c)
			}
		}
		return len(errs) == 4
	})
	var retries []int64
	for _, c := range errs {
		retries = append(retries, c.RetryInMS)
		if !strings.Contains(c.Reason, "llm_unavailable") {
			t.Errorf("error reason = %q, want the LLM failure", c.Reason)
		}
	}
	if got, want := retries, []int64{200, 400, 400, 200}; !equalInts(got, want) {
		t.Fatalf("backoffs = %v, want %v (doubling, capped, reset after the success)", got, want)
	}
	// The agent really waited out each backoff before its next transition.
	for i, c := range changes[:len(changes)-1] {
		if c.To != store.AgentError {
			continue
		}
		if gap := changes[i+1].TS.Sub(c.TS); gap < time.Duration(c.RetryInMS)*time.Millisecond {
			t.Errorf("left error after %s, before its backoff of %dms", gap, c.RetryInMS)
		}
	}
}

// A deleted agent's actor passes through terminated, as an event, and stops.
func TestDeletedAgentTerminates(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Hour})
	h.start()
	h.createAgent("gone")
	if run := h.waitRun(h.createRun("gone", "hello"), 10*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	if st := h.stats(); st.ActiveAgents != 1 {
		t.Fatalf("active = %d, want 1", st.ActiveAgents)
	}
	// Its worker looks for more mail after a run: let it end first, or it
	// takes the mail below before the delete.
	waitFor(t, 10*time.Second, "the worker to end", func() bool { return h.rt.workers.count() == 0 })
	// Mail it has not looked at yet: the deleted agent fails it before it ends.
	rt := h.rt
	h.rt = nil
	left := h.createRun("gone", "unseen")
	h.rt = rt
	if err := h.store.DeleteAgent(context.Background(), testScope, "gone", false); err != nil {
		t.Fatal(err)
	}
	h.rt.AgentChanged(testScope, "gone")
	waitFor(t, 10*time.Second, "the terminated transition", func() bool {
		ch := h.stateChanges("gone")
		return len(ch) > 0 && ch[len(ch)-1].To == store.AgentTerminated
	})
	if run := h.getRun(left); run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "agent_not_found" {
		t.Fatalf("run left to a deleted agent = %+v", run)
	}
	waitFor(t, 10*time.Second, "the actor to stop", func() bool { return h.stats().ActiveAgents == 0 })
	// An update that is not a delete does not terminate.
	h.createAgent("kept")
	h.rt.Wake(testScope, "kept")
	waitFor(t, 10*time.Second, "kept to be active", func() bool { return h.stats().ActiveAgents == 1 })
	h.rt.AgentChanged(testScope, "kept")
	if run := h.waitRun(h.createRun("kept", "still here"), 10*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run = %+v", run)
	}
	waitFor(t, 10*time.Second, "the check to end", func() bool { return h.rt.workers.count() == 0 })
	for _, c := range h.stateChanges("kept") {
		if c.To == store.AgentTerminated {
			t.Fatalf("an updated agent terminated: %+v", c)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// probe stands in for an agent's actor and reports what it receives.
type probe struct {
	key  agentKey
	self *actor.PID
	got  chan any
}

// probeIdle makes the probe send the supervisor an idle notice.
type probeIdle struct{ wakesSeen uint64 }

func (p *probe) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.self = ctx.Self()
	case *probeIdle:
		ctx.Request(ctx.Parent(), &idleNotice{key: p.key, wakesSeen: m.wakesSeen})
		ctx.Respond(true)
		return
	}
	p.got <- fmt.Sprintf("%T", ctx.Message())
}

// expect waits for the next message other than Started and checks its type.
func (p *probe) expect(t *testing.T, typ string) {
	t.Helper()
	for {
		select {
		case got := <-p.got:
			if got == "*actor.Started" {
				continue
			}
			if got != typ {
				t.Fatalf("probe got %s, want %s", got, typ)
			}
			return
		case <-time.After(10 * time.Second):
			t.Fatalf("probe got nothing, want %s", typ)
		}
	}
}

// sendIdle has the probe send an idle notice; it returns once it is sent.
func (p *probe) sendIdle(t *testing.T, root *actor.RootContext, wakesSeen uint64) {
	t.Helper()
	if _, err := root.RequestFuture(p.self, &probeIdle{wakesSeen}, 5*time.Second).Result(); err != nil {
		t.Fatalf("probe: %v", err)
	}
}
