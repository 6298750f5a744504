package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// setupTeam creates, through the API alone, three agents, the roles
// researcher, critic and lead, and the group "team" with them.
func setupTeam(t *testing.T, c *client, roles map[string]map[string]any) {
	t.Helper()
	for _, a := range []string{"alice", "bob", "carol"} {
		c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": a, "name": strings.ToUpper(a[:1]) + a[1:]}, nil)
	}
	defaults := map[string]map[string]any{
		"researcher": {"role_id": "researcher", "name": "Researcher", "description": "Finds the facts.", "system_prompt": "You research."},
		"critic":     {"role_id": "critic", "name": "Critic", "description": "Finds the flaws.", "system_prompt": "You criticise."},
		"lead":       {"role_id": "lead", "name": "Lead", "description": "Decides.", "system_prompt": "You lead.", "is_lead": true},
	}
	for id, r := range defaults {
		for k, v := range roles[id] {
			r[k] = v
		}
		c.must(http.StatusCreated, "POST", "/api/roles", r, nil)
	}
	var g struct {
		GroupID     string              `json:"group_id"`
		MemberCount int                 `json:"member_count"`
		Lead        string              `json:"lead_agent_id"`
		Members     []store.GroupMember `json:"members"`
	}
	c.must(http.StatusCreated, "POST", "/api/groups", map[string]any{
		"group_id": "team", "name": "Team", "description": "研究小组 research group",
		"members": []map[string]string{{"agent_id": "alice", "role_id": "researcher"}, {"agent_id": "bob", "role_id": "critic"}, {"agent_id": "carol", "role_id": "lead"}},
	}, &g)
	if g.GroupID != "team" || g.MemberCount != 3 || g.Lead != "carol" || len(g.Members) != 3 || g.Members[2].RoleName != "Lead" || !g.Members[2].IsLead {
		t.Fatalf("created group: %+v", g)
	}
}

func (c *client) startGroupRun(groupID, input, mode string) string {
	c.t.Helper()
	var out struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
		Mode   string `json:"mode"`
	}
	c.must(http.StatusCreated, "POST", "/api/groups/"+groupID+"/runs", map[string]string{"input": input, "mode": mode}, &out)
	if out.RunID == "" || out.Status != store.RunRunning || (mode != "" && out.Mode != mode) {
		c.t.Fatalf("start group run: %+v", out)
	}
	return out.RunID
}

// messageFlow is the group run's message.* events as "type from->to".
func messageFlow(t *testing.T, evs []store.Event) []string {
	var out []string
	for _, e := range evs {
		if !strings.HasPrefix(e.Type, "message.") {
			continue
		}
		p := payloadOf(t, e)
		s := fmt.Sprintf("%s %v", e.Type, p["from"])
		if to, ok := p["to"]; ok && e.Type == "message.task" {
			s += fmt.Sprintf("->%v", to)
		}
		out = append(out, s)
	}
	return out
}

func TestGroupRunEndToEnd(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), nil) // the offline demo model
			c := d.client("org-team", "u1")
			setupTeam(t, c, nil)

			// The group stream is open before the run starts and sees it live.
			stream := c.openStream("/api/groups/team/stream", "")
			runID := c.startGroupRun("team", "Should we adopt PostgreSQL for the queue?", "serial")
			seen := readSSE(t, stream, func(e sseEvent) bool {
				return e.data != "" && eventOf(t, e).Type == "run.completed" && eventOf(t, e).RunID == runID
			})
			var liveTypes []string
			for _, e := range seen {
				if e.data == "" {
					continue
				}
				ev := eventOf(t, e)
				if ev.GroupID != "team" {
					t.Fatalf("group stream carried an event of group %q: %+v", ev.GroupID, ev)
				}
				if ev.RunID == runID {
					liveTypes = append(liveTypes, ev.Type)
				}
			}
			assertOrder(t, liveTypes, "run.started", "message.task", "message.proposal", "message.task", "message.proposal", "message.task", "blackboard.written", "message.decision", "run.completed")

			run := c.waitRun(runID, 30*time.Second)
			if run.Status != store.RunCompleted || run.GroupID != "team" || run.AgentID != "" || run.Output == "" {
				t.Fatalf("group run: %+v", run)
			}
			evs := c.events(runID)

			// A reconnect with Last-Event-ID resumes right after that event.
			var cursor int64
			for _, e := range evs {
				if e.Type == "message.proposal" {
					cursor = e.ID
					break
				}
			}
			resumed := readSSE(t, c.openStream("/api/groups/team/stream", fmt.Sprint(cursor)), func(e sseEvent) bool {
				return e.data != "" && eventOf(t, e).Type == "run.completed" && eventOf(t, e).RunID == runID
			})
			var resumedTypes []string
			var prev int64
			for _, e := range resumed {
				if e.data == "" || e.id == "" {
					continue
				}
				ev := eventOf(t, e)
				if ev.ID <= cursor || ev.ID <= prev {
					t.Fatalf("resumed stream repeated or reordered event %d after cursor %d", ev.ID, cursor)
				}
				prev = ev.ID
				if ev.RunID == runID {
					resumedTypes = append(resumedTypes, ev.Type)
				}
			}
			if len(resumedTypes) == 0 || resumedTypes[0] != "message.task" {
				t.Fatalf("resumed stream after the first proposal starts with %v, want the next message.task", resumedTypes)
			}
			assertOrder(t, resumedTypes, "message.task", "message.proposal", "message.task", "message.decision", "run.completed")
			flow := messageFlow(t, evs)
			want := []string{
				"message.task carol->alice", "message.proposal alice",
				"message.task carol->bob", "message.proposal bob",
				"message.task carol->carol", "message.decision carol",
			}
			if strings.Join(flow, "|") != strings.Join(want, "|") {
				t.Fatalf("serial flow:\n got %v\nwant %v", flow, want)
			}
			var decision map[string]any
			for _, e := range evs {
				if e.GroupID != "team" {
					t.Fatalf("event without the group id: %+v", e)
				}
				switch e.Type {
				case "message.proposal", "message.decision":
					if p := payloadOf(t, e); p["from"] != e.AgentID {
						t.Fatalf("%s produced by %v carries agent %q", e.Type, p["from"], e.AgentID)
					}
				}
				if e.Type == "message.decision" {
					decision = payloadOf(t, e)
				}
				if e.Type == "message.task" {
					// Serial: bob's task carries alice's work.
					p := payloadOf(t, e)
					if p["to"] == "bob" && !strings.Contains(p["content"].(string), "Researcher (alice)") {
						t.Fatalf("bob's task does not show alice's proposal: %v", p["content"])
					}
				}
			}
			// The offline model recognises team tasks: proposals and a decision that weighs them.
			if !strings.HasPrefix(run.Output, `Decision on "Should we adopt PostgreSQL for the queue?"`) || !strings.Contains(run.Output, "2 proposal(s) from Researcher, Critic") {
				t.Fatalf("offline decision: %q", run.Output)
			}
			if decision["content"] != run.Output {
				t.Fatalf("decision %v is not the run's output %q", decision["content"], run.Output)
			}

			// Member runs are runs of their agents, in the group, with roles.
			var members struct {
				Runs  []store.Run `json:"runs"`
				Total int         `json:"total"`
			}
			c.must(http.StatusOK, "GET", "/api/runs?group_id=team&limit=50", nil, &members)
			if members.Total != 4 { // three member runs and the group run
				t.Fatalf("runs of the group: %d, want 4: %+v", members.Total, members.Runs)
			}
			roles := map[string]string{}
			for _, r := range members.Runs {
				if r.AgentID != "" {
					if r.ParentRunID != runID || r.Status != store.RunCompleted {
						t.Fatalf("member run: %+v", r)
					}
					roles[r.AgentID] = r.RoleID
				}
			}
			if roles["alice"] != "researcher" || roles["bob"] != "critic" || roles["carol"] != "lead" {
				t.Fatalf("member roles: %v", roles)
			}

			// The decision is on the blackboard, authored by the lead.
			var board struct {
				Entries []struct {
					ID     string `json:"memory_id"`
					Kind   string `json:"kind"`
					Author string `json:"author"`
					Text   string `json:"text"`
				} `json:"entries"`
				Total int `json:"total"`
			}
			c.must(http.StatusOK, "GET", "/api/groups/team/blackboard?kind=decision", nil, &board)
			if board.Total != 1 || board.Entries[0].Author != "carol" || board.Entries[0].Text != strings.TrimSpace(run.Output) {
				t.Fatalf("decision on the blackboard: %+v (output %q)", board, run.Output)
			}
			if decision["memory_id"] != board.Entries[0].ID {
				t.Fatalf("decision event names memory %v, blackboard has %s", decision["memory_id"], board.Entries[0].ID)
			}
			c.must(http.StatusOK, "GET", "/api/groups/team/blackboard?kind=proposal", nil, &board)
			if board.Total != 2 {
				t.Fatalf("proposals on the blackboard: %d, want 2", board.Total)
			}

			// ?from=now skips the stored history: a ready event names the id
			// to resume from, then only news arrives.
			latest := c.events(runID)
			nowStream := c.openStream("/api/groups/team/stream?from=now", "")
			c.must(http.StatusCreated, "POST", "/api/groups/team/blackboard", map[string]string{"kind": "todo", "text": "write the migration plan 写迁移计划"}, nil)
			fresh := readSSE(t, nowStream, func(e sseEvent) bool { return e.event == "" && e.data != "" })
			if len(fresh) != 2 || fresh[0].event != "ready" || fresh[0].id == "" {
				t.Fatalf("from=now stream: %+v", fresh)
			}
			if ev := eventOf(t, fresh[1]); ev.Type != "blackboard.written" || ev.ID <= latest[len(latest)-1].ID {
				t.Fatalf("first event after ready: %+v", ev)
			}

			// Parallel: both tasks go out before any proposal comes back.
			runID = c.startGroupRun("team", "Pick a name for the project", "parallel")
			run = c.waitRun(runID, 30*time.Second)
			if run.Status != store.RunCompleted {
				t.Fatalf("parallel run: %+v", run)
			}
			flow = messageFlow(t, c.events(runID))
			if len(flow) != 6 || !strings.HasPrefix(flow[0], "message.task") || !strings.HasPrefix(flow[1], "message.task") ||
				flow[4] != "message.task carol->carol" || flow[5] != "message.decision carol" {
				t.Fatalf("parallel flow: %v", flow)
			}

			// Stats and history.
			var stats struct {
				Stats store.RunStats `json:"stats"`
			}
			c.must(http.StatusOK, "GET", "/api/groups/team/stats", nil, &stats)
			if stats.Stats.Runs != 2 || stats.Stats.Completed != 2 || stats.Stats.SuccessRate != 1 {
				t.Fatalf("group stats: %+v", stats)
			}
			c.must(http.StatusOK, "GET", "/api/roles/researcher/stats", nil, &stats)
			if stats.Stats.Runs != 2 || stats.Stats.Completed != 2 || stats.Stats.Tokens == 0 {
				t.Fatalf("role stats: %+v", stats)
			}
			var history struct {
				Runs  []store.Run `json:"runs"`
				Total int         `json:"total"`
			}
			c.must(http.StatusOK, "GET", "/api/groups/team/runs", nil, &history)
			if history.Total != 2 || history.Runs[0].AgentID != "" {
				t.Fatalf("group runs: %+v", history)
			}
		})
	}
}

// TestGroupRunWithOpenAIModel runs a group on an OpenAI-compatible model
// served locally, and checks each member works in its role: the role's prompt
// reaches the model, and a tool outside the role's list is blocked even when
// the model calls it.
func TestGroupRunWithOpenAIModel(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		sys := req.Messages[0].Content
		last := req.Messages[len(req.Messages)-1]
		switch {
		case last.Role == llm.RoleTool:
			return llmtest.Reply{Text: "critic: could not read the file"}
		case strings.Contains(sys, "with the role Critic"):
			// The critic tries a tool its role does not allow.
			return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"README.md"}`}}}
		case strings.Contains(sys, "with the role Lead"):
			return llmtest.Reply{Text: "DECISION: go with PostgreSQL"}
		default:
			return llmtest.Reply{Text: "proposal: PostgreSQL is fine"}
		}
	})
	cfg := newConfig(t, "postgres")
	d := startDaemon(t, cfg, srv.Provider())
	c := d.client("org-team", "u1")
	setupTeam(t, c, map[string]map[string]any{"critic": {"allowed_tools": []string{}}})

	runID := c.startGroupRun("team", "Which database?", "serial")
	run := c.waitRun(runID, 30*time.Second)
	if run.Status != store.RunCompleted || run.Output != "DECISION: go with PostgreSQL" {
		t.Fatalf("group run: %+v", run)
	}
	// The critic's own run shows the blocked call.
	var runs struct {
		Runs []store.Run `json:"runs"`
	}
	c.must(http.StatusOK, "GET", "/api/runs?agent_id=bob&group_id=team", nil, &runs)
	if len(runs.Runs) != 1 {
		t.Fatalf("bob's runs: %+v", runs)
	}
	blocked := false
	for _, e := range c.events(runs.Runs[0].ID) {
		if e.Type == "tool.blocked" && payloadOf(t, e)["name"] == "read_file" {
			blocked = true
		}
		if e.Type == "tool.result" && payloadOf(t, e)["outcome"] != "blocked" {
			t.Fatalf("the critic's tool ran: %s", e.Payload)
		}
	}
	if !blocked {
		t.Fatal("no tool.blocked event for the critic's read_file")
	}
	// Each member's request carried its role's prompt, and the critic was offered no tools.
	sawRole := map[string]bool{}
	for _, r := range srv.Requests() {
		sys := r.Messages[0].Content
		for _, role := range []string{"Researcher", "Critic", "Lead"} {
			if strings.Contains(sys, "with the role "+role) {
				sawRole[role] = true
				if role == "Critic" && len(r.Tools) != 0 {
					t.Fatalf("the critic was offered tools: %v", r.Tools)
				}
				if role == "Researcher" && len(r.Tools) == 0 {
					t.Fatal("the researcher (inheriting the agent's tools) was offered none")
				}
			}
		}
	}
	if len(sawRole) != 3 {
		t.Fatalf("roles seen by the model: %v", sawRole)
	}
}

func TestTeamValidationAndIsolation(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), nil)
	c := d.client("org-team", "u1")
	setupTeam(t, c, nil)

	expect := func(cl *client, status int, code, method, path string, body any) {
		t.Helper()
		got, raw := cl.req(method, path, body)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if got != status || json.Unmarshal(raw, &e) != nil || e.Error.Code != code || e.Error.Message == "" {
			t.Fatalf("%s %s: %d %s, want %d %s", method, path, got, raw, status, code)
		}
	}
	// A second lead is refused, on add and on a role change.
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "dave", "name": "Dave"}, nil)
	c.must(http.StatusCreated, "POST", "/api/roles", map[string]any{"role_id": "colead", "name": "Co-lead", "is_lead": true}, nil)
	expect(c, http.StatusConflict, "lead_exists", "POST", "/api/groups/team/members", map[string]string{"agent_id": "dave", "role_id": "colead"})
	c.must(http.StatusCreated, "POST", "/api/groups/team/members", map[string]string{"agent_id": "dave", "role_id": "researcher"}, nil)
	expect(c, http.StatusConflict, "lead_exists", "PUT", "/api/groups/team/members/dave", map[string]string{"role_id": "colead"})
	expect(c, http.StatusConflict, "already_member", "POST", "/api/groups/team/members", map[string]string{"agent_id": "dave", "role_id": "critic"})
	expect(c, http.StatusUnprocessableEntity, "unknown_agent", "POST", "/api/groups/team/members", map[string]string{"agent_id": "nobody", "role_id": "critic"})
	expect(c, http.StatusUnprocessableEntity, "unknown_role", "POST", "/api/groups/team/members", map[string]string{"agent_id": "dave", "role_id": "nope"})
	// Deleting what a group uses is refused, or cascades when asked.
	expect(c, http.StatusConflict, "in_use", "DELETE", "/api/roles/researcher", nil)
	expect(c, http.StatusConflict, "in_use", "DELETE", "/api/agents/dave", nil)
	c.must(http.StatusNoContent, "DELETE", "/api/agents/dave?cascade=true", nil, nil)
	var members struct {
		Members []store.GroupMember `json:"members"`
	}
	c.must(http.StatusOK, "GET", "/api/groups/team/members", nil, &members)
	if len(members.Members) != 3 {
		t.Fatalf("members after the cascading delete: %+v", members)
	}
	// A group without a lead cannot run.
	c.must(http.StatusCreated, "POST", "/api/groups", map[string]any{"group_id": "leaderless", "name": "Leaderless",
		"members": []map[string]string{{"agent_id": "alice", "role_id": "critic"}}}, nil)
	expect(c, http.StatusUnprocessableEntity, "no_lead", "POST", "/api/groups/leaderless/runs", map[string]string{"input": "x"})
	expect(c, http.StatusBadRequest, "invalid_mode", "POST", "/api/groups/team/runs", map[string]string{"input": "x", "mode": "random"})
	expect(c, http.StatusBadRequest, "invalid_json", "POST", "/api/groups/team/runs", map[string]string{"input": "x", "mood": "serial"})
	expect(c, http.StatusBadRequest, "invalid_run", "POST", "/api/groups/team/runs", map[string]string{"input": " "})
	expect(c, http.StatusBadRequest, "invalid_kind", "GET", "/api/groups/team/blackboard?kind=gossip", nil)
	expect(c, http.StatusBadRequest, "invalid_request", "POST", "/api/groups/team/blackboard", map[string]string{"kind": "gossip", "text": "x"})

	// Another scope sees none of it: every group route is 404.
	runID := c.startGroupRun("team", "Isolation check", "parallel")
	c.waitRun(runID, 30*time.Second)
	var entries struct {
		Entries []struct {
			MemoryID string `json:"memory_id"`
		} `json:"entries"`
	}
	c.must(http.StatusOK, "GET", "/api/groups/team/blackboard", nil, &entries)
	if len(entries.Entries) == 0 {
		t.Fatal("no blackboard entries after a run")
	}
	for _, other := range []*client{d.client("org-team", "u2"), d.client("org-other", "u1"), {t: t, base: d.URL(), scope: store.Scope{OrgID: "org-team", UserID: "u1", ProjectID: "p"}}} {
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/groups/team"}, {"PUT", "/api/groups/team"}, {"DELETE", "/api/groups/team"},
			{"GET", "/api/groups/team/members"}, {"POST", "/api/groups/team/members"}, {"DELETE", "/api/groups/team/members/alice"},
			{"GET", "/api/groups/team/stats"}, {"GET", "/api/groups/team/runs"}, {"POST", "/api/groups/team/runs"},
			{"POST", "/api/groups/team/messages"}, {"GET", "/api/groups/team/stream"},
			{"GET", "/api/groups/team/blackboard"}, {"POST", "/api/groups/team/blackboard"},
			{"GET", "/api/groups/team/blackboard/" + entries.Entries[0].MemoryID},
			{"GET", "/api/roles/researcher"}, {"GET", "/api/roles/researcher/stats"}, {"DELETE", "/api/roles/lead"},
			{"GET", "/api/runs/" + runID}, {"GET", "/api/runs/" + runID + "/stream"}, {"POST", "/api/runs/" + runID + "/cancel"},
		} {
			body := any(nil)
			if r.method == "POST" || r.method == "PUT" {
				body = map[string]string{"input": "x", "content": "x", "text": "x", "name": "x", "agent_id": "alice", "role_id": "critic"}
			}
			expect(other, http.StatusNotFound, "not_found", r.method, r.path, body)
		}
		var list struct{ Total int }
		other.must(http.StatusOK, "GET", "/api/groups", nil, &list)
		if list.Total != 0 {
			t.Fatalf("scope %+v lists %d groups", other.scope, list.Total)
		}
	}
	// Another group's entry is not found through this group.
	c.must(http.StatusCreated, "POST", "/api/groups", map[string]any{"group_id": "other", "name": "Other"}, nil)
	expect(c, http.StatusNotFound, "not_found", "GET", "/api/groups/other/blackboard/"+entries.Entries[0].MemoryID, nil)
}

// TestGroupMessagesAndSpawn: a user message to the group reaches every
// member; an agent spawns a child that reports back by message; an agent
// sends a message to another agent.
func TestGroupMessagesAndSpawn(t *testing.T) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		user := req.LastUserMessage()
		switch {
		case last.Role == llm.RoleTool:
			return llmtest.Reply{Text: "done"}
		case strings.Contains(user, "please delegate"):
			return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c1", Name: "spawn_agent", Arguments: `{"agent_id":"helper","name":"Helper","task":"count to three"}`}}}
		case strings.Contains(user, "tell bob"):
			return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "c1", Name: "send_message", Arguments: `{"to":"bob","content":"hello from alice"}`}}}
		case strings.Contains(user, "count to three"):
			return llmtest.Reply{Text: "one two three"}
		}
		return llmtest.Reply{Text: "ok: " + user}
	})
	d := startDaemon(t, newConfig(t, "postgres"), srv.Provider())
	c := d.client("org-team", "u1")
	setupTeam(t, c, nil)

	var sent struct {
		Messages []struct {
			MessageID string `json:"message_id"`
			AgentID   string `json:"agent_id"`
		} `json:"messages"`
	}
	c.must(http.StatusAccepted, "POST", "/api/groups/team/messages", map[string]string{"content": "standup in 5"}, &sent)
	if len(sent.Messages) != 3 {
		t.Fatalf("broadcast: %+v", sent)
	}
	c.must(http.StatusAccepted, "POST", "/api/groups/team/messages", map[string]string{"content": "lead only", "to": "lead"}, &sent)
	if len(sent.Messages) != 1 || sent.Messages[0].AgentID != "carol" {
		t.Fatalf("to the lead: %+v", sent)
	}

	// alice spawns a child, which reports back.
	c.createRun("alice", "s", "please delegate")
	waitFor(t, 30*time.Second, "the child's report in alice's inbox", func() bool {
		var msgs struct{ Messages []store.Message }
		c.must(http.StatusOK, "GET", "/api/agents/alice/messages", nil, &msgs)
		for _, m := range msgs.Messages {
			if m.SenderType == store.SenderAgent && m.SenderID == "helper" && strings.Contains(m.Content, "one two three") {
				return true
			}
		}
		return false
	})
	var child store.Agent
	c.must(http.StatusOK, "GET", "/api/agents/helper", nil, &child)
	if child.ParentID != "alice" {
		t.Fatalf("child agent: %+v", child)
	}
	// alice messages bob.
	c.createRun("alice", "s2", "tell bob")
	waitFor(t, 30*time.Second, "alice's message in bob's inbox", func() bool {
		var msgs struct{ Messages []store.Message }
		c.must(http.StatusOK, "GET", "/api/agents/bob/messages", nil, &msgs)
		for _, m := range msgs.Messages {
			if m.SenderID == "alice" && strings.Contains(m.Content, "hello from alice") {
				return true
			}
		}
		return false
	})
}

// TestGroupRunSurvivesKillNine kills the daemon in the middle of a serial
// group run; after a restart the run finishes with every member's task given
// once, answered once, and no message lost.
func TestGroupRunSurvivesKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test; run without -short")
	}
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.NewServer(t)
			srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
				return llmtest.Reply{Text: "answer to: " + strings.SplitN(req.LastUserMessage(), "\n", 2)[0], Delay: 400 * time.Millisecond}
			})
			env := []string{"LLM_BASE_URL=" + srv.URL(), "LLM_API_KEY=k", "DATA_DIR=" + t.TempDir(), "LOG_LEVEL=warn", "REDIS_URL=", "DATABASE_URL="}
			if kind == "postgres" {
				env = append(env, "DATABASE_URL="+testenv.PostgresURL(t))
			}
			p := startProcess(t, env)
			c := &client{t: t, base: p.url, scope: store.Scope{OrgID: "crash", UserID: "u1"}}
			setupTeam(t, c, nil)
			runID := c.startGroupRun("team", "Plan the migration", "serial")
			// Kill once alice's proposal is stored and bob is working.
			waitFor(t, 30*time.Second, "the first proposal", func() bool {
				for _, e := range c.events(runID) {
					if e.Type == "message.proposal" {
						return true
					}
				}
				return false
			})
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			before := srv.RequestCount()

			p2 := startProcess(t, env)
			c.base = p2.url
			run := c.waitRun(runID, 60*time.Second)
			if run.Status != store.RunCompleted {
				t.Fatalf("group run after restart: %+v", run)
			}
			flow := messageFlow(t, c.events(runID))
			want := []string{
				"message.task carol->alice", "message.proposal alice",
				"message.task carol->bob", "message.proposal bob",
				"message.task carol->carol", "message.decision carol",
			}
			if strings.Join(flow, "|") != strings.Join(want, "|") {
				t.Fatalf("flow after restart:\n got %v\nwant %v", flow, want)
			}
			// alice's work was done once: no request for her task after the restart.
			for _, r := range srv.Requests()[before:] {
				if strings.Contains(r.Messages[0].Content, "with the role Researcher") {
					t.Fatalf("alice worked again after the restart")
				}
			}
			for _, a := range []string{"alice", "bob", "carol"} {
				var msgs struct {
					Messages []store.Message
					Total    int
				}
				c.must(http.StatusOK, "GET", "/api/agents/"+a+"/messages", nil, &msgs)
				if msgs.Total != 1 || msgs.Messages[0].Status != store.MessageRead {
					t.Fatalf("%s's inbox: %+v", a, msgs)
				}
			}
			var runs struct{ Total int }
			c.must(http.StatusOK, "GET", "/api/runs?group_id=team", nil, &runs)
			if runs.Total != 4 {
				t.Fatalf("%d runs in the group, want 4 (no duplicate member run)", runs.Total)
			}
			var board struct{ Total int }
			c.must(http.StatusOK, "GET", "/api/groups/team/blackboard?kind=decision", nil, &board)
			if board.Total != 1 {
				t.Fatalf("%d decisions on the blackboard, want 1", board.Total)
			}
		})
	}
}
