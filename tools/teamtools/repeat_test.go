package teamtools_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytools"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
	"github.com/openintern/openintern/tools/teamtools"
)

// A call that runs again (its run resumed after a crash before its result was
// stored) applies its side effect once: send_message, spawn_agent,
// blackboard_write and memory_write derive their ids from the call's Key, and
// core_memory_append and core_memory_replace record the keys they applied.
// Another call with the same arguments is a new effect.
func TestSideEffectsAppliedOncePerCall(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			st, ms := open(t, kind)
			svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(0)})
			if err != nil {
				t.Fatal(err)
			}
			reg := tools.NewRegistry()
			all := append(teamtools.Tools(st, directMailbox{st}, memory.NewBlackboard(svc, recorder{st}), teamtools.Limits{}), memorytools.Tools(svc)...)
			for _, tl := range all {
				if err := reg.Register(tl); err != nil {
					t.Fatal(err)
				}
			}
			scope := store.Scope{OrgID: "o", UserID: "u"}
			for _, a := range []string{"root", "peer"} {
				if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: a, Name: a, State: store.AgentIdle}); err != nil {
					t.Fatal(err)
				}
			}
			call := func(key, name, args string) string {
				t.Helper()
				res, out := reg.Route(ctx, tools.Call{Scope: scope, AgentID: "root", RunID: "run_1", GroupID: "g", CallID: "call_0",
					Name: name, Args: json.RawMessage(args), Key: key}, nil)
				if out != tools.OutcomeOK {
					t.Fatalf("%s: %v %+v", name, out, res)
				}
				return res.Content
			}
			unread := func(agent string) int {
				t.Helper()
				_, n, err := st.ListMessages(ctx, scope, agent, store.MessageUnread, store.Page{})
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			memories := func(text string) int {
				t.Helper()
				hits, err := svc.Search(ctx, memory.SearchRequest{Scope: scope, Query: text, Mode: memory.ModeFullText, TopK: 20})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, h := range hits {
					if strings.Contains(h.Snippet, text) {
						n++
					}
				}
				return n
			}

			// send_message: to an agent outside a group (peer is no member of g).
			for range 2 {
				call("run_1/1/0/call_0", "send_message", `{"to":"peer","content":"hello once"}`)
			}
			if n := unread("peer"); n != 1 {
				t.Fatalf("send_message run twice: %d messages", n)
			}
			call("run_1/2/0/call_0", "send_message", `{"to":"peer","content":"hello once"}`)
			if n := unread("peer"); n != 2 {
				t.Fatalf("another call with the same content: %d messages, want 2", n)
			}

			// memory_write.
			for range 2 {
				call("run_1/1/1/call_1", "memory_write", `{"text":"okapi remembered","type":"archival"}`)
			}
			if n := memories("okapi"); n != 1 {
				t.Fatalf("memory_write run twice: %d memories", n)
			}

			// blackboard_write.
			for range 2 {
				call("run_1/1/2/call_2", "blackboard_write", `{"kind":"fact","text":"narwhal noted"}`)
			}
			if n := memories("narwhal"); n != 1 {
				t.Fatalf("blackboard_write run twice: %d entries", n)
			}

			// core_memory_append and core_memory_replace: the replace run again
			// answers success, not "not found", and neither edits twice.
			core := func() string {
				t.Helper()
				blocks, err := svc.CoreBlocks(ctx, scope, "root")
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range blocks {
					if b.Label == "notes" {
						return b.Value
					}
				}
				return ""
			}
			for range 2 {
				call("run_1/1/5/call_5", "core_memory_append", `{"label":"notes","text":"tapir seen"}`)
			}
			if v := core(); v != "tapir seen" {
				t.Fatalf("core_memory_append run twice: %q", v)
			}
			for range 2 {
				call("run_1/1/6/call_6", "core_memory_replace", `{"label":"notes","old":"tapir","new":"okapi"}`)
			}
			if v := core(); v != "okapi seen" {
				t.Fatalf("core_memory_replace run twice: %q", v)
			}
			call("run_1/2/5/call_5", "core_memory_append", `{"label":"notes","text":"tapir seen"}`)
			if v := core(); v != "okapi seen\ntapir seen" {
				t.Fatalf("another append with the same text: %q", v)
			}

			// spawn_agent, also when the first attempt stopped after creating
			// the child and before giving it its task.
			if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: "kid", Name: "Kid", ParentID: "root", State: store.AgentIdle}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				call("run_1/1/3/call_3", "spawn_agent", `{"agent_id":"kid","name":"Kid","task":"count the okapis"}`)
			}
			if n := unread("kid"); n != 1 {
				t.Fatalf("spawn_agent run twice after a stop before the task: %d tasks, want 1", n)
			}

			// Without an agent_id, two spawns of one run whose model reused the
			// call id in another step get two children; each run again, none more.
			kids := map[string]bool{}
			for _, key := range []string{"run_1/1/4/call_0", "run_1/2/0/call_0", "run_1/1/4/call_0"} {
				var out struct {
					AgentID string `json:"agent_id"`
				}
				_ = json.Unmarshal([]byte(call(key, "spawn_agent", `{"name":"Helper","task":"help"}`)), &out)
				kids[out.AgentID] = true
			}
			if len(kids) != 2 {
				t.Fatalf("children of two spawns, one run again: %v", kids)
			}
			for kid := range kids {
				if n := unread(kid); n != 1 {
					t.Fatalf("%s has %d tasks, want 1", kid, n)
				}
			}

			// A spawn that made the parent's last allowed child, run again, is
			// not refused for the limit its own child fills.
			limited := tools.NewRegistry()
			for _, tl := range teamtools.Tools(st, directMailbox{st}, nil, teamtools.Limits{MaxChildren: 1}) {
				if err := limited.Register(tl); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 {
				res, out := limited.Route(ctx, tools.Call{Scope: scope, AgentID: "peer", RunID: "run_2", CallID: "call_0",
					Name: "spawn_agent", Args: json.RawMessage(`{"agent_id":"only","name":"Only","task":"the one task"}`), Key: "run_2/1/0/call_0"}, nil)
				if out != tools.OutcomeOK {
					t.Fatalf("spawn at the limit, run again: %v %+v", out, res)
				}
			}
			if n := unread("only"); n != 1 {
				t.Fatalf("the only child has %d tasks, want 1", n)
			}
		})
	}
}
