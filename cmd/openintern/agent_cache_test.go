package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// TestAgentChangeReachesActiveAgent: an active agent keeps its row between
// turns; a PATCH must still reach its next turn, and a DELETE must stop it.
func TestAgentChangeReachesActiveAgent(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		reply := llmtest.Reply{Text: "prompt was: " + strings.SplitN(req.Messages[0].Content, "\n", 2)[0]}
		if req.LastUserMessage() == "slow" {
			reply.Delay = 500 * time.Millisecond
		}
		return reply
	})
	d := startDaemon(t, newConfig(t, "postgres"), srv.Provider())
	c := d.client("org-cache", "u1")
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "pat", "name": "Pat", "system_prompt": "You are version one."}, nil)

	first := c.waitRun(c.createRun("pat", "s", "hello"), 20*time.Second)
	if first.Output != "prompt was: You are version one." {
		t.Fatalf("first turn: %q", first.Output)
	}
	second := c.waitRun(c.createRun("pat", "s", "again"), 20*time.Second)
	if second.Output != "prompt was: You are version one." {
		t.Fatalf("second turn: %q", second.Output)
	}
	c.must(http.StatusOK, "PATCH", "/api/agents/pat", map[string]any{"system_prompt": "You are version two."}, nil)
	third := c.waitRun(c.createRun("pat", "s", "and now?"), 20*time.Second)
	if third.Output != "prompt was: You are version two." {
		t.Fatalf("turn after PATCH used an old row: %q", third.Output)
	}

	// A run queued behind a busy turn when the agent is deleted fails
	// instead of running on the cached row.
	busy := c.createRun("pat", "s", "slow")
	queued := c.createRun("pat", "s", "queued")
	waitFor(t, 20*time.Second, "the slow turn to be in flight", func() bool {
		var r store.Run
		c.must(http.StatusOK, "GET", "/api/runs/"+busy, nil, &r)
		return r.Status == store.RunRunning
	})
	c.must(http.StatusNoContent, "DELETE", "/api/agents/pat", nil, nil)
	c.waitRun(busy, 20*time.Second)
	run := c.waitRun(queued, 20*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || run.Error.Code != "agent_not_found" {
		t.Fatalf("queued run of a deleted agent: %+v", run)
	}
}
