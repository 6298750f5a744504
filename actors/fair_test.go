package actors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/openintern/openintern/store"
)

// slotProbe stands in for an agent's actor: it asks for and gives back run
// slots when told to, and reports each slot it is granted.
type slotProbe struct {
	key     agentKey
	self    *actor.PID
	wakes   uint64
	granted chan<- string // agent ids, in the order slots were granted
	started chan<- *slotProbe
}

// Commands a test sends a slotProbe; each is answered once the probe has
// sent the supervisor what it asks, so the supervisor sees them in the order
// the test gave them.
type (
	probeAcquire struct{}
	probeRelease struct{}
	probeStop    struct{} // say it is idle, so the supervisor stops it
)

func (p *slotProbe) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		p.self = ctx.Self()
		p.started <- p
	case *agentWake:
		p.wakes++
	case *slotGranted:
		p.granted <- p.key.agentID
	case *probeAcquire:
		ctx.Request(ctx.Parent(), &acquireSlot{})
		ctx.Respond(true)
	case *probeRelease:
		ctx.Request(ctx.Parent(), &releaseSlot{})
		ctx.Respond(true)
	case *probeSync:
		ctx.Respond(true)
	case *probeStop:
		ctx.Request(ctx.Parent(), &idleNotice{key: p.key, wakesSeen: p.wakes})
		ctx.Respond(true)
	}
}

// slotBench drives the supervisor's slot scheduling with probes in place of
// agents, over a real runtime and store.
type slotBench struct {
	t       *testing.T
	h       *harness
	probes  map[string]*slotProbe
	granted chan string
	started chan *slotProbe
}

func newSlotBench(t *testing.T, cfg Config) *slotBench {
	cfg.IdleTimeout = time.Hour
	b := &slotBench{t: t, h: newHarness(t, cfg), probes: map[string]*slotProbe{}, granted: make(chan string, 64), started: make(chan *slotProbe, 64)}
	b.h.rt = b.h.newRuntime()
	b.h.rt.newAgent = func(key agentKey) actor.Actor {
		return &slotProbe{key: key, granted: b.granted, started: b.started}
	}
	if err := b.h.rt.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

// scopeOf names a tenant's scope by one letter; agent ids start with it.
func scopeOf(agentID string) store.Scope {
	return store.Scope{OrgID: "org-" + agentID[:1], UserID: "u", ProjectID: "default"}
}

// activate wakes the agent so the supervisor spawns its probe.
func (b *slotBench) activate(id string) *slotProbe {
	b.t.Helper()
	b.h.rt.Wake(scopeOf(id), id)
	select {
	case p := <-b.started:
		if p.key.agentID != id {
			b.t.Fatalf("activated %s, want %s", p.key.agentID, id)
		}
		b.probes[id] = p
		return p
	case <-time.After(10 * time.Second):
		b.t.Fatalf("%s was not activated", id)
		return nil
	}
}

func (b *slotBench) tell(id string, cmd any) {
	b.t.Helper()
	p := b.probes[id]
	if p == nil {
		p = b.activate(id)
	}
	if _, err := b.h.rt.system.Root.RequestFuture(p.self, cmd, 10*time.Second).Result(); err != nil {
		b.t.Fatalf("%s: %T: %v", id, cmd, err)
	}
}

func (b *slotBench) acquire(ids ...string) {
	b.t.Helper()
	for _, id := range ids {
		b.tell(id, &probeAcquire{})
	}
}

func (b *slotBench) release(id string) {
	b.t.Helper()
	b.tell(id, &probeRelease{})
}

// nextGrant waits for the next slot granted.
func (b *slotBench) nextGrant() string {
	b.t.Helper()
	select {
	case id := <-b.granted:
		return id
	case <-time.After(10 * time.Second):
		b.t.Fatal("no slot was granted")
		return ""
	}
}

// nextGrants waits for the next n slots granted, sorted: slots granted at
// once reach their agents' actors in any order, since each runs on its own.
func (b *slotBench) nextGrants(n int) []string {
	b.t.Helper()
	got := make([]string, 0, n)
	for range n {
		got = append(got, b.nextGrant())
	}
	slices.Sort(got)
	return got
}

// noGrant checks that no slot has been granted. The supervisor answers Stats
// after every message sent to it before, and a grant is sent to the probe
// before that answer, so one still on its way would already be queued at the
// probe; the probe's answer to a command then orders it into b.granted.
func (b *slotBench) noGrant(ids ...string) {
	b.t.Helper()
	b.h.stats()
	for _, id := range ids {
		b.tell(id, &probeSync{})
	}
	select {
	case id := <-b.granted:
		b.t.Fatalf("%s was granted a slot, want none", id)
	default:
	}
}

type probeSync struct{}

func (b *slotBench) wantStats(running, waiting int) {
	b.t.Helper()
	if st := b.h.stats(); st.RunningAgents != running || st.WaitingAgents != waiting {
		b.t.Fatalf("stats: running %d, waiting %d; want %d, %d", st.RunningAgents, st.WaitingAgents, running, waiting)
	}
}

// A freed slot goes to the scopes with waiters in turn, each scope's agents
// in the order they asked; a flooding scope whose agents ask again after
// each run gets one slot per round, not all of them.
func TestSlotsAreSharedRoundRobinBetweenScopes(t *testing.T) {
	b := newSlotBench(t, Config{MaxRunning: 1})
	b.acquire("a1")
	if got := b.nextGrant(); got != "a1" {
		t.Fatalf("first grant %s, want a1", got)
	}
	b.acquire("a2", "a3", "a4", "b1", "b2", "c1")
	b.wantStats(1, 6)
	if st := b.h.stats(); st.WaitingScopes != 3 {
		t.Fatalf("waiting scopes %d, want 3", st.WaitingScopes)
	}

	holder := "a1"
	for _, want := range []string{"a2", "b1", "c1", "a3", "b2", "a4", "a1", "a2", "a3", "a4"} {
		b.release(holder)
		if holder[0] == 'a' {
			b.acquire(holder) // tenant a always has more work
		}
		got := b.nextGrant()
		if got != want {
			t.Fatalf("after %s released, %s got the slot, want %s", holder, got, want)
		}
		holder = got
	}
	b.wantStats(1, 3)
}

// With one scope, slots go out first come first served.
func TestSlotsWithinAScopeAreFIFO(t *testing.T) {
	b := newSlotBench(t, Config{MaxRunning: 2})
	b.acquire("a1", "a2", "a3", "a4", "a5")
	if got := b.nextGrants(2); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("grants %v, want a1 and a2", got)
	}
	b.noGrant("a3", "a4", "a5")
	b.wantStats(2, 3)
	for i, want := range []string{"a3", "a4", "a5"} {
		b.release([]string{"a1", "a2", "a3"}[i])
		if got := b.nextGrant(); got != want {
			t.Fatalf("grant %s, want %s", got, want)
		}
	}
}

// A scope at its cap waits with slots free, while the other scopes take
// them; its agents go on as soon as one of its own ends.
func TestPerScopeCapKeepsSlotsForOtherScopes(t *testing.T) {
	b := newSlotBench(t, Config{MaxRunning: 3, MaxRunningPerScope: 2})
	b.acquire("a1", "a2", "a3")
	if got := b.nextGrants(2); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("grants %v, want a1 and a2", got)
	}
	b.noGrant("a3")
	b.wantStats(2, 1) // a slot free, but not for a

	b.acquire("b1", "b2")
	if got := b.nextGrant(); got != "b1" {
		t.Fatalf("grant %s, want b1", got)
	}
	b.wantStats(3, 2)
	// a is first in turn but at its cap: b's next agent gets b1's slot.
	b.release("b1")
	if got := b.nextGrant(); got != "b2" {
		t.Fatalf("after b1 released, %s got the slot, want b2", got)
	}
	b.release("a1")
	if got := b.nextGrant(); got != "a3" {
		t.Fatalf("after a1 released, %s got the slot, want a3", got)
	}
	b.wantStats(3, 0)
	// Releases that leave a under its cap with nobody waiting change nothing.
	b.release("a2")
	b.release("a3")
	b.noGrant("a2", "a3")
	b.wantStats(1, 0)
}

// An agent stopped while it waits leaves its scope's queue (and the scope
// leaves the turn when it was its last waiter); the slot goes to the next.
func TestStoppedWaiterLeavesItsScopeQueue(t *testing.T) {
	b := newSlotBench(t, Config{MaxRunning: 1})
	b.acquire("a1")
	if got := b.nextGrant(); got != "a1" {
		t.Fatalf("grant %s, want a1", got)
	}
	b.acquire("b1", "c1", "b2")
	b.wantStats(1, 3)
	b.tell("b1", &probeStop{})
	b.tell("c1", &probeStop{})
	waitFor(t, 10*time.Second, "the stopped waiters to leave the queue", func() bool {
		return b.h.stats().WaitingAgents == 1
	})
	if st := b.h.stats(); st.ActiveAgents != 2 || st.WaitingScopes != 1 {
		t.Fatalf("active agents %d, waiting scopes %d; want a1 and b2, and b", st.ActiveAgents, st.WaitingScopes)
	}
	b.release("a1")
	if got := b.nextGrant(); got != "b2" {
		t.Fatalf("after a1 released, %s got the slot, want b2", got)
	}
	b.wantStats(1, 0)
	// Nothing stale is left in turn: the next waiter is served next.
	b.acquire("a1")
	b.release("b2")
	if got := b.nextGrant(); got != "a1" {
		t.Fatalf("after b2 released, %s got the slot, want a1", got)
	}
	b.wantStats(1, 0)
}
