package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// withAnthropic points the config's Anthropic provider at srv.
func withAnthropic(cfg config.Config, srv *llmtest.Server) config.Config {
	cfg.AnthropicBaseURL, cfg.AnthropicAPIKey = srv.AnthropicURL(), "sk-ant-test"
	return cfg
}

// llmCalls are the llm.called payloads of a run.
func llmCalls(t *testing.T, c *client, runID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range c.events(runID) {
		if e.Type == "llm.called" {
			out = append(out, payloadOf(t, e))
		}
	}
	return out
}

// TestGroupRunAcrossProviders: the members of one group use three providers
// (Anthropic, Gemini through a named model, and an OpenAI-compatible server);
// the run completes and each member's trace names its provider and model.
func TestGroupRunAcrossProviders(t *testing.T) {
	ant := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-ant-test"))
	gem := llmtest.NewGeminiServer(t, llmtest.WithGeminiAPIKey("g-test"))
	oaiA := llmtest.NewServer(t)
	ant.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "proposal from claude"} })
	gem.SetDefault(func(llmtest.GeminiRequest) llmtest.Reply { return llmtest.Reply{Text: "critique from gemini"} })
	oaiA.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "DECISION: ship it"} })

	cfg := withAnthropic(newConfig(t, "postgres"), ant)
	cfg.LLMProvider, cfg.LLMBaseURL, cfg.LLMModel = "openai-compatible", oaiA.URL(), "model-a"
	cfg.GeminiAPIKey, cfg.GeminiBaseURL = gem.APIKey(), gem.URL()
	// The critic names a config entry; the entry names Gemini.
	cfg.Models = map[string]config.ModelConfig{"third": {Provider: "gemini", Model: "gemini-test"}}
	d := startDaemon(t, cfg, nil)
	c := d.client("org-mix", "u1")
	setupTeam(t, c, map[string]map[string]any{
		"researcher": {"model": "anthropic/claude-test"},
		"critic":     {"model": "third"},
	})
	runID := c.startGroupRun("team", "Ship it?", "serial")
	if run := c.waitRun(runID, 30*time.Second); run.Status != store.RunCompleted || run.Output != "DECISION: ship it" {
		t.Fatalf("group run: %+v", run)
	}
	want := map[string][2]string{"alice": {"anthropic", "claude-test"}, "bob": {"gemini", "gemini-test"}, "carol": {"openai-compatible", "model-a"}}
	for agent, pm := range want {
		var runs struct {
			Runs []store.Run `json:"runs"`
		}
		c.must(http.StatusOK, "GET", "/api/runs?agent_id="+agent+"&group_id=team", nil, &runs)
		if len(runs.Runs) == 0 {
			t.Fatalf("%s has no run", agent)
		}
		for _, call := range llmCalls(t, c, runs.Runs[0].ID) {
			if call["provider"] != pm[0] || call["model"] != pm[1] {
				t.Errorf("%s's llm.called names %v/%v, want %s/%s", agent, call["provider"], call["model"], pm[0], pm[1])
			}
		}
	}
	if ant.RequestCount() == 0 || oaiA.RequestCount() == 0 || gem.RequestCount() == 0 {
		t.Fatalf("requests: anthropic %d, openai-compatible %d, gemini %d", ant.RequestCount(), oaiA.RequestCount(), gem.RequestCount())
	}
	// The API refuses a role whose model no provider serves.
	status, body := c.req("POST", "/api/roles", map[string]any{"role_id": "x", "name": "X", "model": "anthropic/"})
	if status != http.StatusBadRequest || !strings.Contains(string(body), "unknown_model") {
		t.Fatalf("unknown model: %d %s", status, body)
	}
}

// TestAnthropicRunThroughRuntime: a tool call then an answer on Anthropic,
// the prompt cache across two turns of one agent, and a 400 that fails the
// run with the provider's message.
func TestAnthropicRunThroughRuntime(t *testing.T) {
	ant := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-ant-test"))
	ant.SetDefault(llmtest.ToolThenText("read_file", `{"path":"notes.txt"}`, "the notes say hi"))
	cfg := withAnthropic(newConfig(t, "sqlite"), ant)
	cfg.LLMProvider, cfg.LLMModel = "anthropic", "claude-test"
	d := startDaemon(t, cfg, nil)
	c := d.client("org-ant", "u1")

	var runs []store.Run
	for i := range 2 {
		runID := c.createRun("", fmt.Sprintf("s%d", i), fmt.Sprintf("question %d", i))
		run := c.waitRun(runID, 20*time.Second)
		if run.Status != store.RunCompleted || run.Output != "the notes say hi" || run.Steps != 2 {
			t.Fatalf("run %d: %+v", i, run)
		}
		calls := llmCalls(t, c, runID)
		if len(calls) != 2 || calls[0]["provider"] != "anthropic" || calls[0]["model"] != "claude-test" {
			t.Fatalf("llm.called: %+v", calls)
		}
		runs = append(runs, run)
	}
	reqs := ant.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if !slices.Contains(r.CacheControl, "system[0]") || !slices.Contains(r.CacheControl, fmt.Sprintf("tools[%d]", len(r.Tools)-1)) {
			t.Errorf("request %d: cache_control at %v", i, r.CacheControl)
		}
	}
	// The second turn sent the same cached prefix and read it from the cache.
	if reqs[0].Messages[0].Content != reqs[2].Messages[0].Content {
		t.Errorf("system prompt changed between turns:\n%q\n%q", reqs[0].Messages[0].Content, reqs[2].Messages[0].Content)
	}
	if runs[0].Usage.CacheWriteTokens == 0 || runs[1].Usage.CacheReadTokens == 0 {
		t.Errorf("usage: first %+v, second %+v", runs[0].Usage, runs[1].Usage)
	}
	var stats struct {
		Tokens store.Usage `json:"tokens"`
	}
	c.must(http.StatusOK, "GET", "/api/metrics/summary", nil, &stats)
	if stats.Tokens.CacheReadTokens != runs[0].Usage.CacheReadTokens+runs[1].Usage.CacheReadTokens {
		t.Errorf("stats tokens %+v", stats.Tokens)
	}

	ant.Enqueue(llmtest.Reply{Status: 400, ErrorMessage: "messages.0.content: prompt is too long"})
	runID := c.createRun("", "s9", "fail please")
	run := c.waitRun(runID, 20*time.Second)
	if run.Status != store.RunFailed || run.Error == nil || !strings.Contains(run.Error.Message, "prompt is too long") {
		t.Fatalf("failed run: %+v (%+v)", run, run.Error)
	}
}

// TestRunResumesOnItsProvider: a run started on Anthropic (the default then)
// and checkpointed after step 1 resumes on Anthropic after a restart whose
// default provider is another, with its history intact.
func TestRunResumesOnItsProvider(t *testing.T) {
	ant := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-ant-test"))
	oai := llmtest.NewServer(t)
	ant.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "toolu_1", Name: "read_file", Arguments: `{"path":"x.txt"}`}}},
		llmtest.Reply{Text: "never seen", Delay: time.Minute}) // step 2 hangs until the daemon stops
	cfg := withAnthropic(newConfig(t, "postgres"), ant)
	cfg.LLMProvider, cfg.LLMModel = "anthropic", "claude-test"
	d := startDaemon(t, cfg, nil)
	c := d.client("org-resume", "u1")
	runID := c.createRun("", "s", "read x")
	deadline := time.Now().Add(20 * time.Second)
	for ant.RequestCount() < 2 { // step 1 is checkpointed before step 2 asks
		if time.Now().After(deadline) {
			t.Fatalf("step 2 never asked; %d requests", ant.RequestCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.stop()

	// Restarted with another default provider; Anthropic still configured.
	cfg2 := cfg
	cfg2.LLMProvider, cfg2.LLMBaseURL, cfg2.LLMModel = "openai-compatible", oai.URL(), "other-model"
	ant.Enqueue(llmtest.Reply{Text: "x says hello"})
	d2 := startDaemon(t, cfg2, nil)
	c2 := d2.client("org-resume", "u1")
	run := c2.waitRun(runID, 20*time.Second)
	if run.Status != store.RunCompleted || run.Output != "x says hello" {
		t.Fatalf("resumed run: %+v", run)
	}
	if n := oai.RequestCount(); n != 0 {
		t.Fatalf("the resumed run went to the new default: %d requests", n)
	}
	reqs := ant.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d anthropic requests, want 3", len(reqs))
	}
	before, after := reqs[1], reqs[2]
	if len(after.Messages) != len(before.Messages) || after.Model != "claude-test" {
		t.Fatalf("resumed request %+v, before %+v", after.Messages, before.Messages)
	}
	for i := range before.Messages {
		b, a := before.Messages[i], after.Messages[i]
		if a.Role != b.Role || a.Content != b.Content || a.ToolCallID != b.ToolCallID || len(a.ToolCalls) != len(b.ToolCalls) {
			t.Fatalf("message %d differs after resume: %+v vs %+v", i, a, b)
		}
	}
	if last := after.Messages[len(after.Messages)-1]; last.Role != llm.RoleTool || last.ToolCallID != "toolu_1" {
		t.Fatalf("history lacks the tool result: %+v", after.Messages)
	}
	calls := llmCalls(t, c2, runID)
	if last := calls[len(calls)-1]; last["provider"] != "anthropic" || last["model"] != "claude-test" {
		t.Fatalf("resumed llm.called: %+v", last)
	}
}

// TestDoctorChecksEveryModel: doctor makes one call per configured model.
func TestDoctorChecksEveryModel(t *testing.T) {
	ant := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-team"))
	oai := llmtest.NewServer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.config.json")
	body := fmt.Sprintf(`{"models": {
		"claude": {"provider": "anthropic", "model": "claude-test", "baseUrl": %q, "apiKeyEnv": "TEAM_KEY"},
		"broken": {"provider": "openai-compatible", "model": "m", "baseUrl": "http://%s/v1"}}}`, ant.AnthropicURL(), closedPort(t))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NO_COLOR=1", "OPENINTERN_URL=http://"+closedPort(t), "DATA_DIR="+dir, "DATABASE_URL=",
		"REDIS_URL="+testenv.RedisURL(t), "LLM_PROVIDER=openai-compatible", "LLM_BASE_URL="+oai.URL(), "LLM_MODEL=test-model",
		"LLM_API_KEY=", "TEAM_KEY=sk-team")
	res := runCLI(t, env, "doctor", "--config", path)
	for _, line := range []string{"✓ pass  llm ", "✓ pass  model:claude ", "✗ FAIL  model:broken "} {
		if !hasLinePrefix(res.stdout, line) {
			t.Errorf("no line %q:\n%s", line, res.stdout)
		}
	}
	if ant.RequestCount() != 1 || oai.RequestCount() != 1 || ant.Requests()[0].MaxTokens != 5 {
		t.Errorf("calls: anthropic %d, default %d", ant.RequestCount(), oai.RequestCount())
	}
}

// TestFallbackShowsInTrace: a named model whose provider keeps failing with
// 5xx is answered by its fallback, and the run's trace says so.
func TestFallbackShowsInTrace(t *testing.T) {
	ant := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-ant-test"))
	oai := llmtest.NewServer(t)
	oai.SetDefault(func(llmtest.ChatRequest) llmtest.Reply { return llmtest.Reply{Text: "answered by the fallback"} })
	cfg := withAnthropic(newConfig(t, "sqlite"), ant)
	cfg.LLMProvider, cfg.LLMBaseURL, cfg.LLMModel = "openai-compatible", oai.URL(), "backup"
	cfg.LLMMaxRetries = 1
	cfg.Models = map[string]config.ModelConfig{"strong": {Provider: "anthropic", Model: "claude-test", Fallbacks: []string{"openai-compatible/backup"}}}
	d := startDaemon(t, cfg, nil)
	c := d.client("org-fb", "u1")
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "a", "name": "A", "model": "strong"}, nil)
	ant.Enqueue(llmtest.Reply{Status: 529, RetryAfter: "0"}, llmtest.Reply{Status: 500, RetryAfter: "0", ErrorMessage: "internal boom"})
	runID := c.createRun("a", "s", "hi")
	run := c.waitRun(runID, 20*time.Second)
	if run.Status != store.RunCompleted || run.Output != "answered by the fallback" {
		t.Fatalf("run: %+v", run)
	}
	calls := llmCalls(t, c, runID)
	if len(calls) != 1 {
		t.Fatalf("llm.called: %+v", calls)
	}
	call := calls[0]
	failed, _ := call["failed"].([]any)
	if call["provider"] != "openai-compatible" || call["model"] != "backup" || call["fallback_from"] != "anthropic/claude-test" ||
		len(failed) != 1 || !strings.Contains(fmt.Sprint(failed[0]), "internal boom") {
		t.Fatalf("llm.called payload: %+v", call)
	}
	if ant.RequestCount() != 2 {
		t.Fatalf("primary tried %d times, want 2 (one retry)", ant.RequestCount())
	}
}

// TestThinkingInTraceAndSentBack: a model with extended thinking shows its
// thinking in llm.called and gets it back, signed, on the next step.
func TestThinkingInTraceAndSentBack(t *testing.T) {
	ant := llmtest.NewAnthropicServer(t, llmtest.WithAPIKey("sk-ant-test"))
	ant.Enqueue(llmtest.Reply{Thinking: "I should read x first.", ToolCalls: []llm.ToolCall{{ID: "toolu_1", Name: "read_file", Arguments: `{"path":"x"}`}}},
		llmtest.Reply{Text: "done"})
	cfg := withAnthropic(newConfig(t, "sqlite"), ant)
	cfg.Models = map[string]config.ModelConfig{"deep": {Provider: "anthropic", Model: "claude-test", Thinking: &config.ModelThinking{BudgetTokens: 2048}}}
	d := startDaemon(t, cfg, nil)
	c := d.client("org-think", "u1")
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "a", "name": "A", "model": "deep"}, nil)
	runID := c.createRun("a", "s", "read x")
	if run := c.waitRun(runID, 20*time.Second); run.Status != store.RunCompleted || run.Output != "done" {
		t.Fatalf("run: %+v", run)
	}
	calls := llmCalls(t, c, runID)
	if len(calls) != 2 || !strings.Contains(fmt.Sprint(calls[0]["thinking"]), "I should read x first.") || calls[0]["content"] != "" {
		t.Fatalf("llm.called: %+v", calls)
	}
	second := ant.Requests()[1]
	var answer llm.Message
	for _, m := range second.Messages {
		if m.Role == llm.RoleAssistant {
			answer = m
		}
	}
	if len(answer.Thinking) != 1 || answer.Thinking[0].Text != "I should read x first." || answer.Content != "" {
		t.Fatalf("thinking sent back as %+v", answer)
	}
}
