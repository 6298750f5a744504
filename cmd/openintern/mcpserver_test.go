package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

var mcpServerTools = []string{"get_run_events", "list_agents", "read_blackboard", "search_memory",
	"send_group_message", "send_message", "write_blackboard"}

// authDaemon is a daemon with AUTH=token and an echoing model, with tokens
// of org acme (admin and viewer) and of org other (admin), each with an agent.
type authDaemon struct {
	*testDaemon
	acmeAdmin, acmeViewer, otherAdmin string
}

func startAuthDaemon(t *testing.T) authDaemon {
	t.Helper()
	cfg := newConfig(t, "sqlite")
	cfg.Auth.Mode = config.AuthToken
	d := startDaemon(t, cfg, llmtest.NewServer(t).Provider())
	issue := func(org, user, role string) string {
		tok, secret, err := auth.Issue(auth.TokenRequest{Scope: store.Scope{OrgID: org, UserID: user}, Name: "mcp-" + role, Role: role, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		ts, ok := d.Store.(store.TokenStore)
		if !ok {
			t.Fatalf("%T keeps no tokens", d.Store)
		}
		if err := ts.CreateToken(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	a := authDaemon{testDaemon: d, acmeAdmin: issue("acme", "alice", "admin"), acmeViewer: issue("acme", "alice", "viewer"),
		otherAdmin: issue("other", "olga", "admin")}
	bearerPost(t, d.URL()+"/api/agents", a.acmeAdmin, `{"agent_id":"writer","name":"Writer"}`, http.StatusCreated)
	bearerPost(t, d.URL()+"/api/agents", a.otherAdmin, `{"agent_id":"spy","name":"Spy"}`, http.StatusCreated)
	return a
}

func bearerPost(t *testing.T, url, token, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d %s, want %d", url, resp.StatusCode, buf.String(), want)
	}
	return buf.Bytes()
}

// exerciseMCP drives an initialized client as acme: the tool list, a message
// with wait answered by the model, and another org's agent refused.
func exerciseMCP(t *testing.T, c *mcpclient.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "openintern-test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	list, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, mcpServerTools) {
		t.Fatalf("tools %v, want %v", names, mcpServerTools)
	}

	res := callTool(ctx, t, c, "send_message", map[string]any{"agent_id": "writer", "content": "ping over mcp", "wait": true, "timeout_seconds": 50})
	if res.IsError || len(res.Content) == 0 || textOf(res.Content[0]) != "echo: ping over mcp" {
		t.Fatalf("send_message with wait: %+v", res)
	}
	var run struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
	}
	if len(res.Content) < 2 || json.Unmarshal([]byte(textOf(res.Content[1])), &run) != nil || run.Status != "completed" {
		t.Fatalf("send_message run: %+v", res.Content)
	}
	evs := callTool(ctx, t, c, "get_run_events", map[string]any{"run_id": run.RunID})
	if evs.IsError || !strings.Contains(textOf(evs.Content[0]), "run.completed") {
		t.Fatalf("get_run_events: %+v", evs)
	}
	agents := callTool(ctx, t, c, "list_agents", nil)
	if agents.IsError || !strings.Contains(textOf(agents.Content[0]), `"writer"`) || strings.Contains(textOf(agents.Content[0]), `"spy"`) {
		t.Fatalf("list_agents: %+v", agents)
	}
	spy := callTool(ctx, t, c, "send_message", map[string]any{"agent_id": "spy", "content": "hi", "wait": true})
	if !spy.IsError || !strings.Contains(textOf(spy.Content[0]), "404") {
		t.Fatalf("another org's agent: %+v", spy)
	}
}

func callTool(ctx context.Context, t *testing.T, c *mcpclient.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func textOf(c mcp.Content) string {
	if tc, ok := c.(mcp.TextContent); ok {
		return tc.Text
	}
	return ""
}

// The mcp-go client drives /mcp of a daemon with AUTH=token: a token is
// required (401 without), its scope is the only one reachable, and a viewer
// cannot send.
func TestMCPServerOverHTTP(t *testing.T) {
	d := startAuthDaemon(t)
	endpoint := d.URL() + "/mcp"
	initBody := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	if body := bearerPost(t, endpoint, "", initBody, http.StatusUnauthorized); !strings.Contains(string(body), "unauthenticated") {
		t.Fatalf("401 body %s", body)
	}
	bearerPost(t, endpoint, "oit_not_a_token", initBody, http.StatusUnauthorized)

	c, err := mcpclient.NewStreamableHttpClient(endpoint, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + d.acmeAdmin}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exerciseMCP(t, c)

	viewer, err := mcpclient.NewStreamableHttpClient(endpoint, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + d.acmeViewer}))
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	if _, err := viewer.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	if res := callTool(ctx, t, viewer, "list_agents", nil); res.IsError || !strings.Contains(textOf(res.Content[0]), `"writer"`) {
		t.Fatalf("viewer list_agents: %+v", res)
	}
	if res := callTool(ctx, t, viewer, "send_message", map[string]any{"agent_id": "writer", "content": "hi"}); !res.IsError || !strings.Contains(textOf(res.Content[0]), "403") {
		t.Fatalf("viewer send_message: %+v", res)
	}
}

// The mcp-go client drives `openintern mcp` (the built binary) on stdio,
// which talks to the daemon as the token.
func TestMCPServerOverStdio(t *testing.T) {
	d := startAuthDaemon(t)
	env := append(os.Environ(), "OPENINTERN_URL="+d.URL(), "OPENINTERN_TOKEN="+d.acmeAdmin, "AGENT_ORG_ID=", "AGENT_USER_ID=", "AGENT_PROJECT_ID=")
	c, err := mcpclient.NewStdioMCPClient(daemonBinary(t), env, "mcp")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exerciseMCP(t, c)
}

// The MCP Inspector's CLI (a client this project did not write) lists the
// tools on /mcp and sends a message with wait.
func TestMCPServerWithInspector(t *testing.T) {
	inspector := testenv.NPMBin(t, "mcp-inspector")
	d := startAuthDaemon(t)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		full := append([]string{"--cli", d.URL() + "/mcp", "--transport", "http", "--header", "Authorization: Bearer " + d.acmeAdmin}, args...)
		cmd := exec.CommandContext(ctx, inspector, full...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "MCP_CATALOG_PATH="+t.TempDir()+"/mcp.json")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("inspector %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("--method", "tools/list")
	for _, name := range mcpServerTools {
		if !strings.Contains(out, `"`+name+`"`) {
			t.Fatalf("tools/list has no %s:\n%s", name, out)
		}
	}
	out = run("--method", "tools/call", "--tool-name", "send_message", "--tool-arg", "agent_id=writer", "content=hello inspector", "wait=true")
	if !strings.Contains(out, "echo: hello inspector") || strings.Contains(out, `"isError": true`) {
		t.Fatalf("tools/call send_message:\n%s", out)
	}
}

// With auth off /mcp acts in the scope its headers name: the blackboard and
// memory tools work there, and another scope's group is not found.
func TestMCPServerScopeHeadersWithAuthOff(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), llmtest.NewServer(t).Provider())
	admin := d.client("acme", "alice")
	admin.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "writer", "name": "Writer"}, nil)
	admin.must(http.StatusCreated, "POST", "/api/roles", map[string]any{"role_id": "scribe", "name": "Scribe",
		"description": "Writes.", "system_prompt": "You write."}, nil)
	admin.must(http.StatusCreated, "POST", "/api/groups", map[string]any{"group_id": "crew", "name": "Crew",
		"members": []map[string]any{{"agent_id": "writer", "role_id": "scribe"}}}, nil)
	connect := func(org, user string) *mcpclient.Client {
		c, err := mcpclient.NewStreamableHttpClient(d.URL()+"/mcp", transport.WithHTTPHeaders(map[string]string{"x-org-id": org, "x-user-id": user}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		init := mcp.InitializeRequest{}
		init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
		if _, err := c.Initialize(context.Background(), init); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	alice := connect("acme", "alice")
	if res := callTool(ctx, t, alice, "write_blackboard", map[string]any{"group_id": "crew", "text": "the launch is on friday", "kind": "decision"}); res.IsError {
		t.Fatalf("write_blackboard: %+v", res)
	}
	if res := callTool(ctx, t, alice, "read_blackboard", map[string]any{"group_id": "crew"}); res.IsError || !strings.Contains(textOf(res.Content[0]), "the launch is on friday") {
		t.Fatalf("read_blackboard: %+v", res)
	}
	if res := callTool(ctx, t, alice, "search_memory", map[string]any{"q": "launch"}); res.IsError {
		t.Fatalf("search_memory: %+v", res)
	}
	if res := callTool(ctx, t, alice, "send_group_message", map[string]any{"group_id": "crew", "content": "hello crew"}); res.IsError || !strings.Contains(textOf(res.Content[0]), "writer") {
		t.Fatalf("send_group_message: %+v", res)
	}
	bob := connect("other", "bob")
	if res := callTool(ctx, t, bob, "read_blackboard", map[string]any{"group_id": "crew"}); !res.IsError || !strings.Contains(textOf(res.Content[0]), "404") {
		t.Fatalf("another scope's blackboard: %+v", res)
	}
	if res := callTool(ctx, t, bob, "write_blackboard", map[string]any{"group_id": "crew", "text": "x"}); !res.IsError || !strings.Contains(textOf(res.Content[0]), "404") {
		t.Fatalf("another scope's blackboard write: %+v", res)
	}
}
