package teamtools_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
	"github.com/openintern/openintern/tools/teamtools"
)

// directMailbox stores messages straight into the store (the daemon's mailbox
// adds group commit and wake-ups, which these tools do not depend on).
type directMailbox struct{ st store.Store }

func (m directMailbox) Send(ctx context.Context, msg store.NewMessage) (store.Message, error) {
	if msg.ID == "" {
		msg.ID = "msg_" + strings.ReplaceAll(msg.AgentID+msg.Content, " ", "_")
	}
	out, err := m.st.EnqueueMessages(ctx, []store.NewMessage{msg})
	if err != nil {
		return store.Message{}, err
	}
	return out[0], nil
}

type recorder struct{ st store.Store }

func (r recorder) RecordEvents(ctx context.Context, evs []store.Event) error {
	_, err := r.st.AppendEvents(ctx, evs)
	return err
}

func open(t *testing.T, kind string) (store.Store, memory.Store) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	if kind == "sqlite" {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st, st.Memory()
	}
	st, err := postgres.Open(ctx, testenv.PostgresURL(t), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, st.Memory()
}

func TestTeamTools(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := t.Context()
			st, ms := open(t, kind)
			svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(0)})
			if err != nil {
				t.Fatal(err)
			}
			bb := memory.NewBlackboard(svc, recorder{st})
			reg := tools.NewRegistry()
			for _, tl := range teamtools.Tools(st, directMailbox{st}, bb, teamtools.Limits{MaxDepth: 2, MaxChildren: 2}) {
				if err := reg.Register(tl); err != nil {
					t.Fatal(err)
				}
			}
			scope := store.Scope{OrgID: "o", UserID: "u"}
			for _, a := range []string{"root", "peer", "lead"} {
				if _, err := st.CreateAgent(ctx, store.Agent{Scope: scope, ID: a, Name: a, State: store.AgentIdle}); err != nil {
					t.Fatal(err)
				}
			}
			call := func(agent, group, parentRun, name, args string, allowed ...string) (tools.Result, tools.Outcome) {
				t.Helper()
				return reg.Route(ctx, tools.Call{Scope: scope, AgentID: agent, RunID: "run-" + agent, GroupID: group, ParentRunID: parentRun,
					CallID: "c-" + args, Name: name, Args: json.RawMessage(args)}, allowed)
			}
			refused := func(want, agent, group, name, args string, allowed ...string) {
				t.Helper()
				res, out := call(agent, group, "", name, args, allowed...)
				if !res.IsError || !strings.Contains(res.Content, want) {
					t.Fatalf("want a refusal containing %q, got %v %+v", want, out, res)
				}
			}

			// Spawning: depth and count limits, a child's tools at most its parent's.
			res, out := call("root", "", "", "spawn_agent", `{"agent_id":"kid","name":"Kid","task":"sum 1 and 2"}`, "read_file", "spawn_agent")
			if out != tools.OutcomeOK {
				t.Fatalf("spawn: %v %+v", out, res)
			}
			kid, err := st.GetAgent(ctx, scope, "kid")
			if err != nil || kid.ParentID != "root" || strings.Join(kid.Tools, ",") != "read_file,spawn_agent" {
				t.Fatalf("child: %+v %v", kid, err)
			}
			msgs, _, err := st.ListMessages(ctx, scope, "kid", store.MessageUnread, store.Page{})
			if err != nil || len(msgs) != 1 || msgs[0].SenderID != "root" || !strings.Contains(msgs[0].Content, "sum 1 and 2") {
				t.Fatalf("child's task: %+v %v", msgs, err)
			}
			refused("not yours to give", "root", "", "spawn_agent", `{"agent_id":"kid2","name":"Kid","task":"x","tools":["memory_write"]}`, "read_file", "spawn_agent")
			if _, out := call("kid", "", "", "spawn_agent", `{"agent_id":"grandkid","name":"G","task":"x"}`); out != tools.OutcomeOK {
				t.Fatalf("a second generation within the depth limit was refused")
			}
			refused("depth limit of 2", "grandkid", "", "spawn_agent", `{"agent_id":"ggkid","name":"G","task":"x"}`)
			if _, out := call("root", "", "", "spawn_agent", `{"agent_id":"kid3","name":"K","task":"x"}`); out != tools.OutcomeOK {
				t.Fatal("second child refused")
			}
			refused("limit", "root", "", "spawn_agent", `{"agent_id":"kid4","name":"K","task":"x"}`)
			refused("agent_id", "root", "", "spawn_agent", `{"agent_id":"Bad Id","name":"K","task":"x"}`)

			// Messages: to an agent; to yourself, nobody, or "lead" outside a group are refused.
			if res, out := call("root", "", "", "send_message", `{"to":"peer","content":"hi"}`); out != tools.OutcomeOK {
				t.Fatalf("send: %v %+v", out, res)
			}
			refused("yourself", "root", "", "send_message", `{"to":"root","content":"hi"}`)
			refused("no agent", "root", "", "send_message", `{"to":"ghost","content":"hi"}`)
			refused("not working in a group", "root", "", "send_message", `{"to":"lead","content":"hi"}`)

			// In a group: "lead" and "group" reach the members, in the group.
			if _, err := st.CreateRole(ctx, store.Role{Scope: scope, ID: "boss", Name: "Boss", IsLead: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateRole(ctx, store.Role{Scope: scope, ID: "dev", Name: "Dev"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateGroup(ctx, store.Group{Scope: scope, ID: "g", Name: "G"}); err != nil {
				t.Fatal(err)
			}
			for a, r := range map[string]string{"lead": "boss", "peer": "dev", "root": "dev"} {
				if _, err := st.AddMember(ctx, store.GroupMember{Scope: scope, GroupID: "g", AgentID: a, RoleID: r}); err != nil {
					t.Fatal(err)
				}
			}
			if res, out := call("root", "g", "", "send_message", `{"to":"group","content":"all hands"}`); out != tools.OutcomeOK || strings.Count(res.Content, "message_id") != 2 {
				t.Fatalf("to the group: %v %+v", out, res)
			}
			leadMsgs, _, _ := st.ListMessages(ctx, scope, "lead", store.MessageUnread, store.Page{})
			if len(leadMsgs) != 1 || leadMsgs[0].GroupID != "g" {
				t.Fatalf("lead's inbox: %+v", leadMsgs)
			}

			// Blackboard: only inside a group; a fact during a group run is evidence there.
			refused("not working in a group", "root", "", "blackboard_write", `{"kind":"fact","text":"x"}`)
			if res, out := call("root", "g", "grun-1", "blackboard_write", `{"kind":"fact","text":"the queue holds 10k messages 队列"}`); out != tools.OutcomeOK {
				t.Fatalf("write: %v %+v", out, res)
			}
			evs, _, err := st.ListEvents(ctx, scope, store.EventFilter{RunID: "grun-1"})
			if err != nil || len(evs) != 1 || evs[0].Type != "message.evidence" || evs[0].AgentID != "root" || evs[0].GroupID != "g" {
				t.Fatalf("evidence on the group run: %+v %v", evs, err)
			}
			res, out = call("peer", "g", "", "blackboard_read", `{"query":"队列"}`)
			if out != tools.OutcomeOK || !strings.Contains(res.Content, "队列") {
				t.Fatalf("read by search: %v %+v", out, res)
			}
			res, _ = call("peer", "g", "", "blackboard_read", `{"kind":"fact"}`)
			if !strings.Contains(res.Content, `"total":1`) {
				t.Fatalf("read latest: %+v", res)
			}
			if res, _ := call("peer", "other", "", "blackboard_read", `{}`); !strings.Contains(res.Content, `"total":0`) {
				t.Fatalf("another group's board is not empty: %+v", res)
			}
		})
	}
}
