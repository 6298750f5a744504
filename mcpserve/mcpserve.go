// Package mcpserve serves OpenIntern's capabilities as MCP tools. Every tool
// is a call of the daemon's own REST API made with the MCP caller's
// credentials, so authentication, scope, roles, quotas and audit are exactly
// the API's: /mcp reaches the API in process, `openintern mcp` over HTTP.
package mcpserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// API reaches the daemon's REST API as one caller.
type API struct {
	BaseURL string
	HTTP    *http.Client
	// Header gives the caller's credentials and scope headers for a call.
	Header func(ctx context.Context) http.Header
}

// apiError is a non-2xx answer of the API, kept so the tool can say why.
type apiError struct {
	Status int
	Code   string
	Msg    string
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Msg)
	}
	return fmt.Sprintf("status %d", e.Status)
}

func (a *API) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	u := strings.TrimRight(a.BaseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if a.Header != nil {
		for k, v := range a.Header(ctx) {
			req.Header[k] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(raw, &e)
		return &apiError{Status: resp.StatusCode, Code: e.Error.Code, Msg: e.Error.Message}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// drain reads a stream until the daemon ends it; a run's stream ends when the
// run is finished, which is what waiting means.
func (a *API) drain(ctx context.Context, path string) error {
	return a.do(ctx, http.MethodGet, path, nil, nil, lineSink{})
}

type lineSink struct{}

func (lineSink) Write(p []byte) (int, error) { return len(p), nil }

// Version is what the server reports in initialize.
const Version = "1"

// NewServer builds the MCP server whose tools act through api.
func NewServer(api *API) *server.MCPServer {
	s := server.NewMCPServer("openintern", Version,
		server.WithToolCapabilities(false), server.WithRecovery(),
		server.WithInstructions("OpenIntern runs persistent LLM agents. list_agents shows them; send_message with wait=true gives an agent work and returns its answer."))
	t := tools{api: api}
	s.AddTool(mcp.NewTool("list_agents",
		mcp.WithDescription("List the agents of your scope (id, name, role, state)."),
		mcp.WithReadOnlyHintAnnotation(true)), t.listAgents)
	s.AddTool(mcp.NewTool("send_message",
		mcp.WithDescription("Send a message to an agent. With wait=true it starts a run and returns the agent's answer once the run ends; otherwise the message is queued in the agent's inbox."),
		mcp.WithString("agent_id", mcp.Required(), mcp.Description("The agent's id (see list_agents).")),
		mcp.WithString("content", mcp.Required(), mcp.Description("The message.")),
		mcp.WithString("session_key", mcp.Description("Conversation to continue (default: the agent's default session).")),
		mcp.WithBoolean("wait", mcp.Description("Wait for the agent's answer.")),
		mcp.WithNumber("timeout_seconds", mcp.Description("How long to wait, 1-3600 (default 300).")),
		mcp.WithDestructiveHintAnnotation(false)), t.sendMessage)
	s.AddTool(mcp.NewTool("send_group_message",
		mcp.WithDescription("Send a message to all members of a group, or to one member (to)."),
		mcp.WithString("group_id", mcp.Required()),
		mcp.WithString("content", mcp.Required()),
		mcp.WithString("to", mcp.Description("One member's agent id; empty for all.")),
		mcp.WithString("session_key"),
		mcp.WithDestructiveHintAnnotation(false)), t.sendGroupMessage)
	s.AddTool(mcp.NewTool("get_run_events",
		mcp.WithDescription("Read a run's events (messages, tool calls, results) in order, a page at a time."),
		mcp.WithString("run_id", mcp.Required()),
		mcp.WithString("cursor", mcp.Description("next_cursor of the previous page.")),
		mcp.WithNumber("limit", mcp.Description("Events per page, 1-1000 (default 100).")),
		mcp.WithReadOnlyHintAnnotation(true)), t.runEvents)
	s.AddTool(mcp.NewTool("read_blackboard",
		mcp.WithDescription("List a group's blackboard entries, or search them with q."),
		mcp.WithString("group_id", mcp.Required()),
		mcp.WithString("q", mcp.Description("Search by meaning and keywords.")),
		mcp.WithString("kind", mcp.Enum("fact", "proposal", "decision", "todo")),
		mcp.WithReadOnlyHintAnnotation(true)), t.readBlackboard)
	s.AddTool(mcp.NewTool("write_blackboard",
		mcp.WithDescription("Post an entry on a group's blackboard as you."),
		mcp.WithString("group_id", mcp.Required()),
		mcp.WithString("text", mcp.Required()),
		mcp.WithString("kind", mcp.Enum("fact", "proposal", "decision", "todo"), mcp.Description("default fact")),
		mcp.WithDestructiveHintAnnotation(false)), t.writeBlackboard)
	s.AddTool(mcp.NewTool("search_memory",
		mcp.WithDescription("Search the scope's memories by meaning and keywords."),
		mcp.WithString("q", mcp.Required()),
		mcp.WithNumber("top_k", mcp.Description("How many results, 1-100.")),
		mcp.WithString("agent_id", mcp.Description("Only this agent's memories.")),
		mcp.WithReadOnlyHintAnnotation(true)), t.searchMemory)
	return s
}

type tools struct{ api *API }

// answer turns an API answer into a tool result: an API refusal is a tool
// error the model can read (the protocol call itself succeeded).
func answer(v any, err error) (*mcp.CallToolResult, error) {
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return mcp.NewToolResultError(ae.Error()), nil
		}
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return mcp.NewToolResultError(err.Error()), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return mcp.NewToolResultText(string(raw)), nil
}

func (t tools) listAgents(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var out json.RawMessage
	err := t.api.do(ctx, http.MethodGet, "/api/agents", url.Values{"limit": {"200"}}, nil, &out)
	return answer(out, err)
}

func pathID(id string) string { return url.PathEscape(id) }

func (t tools) sendMessage(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	agentID, err := req.RequireString("agent_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	content, err := req.RequireString("content")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	session := req.GetString("session_key", "")
	if !req.GetBool("wait", false) {
		var out json.RawMessage
		err := t.api.do(ctx, http.MethodPost, "/api/agents/"+pathID(agentID)+"/messages", nil,
			map[string]string{"content": content, "session_key": session}, &out)
		return answer(out, err)
	}
	timeout := req.GetFloat("timeout_seconds", 300)
	if timeout < 1 || timeout > 3600 {
		return mcp.NewToolResultError("timeout_seconds must be between 1 and 3600"), nil
	}
	var created struct {
		RunID      string `json:"run_id"`
		SessionKey string `json:"session_key"`
	}
	if err := t.api.do(ctx, http.MethodPost, "/api/runs", nil,
		map[string]string{"agent_id": agentID, "input": content, "session_key": session}, &created); err != nil {
		return answer(nil, err)
	}
	return t.waitRun(ctx, created.RunID, time.Duration(timeout*float64(time.Second)))
}

// runAnswer is what a waited run returns.
type runAnswer struct {
	RunID      string          `json:"run_id"`
	Status     string          `json:"status"`
	Output     string          `json:"output,omitempty"`
	Error      json.RawMessage `json:"error,omitempty"`
	SessionKey string          `json:"session_key,omitempty"`
}

// maxReconnects bounds how often a wait reopens a run's stream that the
// daemon closed before the run ended (a restart, a stream's time cap).
const maxReconnects = 20

func terminal(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled"
}

func (t tools) waitRun(ctx context.Context, runID string, timeout time.Duration) (*mcp.CallToolResult, error) {
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var run runAnswer
	for attempt := 0; ; attempt++ {
		streamErr := t.api.drain(waitCtx, "/api/runs/"+pathID(runID)+"/stream")
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := t.api.do(ctx, http.MethodGet, "/api/runs/"+pathID(runID), nil, nil, &run); err != nil {
			return answer(nil, err)
		}
		if terminal(run.Status) {
			break
		}
		var ae *apiError
		switch {
		case waitCtx.Err() != nil:
			return mcp.NewToolResultError(fmt.Sprintf("run %s is still %s after %s; read it later with get_run_events", runID, run.Status, timeout)), nil
		case errors.As(streamErr, &ae) || attempt >= maxReconnects:
			why := "its stream kept ending"
			if streamErr != nil {
				why = streamErr.Error()
			}
			return mcp.NewToolResultError(fmt.Sprintf("waiting for run %s (still %s): %s; read it later with get_run_events", runID, run.Status, why)), nil
		}
	}
	raw, err := json.Marshal(run)
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	if run.Status != "completed" {
		return mcp.NewToolResultError(string(raw)), nil
	}
	// The answer first, for clients that show only the first content; the
	// run's record after it, for those that want its id and status.
	res := mcp.NewToolResultText(run.Output)
	res.Content = append(res.Content, mcp.NewTextContent(string(raw)))
	return res, nil
}

func (t tools) sendGroupMessage(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	groupID, err := req.RequireString("group_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	content, err := req.RequireString("content")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	var out json.RawMessage
	err = t.api.do(ctx, http.MethodPost, "/api/groups/"+pathID(groupID)+"/messages", nil,
		map[string]string{"content": content, "to": req.GetString("to", ""), "session_key": req.GetString("session_key", "")}, &out)
	return answer(out, err)
}

func (t tools) runEvents(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	runID, err := req.RequireString("run_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	q := url.Values{}
	if c := req.GetString("cursor", ""); c != "" {
		q.Set("cursor", c)
	}
	if l := req.GetInt("limit", 0); l != 0 {
		q.Set("limit", strconv.Itoa(l))
	}
	var out json.RawMessage
	err = t.api.do(ctx, http.MethodGet, "/api/runs/"+pathID(runID)+"/events", q, nil, &out)
	return answer(out, err)
}

func (t tools) readBlackboard(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	groupID, err := req.RequireString("group_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	q := url.Values{}
	for _, k := range []string{"q", "kind"} {
		if v := req.GetString(k, ""); v != "" {
			q.Set(k, v)
		}
	}
	var out json.RawMessage
	err = t.api.do(ctx, http.MethodGet, "/api/groups/"+pathID(groupID)+"/blackboard", q, nil, &out)
	return answer(out, err)
}

func (t tools) writeBlackboard(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	groupID, err := req.RequireString("group_id")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	text, err := req.RequireString("text")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	var out json.RawMessage
	err = t.api.do(ctx, http.MethodPost, "/api/groups/"+pathID(groupID)+"/blackboard", nil,
		map[string]string{"text": text, "kind": req.GetString("kind", "fact")}, &out)
	return answer(out, err)
}

func (t tools) searchMemory(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	q, err := req.RequireString("q")
	if err != nil {
		return mcp.NewToolResultError(err.Error()), nil
	}
	v := url.Values{"q": {q}}
	if k := req.GetInt("top_k", 0); k != 0 {
		v.Set("top_k", strconv.Itoa(k))
	}
	if a := req.GetString("agent_id", ""); a != "" {
		v.Set("agent_id", a)
	}
	var out json.RawMessage
	err = t.api.do(ctx, http.MethodGet, "/api/memories/search", v, nil, &out)
	return answer(out, err)
}
