package memorytools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// Tools returns the built-in memory tools: memory_search, memory_get,
// memory_write, core_memory_append and core_memory_replace. Each works in
// the calling agent's scope; writes are owned by the calling agent.
func Tools(svc *memory.Service) []tools.Tool {
	return []tools.Tool{
		&tool{svc, llm.ToolSpec{Name: "memory_search", Description: "Search your long-term memory (episodic and archival) by meaning and keywords, in any language. Returns snippets with ids; use memory_get for the full text.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string","description":"what to look for"},"top_k":{"type":"integer","minimum":1,"maximum":20},"type":{"type":"string","enum":["episodic","archival"]}},"required":["query"]}`)}, searchTool},
		&tool{svc, llm.ToolSpec{Name: "memory_get", Description: "Read one memory in full by its id (from memory_search).",
			Parameters: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}`)}, getTool},
		&tool{svc, llm.ToolSpec{Name: "memory_write", Description: "Remember something for later sessions. type: episodic (what happened) or archival (knowledge).",
			Parameters: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"},"type":{"type":"string","enum":["episodic","archival"]},"metadata":{"type":"object","additionalProperties":{"type":"string"}},"importance":{"type":"number","minimum":0,"maximum":1}},"required":["text"]}`)}, writeTool},
		&tool{svc, llm.ToolSpec{Name: "core_memory_append", Description: "Append a line to one of your core memory blocks (persona, human, notes, ...), which are always in your prompt.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"label":{"type":"string"},"text":{"type":"string"}},"required":["label","text"]}`)}, appendTool},
		&tool{svc, llm.ToolSpec{Name: "core_memory_replace", Description: "Replace text in one of your core memory blocks; an empty new text deletes the old text.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"label":{"type":"string"},"old":{"type":"string"},"new":{"type":"string"}},"required":["label","old","new"]}`)}, replaceTool},
	}
}

type tool struct {
	svc  *memory.Service
	spec llm.ToolSpec
	run  func(ctx context.Context, svc *memory.Service, call tools.Call) (any, error)
}

func (t *tool) Spec() llm.ToolSpec { return t.spec }

// Run turns the service's refusals (bad input, not found, a full quota) into error results
// the model can read and act on; only infrastructure failures are errors.
func (t *tool) Run(ctx context.Context, call tools.Call) (tools.Result, error) {
	out, err := t.run(ctx, t.svc, call)
	if err != nil {
		if errors.Is(err, memory.ErrInvalid) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrQuotaExceeded) {
			return tools.Result{Content: err.Error(), IsError: true}, nil
		}
		return tools.Result{}, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return tools.Result{}, fmt.Errorf("memory: %s: %w", t.spec.Name, err)
	}
	return tools.Result{Content: string(b)}, nil
}

func decode(call tools.Call, v any) error {
	if err := json.Unmarshal(call.Args, v); err != nil {
		return fmt.Errorf("arguments: %v: %w", err, memory.ErrInvalid)
	}
	return nil
}

func searchTool(ctx context.Context, svc *memory.Service, call tools.Call) (any, error) {
	var a struct {
		Query string `json:"query"`
		TopK  int    `json:"top_k"`
		Type  string `json:"type"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	req := memory.SearchRequest{Scope: call.Scope, Query: a.Query, TopK: a.TopK}
	if a.Type != "" {
		req.Filter.Types = []string{a.Type}
	}
	res, err := svc.Search(ctx, req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"results": res}, nil
}

func getTool(ctx context.Context, svc *memory.Service, call tools.Call) (any, error) {
	var a struct {
		ID string `json:"id"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	return svc.Get(ctx, call.Scope, a.ID)
}

func writeTool(ctx context.Context, svc *memory.Service, call tools.Call) (any, error) {
	var a struct {
		Text       string            `json:"text"`
		Type       string            `json:"type"`
		Metadata   map[string]string `json:"metadata"`
		Importance float64           `json:"importance"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	md := map[string]string{}
	for k, v := range a.Metadata {
		md[k] = v
	}
	if call.RunID != "" {
		md["run_id"] = call.RunID
	}
	// The id derives from the call, so a call run again after a crash finds
	// its memory stored instead of storing it twice.
	id := tools.DerivedID("mem_", call)
	m, err := svc.Write(ctx, memory.WriteRequest{ID: id, Scope: call.Scope, Type: a.Type, AgentID: call.AgentID, Text: a.Text, Metadata: md, Importance: a.Importance})
	if errors.Is(err, store.ErrConflict) && id != "" {
		m, err = svc.Get(ctx, call.Scope, id)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": m.ID, "type": m.Type, "chunks": m.Chunks, "stored": true}, nil
}

func appendTool(ctx context.Context, svc *memory.Service, call tools.Call) (any, error) {
	var a struct {
		Label string `json:"label"`
		Text  string `json:"text"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	// Keyed by the call, so a call run again after a crash appends once.
	return svc.AppendCore(ctx, call.Scope, call.AgentID, tools.DerivedID("core_", call), a.Label, a.Text)
}

func replaceTool(ctx context.Context, svc *memory.Service, call tools.Call) (any, error) {
	var a struct {
		Label string `json:"label"`
		Old   string `json:"old"`
		New   string `json:"new"`
	}
	if err := decode(call, &a); err != nil {
		return nil, err
	}
	return svc.ReplaceCore(ctx, call.Scope, call.AgentID, tools.DerivedID("core_", call), a.Label, a.Old, a.New)
}
