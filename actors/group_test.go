package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// gateBoard is a blackboard whose first post blocks until released, like a
// post whose embedding call hangs on a remote embedder.
type gateBoard struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once

	mu    sync.Mutex
	posts []BoardEntry
}

func (b *gateBoard) Post(ctx context.Context, scope store.Scope, groupID string, e BoardEntry) error {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.entered)
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.posts = append(b.posts, e)
	return nil
}

func (b *gateBoard) Digest(context.Context, store.Scope, string, int) (string, error) { return "", nil }

func (h *harness) createTeam(groupID string) {
	h.t.Helper()
	ctx := context.Background()
	for _, r := range []store.Role{{Scope: testScope, ID: "lead", Name: "Lead", IsLead: true}, {Scope: testScope, ID: "worker", Name: "Worker"}} {
		if _, err := h.store.CreateRole(ctx, r); err != nil {
			h.t.Fatal(err)
		}
	}
	if _, err := h.store.CreateGroup(ctx, store.Group{Scope: testScope, ID: groupID, Name: groupID}); err != nil {
		h.t.Fatal(err)
	}
	for agent, role := range map[string]string{"boss": "lead", "hand": "worker"} {
		h.createAgent(agent)
		if _, err := h.store.AddMember(ctx, store.GroupMember{Scope: testScope, GroupID: groupID, AgentID: agent, RoleID: role}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// A group run whose blackboard post hangs does not hold up the group's other
// runs: the group actor does its I/O off its message loop.
func TestGroupActorAdvancesOtherRunsWhileOneBlocks(t *testing.T) {
	board := &gateBoard{entered: make(chan struct{}), release: make(chan struct{})}
	// The store timeout, which also bounds the hung post, outlasts the test.
	h := newHarness(t, Config{IdleTimeout: time.Hour, Blackboard: board, StoreTimeout: time.Minute})
	h.createTeam("team")
	h.rt = h.newRuntime()
	h.rt.groupRecheck = 200 * time.Millisecond
	ctx := context.Background()
	if err := h.rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := h.rt.StartGroupRun(ctx, testScope, GroupRunRequest{GroupID: "team", Input: "first task"})
	if err != nil {
		t.Fatal(err)
	}

	select {
	case <-board.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the first run's proposal was never posted")
	}
	second, err := h.rt.StartGroupRun(ctx, testScope, GroupRunRequest{GroupID: "team", Input: "second task"})
	if err != nil {
		t.Fatal(err)
	}
	if run := h.waitRun(second.ID, 15*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("second group run = %+v", run)
	}
	if run := h.getRun(first.ID); store.RunFinished(run.Status) {
		t.Fatalf("first group run ended while its post was blocked: %+v", run)
	}

	close(board.release)
	if run := h.waitRun(first.ID, 20*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("first group run = %+v", run)
	}
}

// A group actor whose re-check fired while its run was still going (a slow
// member) is passivated once the run has ended.
func TestGroupActorPassivatesAfterSlowRun(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Hour})
	h.llm.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "done", Delay: time.Second} })
	h.createTeam("team")
	h.rt = h.newRuntime()
	h.rt.groupRecheck = 200 * time.Millisecond
	ctx := context.Background()
	if err := h.rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	run, err := h.rt.StartGroupRun(ctx, testScope, GroupRunRequest{GroupID: "team", Input: "slow task"})
	if err != nil {
		t.Fatal(err)
	}
	if run := h.waitRun(run.ID, 20*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("group run = %+v", run)
	}
	waitFor(t, 10*time.Second, "the group actor to be passivated", func() bool { return h.stats().ActiveGroups == 0 })
}
