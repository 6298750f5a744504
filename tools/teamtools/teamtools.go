// Package teamtools holds the tools agents use to work together:
// send_message (to an agent, the lead or the whole group), spawn_agent (a
// child agent that reports back), blackboard_write and blackboard_read. Every
// message goes through the durable mailbox like a user's.
package teamtools

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Mailbox stores a message durably and wakes its agent.
type Mailbox interface {
	Send(ctx context.Context, msg store.NewMessage) (store.Message, error)
}

// Store is what the tools read and write.
type Store interface {
	GetAgent(ctx context.Context, scope store.Scope, agentID string) (store.Agent, error)
	CreateAgent(ctx context.Context, a store.Agent) (store.Agent, error)
	CountChildren(ctx context.Context, scope store.Scope, parentID string) (int, error)
	ListMembers(ctx context.Context, scope store.Scope, groupID string) ([]store.GroupMember, error)
}

// Limits bound spawning.
type Limits struct {
	MaxDepth    int // generations below a root agent; default 3
	MaxChildren int // children per agent; default 10
}

// Tools returns send_message and spawn_agent, and, with a blackboard,
// blackboard_write and blackboard_read.
func Tools(st Store, mb Mailbox, bb *memory.Blackboard, lim Limits) []tools.Tool {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = 3
	}
	if lim.MaxChildren <= 0 {
		lim.MaxChildren = 10
	}
	d := &deps{st: st, mb: mb, bb: bb, lim: lim}
	out := []tools.Tool{
		&tool{d, llm.ToolSpec{Name: "send_message", Description: "Send a message to another agent of your workspace (its agent id), to your group's lead (\"lead\") or to every other member of your group (\"group\"). It lands in their inbox and wakes them; their answer comes back as a message to you.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"to":{"type":"string","description":"an agent id, \"lead\" or \"group\""},"content":{"type":"string"}},"required":["to","content"]}`)}, sendMessage},
		&tool{d, llm.ToolSpec{Name: "spawn_agent", Description: "Create a child agent for a sub-task and give it the task. It works on its own and reports back to you by message when it is done.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"agent_id":{"type":"string","description":"optional id, [a-z0-9][a-z0-9_-]{0,63}"},"name":{"type":"string"},"system_prompt":{"type":"string"},"task":{"type":"string"},"tools":{"type":"array","items":{"type":"string"},"description":"tools the child may use (at most yours)"}},"required":["name","task"]}`)}, spawnAgent},
	}
	if bb != nil {
		out = append(out,
			&tool{d, llm.ToolSpec{Name: "blackboard_write", Description: "Write an entry on your group's blackboard, which every member reads: a fact you established, a proposal, a decision or a todo.",
				Parameters: json.RawMessage(`{"type":"object","properties":{"kind":{"type":"string","enum":["fact","proposal","decision","todo"]},"text":{"type":"string"}},"required":["kind","text"]}`)}, blackboardWrite},
			&tool{d, llm.ToolSpec{Name: "blackboard_read", Description: "Read your group's blackboard: the latest entries, or with a query the entries that match it (any language).",
				Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"},"kind":{"type":"string","enum":["fact","proposal","decision","todo"]},"limit":{"type":"integer","minimum":1,"maximum":50}}}`)}, blackboardRead},
		)
	}
	return out
}

type deps struct {
	st  Store
	mb  Mailbox
	bb  *memory.Blackboard
	lim Limits
}

type tool struct {
	d    *deps
	spec llm.ToolSpec
	run  func(ctx context.Context, d *deps, call tools.Call) (any, error)
}

func (t *tool) Spec() llm.ToolSpec { return t.spec }

// errRefused marks a request the model can fix; it becomes an error result.
var errRefused = errors.New("refused")

func (t *tool) Run(ctx context.Context, call tools.Call) (tools.Result, error) {
	out, err := t.run(ctx, t.d, call)
	if err != nil {
		if errors.Is(err, errRefused) || errors.Is(err, memory.ErrInvalid) || errors.Is(err, store.ErrNotFound) ||
			errors.Is(err, store.ErrQuotaExceeded) {
			return tools.Result{Content: err.Error(), IsError: true}, nil
		}
		return tools.Result{}, fmt.Errorf("%s: %w", t.spec.Name, err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return tools.Result{}, fmt.Errorf("%s: %w", t.spec.Name, err)
	}
	return tools.Result{Content: string(b)}, nil
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errRefused)
}

func decode(call tools.Call, v any) error {
	if err := json.Unmarshal(call.Args, v); err != nil {
		return refuse("arguments: %v", err)
	}
	return nil
}

const maxContent = 64 << 10

func sendMessage(ctx context.Context, d *deps, call tools.Call) (any, error) {
	var a struct {
		To      string `json:"to"`
		Content string `json:"content"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	if strings.TrimSpace(a.Content) == "" || len(a.Content) > maxContent {
		return nil, refuse("content must be 1 byte to 64 KiB")
	}
	var to []string
	groupID := ""
	switch a.To {
	case "lead", "group":
		if call.GroupID == "" {
			return nil, refuse("you are not working in a group, so %q names nobody; send to an agent id", a.To)
		}
		members, err := d.st.ListMembers(ctx, call.Scope, call.GroupID)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if m.AgentID != call.AgentID && (a.To == "group" || m.IsLead) {
				to = append(to, m.AgentID)
			}
		}
		if len(to) == 0 {
			return nil, refuse("nobody else in the group to send to")
		}
		groupID = call.GroupID
	default:
		if a.To == call.AgentID {
			return nil, refuse("you cannot send a message to yourself")
		}
		if _, err := d.st.GetAgent(ctx, call.Scope, a.To); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, refuse("no agent %q in your workspace", a.To)
			}
			return nil, err
		}
		to = []string{a.To}
		if call.GroupID != "" && slices.ContainsFunc(mustMembers(ctx, d, call), func(m store.GroupMember) bool { return m.AgentID == a.To }) {
			groupID = call.GroupID
		}
	}
	session := "agent:" + call.AgentID
	if groupID != "" {
		session = "group:" + groupID + ":messages"
	}
	sent := make([]map[string]string, 0, len(to))
	for _, id := range to {
		m, err := sendOnce(ctx, d, store.NewMessage{
			Scope: call.Scope, ID: tools.DerivedID("msg_", call, id), AgentID: id, SessionKey: session, GroupID: groupID,
			SenderType: store.SenderAgent, SenderID: call.AgentID,
			Content: fmt.Sprintf("Message from agent %s:\n%s", call.AgentID, a.Content),
		})
		if err != nil {
			return nil, err
		}
		sent = append(sent, map[string]string{"to": id, "message_id": m.ID})
	}
	return map[string]any{"sent": sent}, nil
}

// sendOnce sends a message whose id derives from the call: when the call ran
// before (a run resumed after a crash), the message is stored already and is
// not sent again.
func sendOnce(ctx context.Context, d *deps, msg store.NewMessage) (store.Message, error) {
	m, err := d.mb.Send(ctx, msg)
	if errors.Is(err, store.ErrConflict) && msg.ID != "" {
		return store.Message{Scope: msg.Scope, ID: msg.ID, AgentID: msg.AgentID}, nil
	}
	return m, err
}

func mustMembers(ctx context.Context, d *deps, call tools.Call) []store.GroupMember {
	ms, _ := d.st.ListMembers(ctx, call.Scope, call.GroupID)
	return ms
}

var agentIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func spawnAgent(ctx context.Context, d *deps, call tools.Call) (any, error) {
	var a struct {
		AgentID      string   `json:"agent_id"`
		Name         string   `json:"name"`
		SystemPrompt string   `json:"system_prompt"`
		Task         string   `json:"task"`
		Tools        []string `json:"tools"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	if strings.TrimSpace(a.Name) == "" || len(a.Name) > 200 {
		return nil, refuse("name must be 1-200 characters")
	}
	if strings.TrimSpace(a.Task) == "" || len(a.Task) > maxContent {
		return nil, refuse("task must be 1 byte to 64 KiB")
	}
	if len(a.SystemPrompt) > maxContent {
		return nil, refuse("system_prompt must be at most 64 KiB")
	}
	if a.AgentID == "" {
		// From the call's Key when it has one: model call ids repeat across
		// steps, so two spawns of one run would otherwise pick one id.
		a.AgentID = call.AgentID + "-" + shortID(cmp.Or(call.Key, call.CallID), call.RunID)
		if len(a.AgentID) > 64 {
			a.AgentID = a.AgentID[len(a.AgentID)-64:]
			a.AgentID = strings.TrimLeft(a.AgentID, "-_")
		}
	}
	if !agentIDPattern.MatchString(a.AgentID) {
		return nil, refuse("agent_id must match [a-z0-9][a-z0-9_-]{0,63}")
	}
	// A child of ours by that id exists when this call ran before (a run
	// resumed after a crash) and stopped between creating the child and
	// giving it its task: the task's id derives from the call, so sending it
	// again stores it at most once. The limits counted that child already.
	child, err := d.st.GetAgent(ctx, call.Scope, a.AgentID)
	switch {
	case err == nil && child.ParentID == call.AgentID:
	case err == nil:
		return nil, refuse("an agent %q exists already; choose another agent_id", a.AgentID)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	default:
		child, err = createChild(ctx, d, call, a.AgentID, a.Name, a.SystemPrompt, a.Tools)
	}
	if err != nil {
		return nil, err
	}
	m, err := sendOnce(ctx, d, store.NewMessage{
		Scope: call.Scope, ID: tools.DerivedID("msg_", call, "task"), AgentID: child.ID, SessionKey: "agent:" + call.AgentID,
		SenderType: store.SenderAgent, SenderID: call.AgentID,
		Content: fmt.Sprintf("Task from your parent agent %s:\n%s", call.AgentID, a.Task),
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"agent_id": child.ID, "message_id": m.ID, "note": "the child reports back to you by message when it is done"}, nil
}

// createChild checks the spawning limits and the tools given, and creates the child.
func createChild(ctx context.Context, d *deps, call tools.Call, id, name, prompt string, childTools []string) (store.Agent, error) {
	depth, err := depthOf(ctx, d, call.Scope, call.AgentID)
	if err != nil {
		return store.Agent{}, err
	}
	if depth+1 > d.lim.MaxDepth {
		return store.Agent{}, refuse("spawning another generation would exceed the depth limit of %d", d.lim.MaxDepth)
	}
	n, err := d.st.CountChildren(ctx, call.Scope, call.AgentID)
	if err != nil {
		return store.Agent{}, err
	}
	if n >= d.lim.MaxChildren {
		return store.Agent{}, refuse("you already have %d child agents, the limit", n)
	}
	if permitted := call.Allowed; len(permitted) > 0 {
		// A child gets at most its parent's tools.
		if childTools == nil {
			childTools = slices.Clone(permitted)
		}
		for _, t := range childTools {
			if !slices.Contains(permitted, t) {
				return store.Agent{}, refuse("tool %q is not yours to give", t)
			}
		}
	}
	child, err := d.st.CreateAgent(ctx, store.Agent{
		Scope: call.Scope, ID: id, Name: name, SystemPrompt: prompt,
		Tools: childTools, ParentID: call.AgentID, State: store.AgentIdle,
	})
	if errors.Is(err, store.ErrConflict) {
		return store.Agent{}, refuse("an agent %q exists already; choose another agent_id", id)
	}
	return child, err
}

// depthOf counts the agent's ancestors (a root agent has depth 0).
func depthOf(ctx context.Context, d *deps, scope store.Scope, agentID string) (int, error) {
	depth := 0
	seen := map[string]bool{}
	for id := agentID; ; depth++ {
		if seen[id] || depth > 64 {
			return depth, nil
		}
		seen[id] = true
		a, err := d.st.GetAgent(ctx, scope, id)
		if errors.Is(err, store.ErrNotFound) {
			return depth, nil
		}
		if err != nil {
			return 0, err
		}
		if a.ParentID == "" {
			return depth, nil
		}
		id = a.ParentID
	}
}

// shortID derives a child id suffix from the call, so a retried call after a
// crash picks the same id (and finds the child exists) instead of a second child.
func shortID(callID, runID string) string {
	h := uint32(2166136261)
	for _, c := range runID + "/" + callID {
		h = (h ^ uint32(c)) * 16777619
	}
	return fmt.Sprintf("c%08x", h)
}

func blackboardWrite(ctx context.Context, d *deps, call tools.Call) (any, error) {
	var a struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	if call.GroupID == "" {
		return nil, refuse("you are not working in a group, so there is no blackboard to write")
	}
	p := memory.Post{ID: tools.DerivedID("mem_", call), AgentID: call.AgentID, RunID: call.RunID, Kind: a.Kind, Text: a.Text}
	if call.ParentRunID != "" && (a.Kind == memory.KindFact || a.Kind == memory.KindTodo) {
		p.EvidenceFor = call.ParentRunID
	}
	e, _, err := d.bb.Post(ctx, call.Scope, call.GroupID, p)
	if err != nil {
		return nil, err
	}
	return map[string]any{"memory_id": e.ID, "kind": e.Kind}, nil
}

func blackboardRead(ctx context.Context, d *deps, call tools.Call) (any, error) {
	var a struct {
		Query string `json:"query"`
		Kind  string `json:"kind"`
		Limit int    `json:"limit"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	if call.GroupID == "" {
		return nil, refuse("you are not working in a group, so there is no blackboard to read")
	}
	if a.Limit <= 0 {
		a.Limit = 10
	}
	if strings.TrimSpace(a.Query) != "" {
		hits, err := d.bb.Search(ctx, call.Scope, call.GroupID, a.Query, a.Kind, a.Limit)
		if err != nil {
			return nil, err
		}
		return map[string]any{"results": hits}, nil
	}
	entries, total, err := d.bb.List(ctx, call.Scope, call.GroupID, memory.BoardQuery{Kind: a.Kind, Page: store.Page{Limit: a.Limit}})
	if err != nil {
		return nil, err
	}
	return map[string]any{"entries": entries, "total": total}, nil
}
