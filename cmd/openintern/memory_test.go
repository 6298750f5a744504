package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytest"
	"github.com/openintern/openintern/store"
)

type apiMemory struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Text     string            `json:"text"`
	AgentID  string            `json:"agent_id"`
	Metadata map[string]string `json:"metadata"`
	Chunks   int               `json:"chunks"`
}

type apiSearch struct {
	Results []struct {
		ID      string `json:"id"`
		Snippet string `json:"snippet"`
		Type    string `json:"type"`
	} `json:"results"`
}

// ingest posts a multipart file to /api/memories/ingest.
func (c *client) ingest(name, content string) (int, []byte) {
	c.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, err := w.CreateFormFile("file", name)
	if err != nil {
		c.t.Fatal(err)
	}
	_, _ = io.WriteString(fw, content)
	_ = w.Close()
	req, _ := http.NewRequest("POST", c.base+"/api/memories/ingest", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("x-org-id", c.scope.OrgID)
	req.Header.Set("x-user-id", c.scope.UserID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestMemoryAPI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), nil)
			c := d.client("acme", "alice")
			other := d.client("globex", "alice")

			var ep, ar apiMemory
			c.must(http.StatusCreated, "POST", "/api/memories", map[string]any{"type": "episodic", "text": "We met the plumber on Tuesday about the leaking boiler.",
				"agent_id": "main", "metadata": map[string]string{"source": "chat"}, "importance": 0.7}, &ep)
			c.must(http.StatusCreated, "POST", "/api/memories", map[string]any{"type": "archival", "text": "Boiler manual: reset the boiler by holding the red button for ten seconds."}, &ar)
			if ep.ID == "" || ep.Type != "episodic" || ar.Type != "archival" || ep.Chunks != 1 {
				t.Fatalf("created %+v %+v", ep, ar)
			}
			var got apiMemory
			c.must(http.StatusOK, "GET", "/api/memories/"+ep.ID, nil, &got)
			if got.Text != "We met the plumber on Tuesday about the leaking boiler." || got.Metadata["source"] != "chat" || got.AgentID != "main" {
				t.Fatalf("get = %+v", got)
			}

			var all, onlyArch apiSearch
			c.must(http.StatusOK, "GET", "/api/memories/search?q=boiler&top_k=5", nil, &all)
			if len(all.Results) != 2 {
				t.Fatalf("search: %+v", all)
			}
			c.must(http.StatusOK, "GET", "/api/memories/search?q=boiler&type=archival", nil, &onlyArch)
			if len(onlyArch.Results) != 1 || onlyArch.Results[0].ID != ar.ID || onlyArch.Results[0].Snippet == "" {
				t.Fatalf("type-filtered search: %+v", onlyArch)
			}

			// Another scope: 404 on get and delete, nothing from search.
			if status, body := other.req("GET", "/api/memories/"+ep.ID, nil); status != http.StatusNotFound {
				t.Fatalf("other scope get: %d %s", status, body)
			}
			if status, body := other.req("DELETE", "/api/memories/"+ep.ID, nil); status != http.StatusNotFound {
				t.Fatalf("other scope delete: %d %s", status, body)
			}
			var none apiSearch
			other.must(http.StatusOK, "GET", "/api/memories/search?q=boiler", nil, &none)
			if len(none.Results) != 0 {
				t.Fatalf("other scope search found %+v", none)
			}

			// Bad input.
			for _, bad := range []struct{ method, path, body string }{
				{"POST", "/api/memories", `{"text":""}`},
				{"POST", "/api/memories", `{"text":"x","type":"core"}`},
				{"POST", "/api/memories", `{"text":"x","importance":3}`},
				{"POST", "/api/memories", `not json`},
				{"GET", "/api/memories/search?q=", ""},
				{"GET", "/api/memories/search?q=boiler&top_k=0", ""},
				{"GET", "/api/memories/search?q=boiler&top_k=abc", ""},
				{"PUT", "/api/agents/main/core-memory", `{"blocks":[{"label":"notes","value":"` + strings.Repeat("x", 5000) + `"}]}`},
			} {
				var body any
				if bad.body != "" {
					body = bad.body
				}
				if status, raw := c.req(bad.method, bad.path, body); status != http.StatusBadRequest {
					t.Errorf("%s %s %.40s: status %d, want 400: %s", bad.method, bad.path, bad.body, status, raw)
				}
			}

			c.must(http.StatusOK, "DELETE", "/api/memories/"+ep.ID, nil, nil)
			if status, _ := c.req("GET", "/api/memories/"+ep.ID, nil); status != http.StatusNotFound {
				t.Fatalf("get after delete: %d", status)
			}
			c.must(http.StatusOK, "GET", "/api/memories/search?q=plumber", nil, &none)
			for _, r := range none.Results {
				if r.ID == ep.ID {
					t.Fatalf("deleted memory still found: %+v", none)
				}
			}

			// Core memory.
			var core struct {
				AgentID string `json:"agent_id"`
				Blocks  []struct {
					Label string `json:"label"`
					Value string `json:"value"`
				} `json:"blocks"`
			}
			c.must(http.StatusOK, "PUT", "/api/agents/main/core-memory", `{"blocks":[{"label":"human","value":"Alice likes tea."}]}`, nil)
			c.must(http.StatusOK, "GET", "/api/agents/main/core-memory", nil, &core)
			found := false
			for _, b := range core.Blocks {
				found = found || (b.Label == "human" && b.Value == "Alice likes tea.")
			}
			if !found {
				t.Fatalf("core memory = %+v", core)
			}
			if status, body := c.req("GET", "/api/agents/ghost/core-memory", nil); status != http.StatusNotFound {
				t.Fatalf("core memory of an unknown agent: %d %s", status, body)
			}
			if status, body := c.req("PUT", "/api/agents/ghost/core-memory", `{"blocks":[{"label":"human","value":"x"}]}`); status != http.StatusNotFound {
				t.Fatalf("core memory PUT of an unknown agent: %d %s", status, body)
			}
			other.must(http.StatusOK, "GET", "/api/agents/main/core-memory", nil, &core)
			for _, b := range core.Blocks {
				if strings.Contains(b.Value, "Alice likes tea") {
					t.Fatalf("another scope sees the core block: %+v", core)
				}
			}

			// Ingest a markdown file into archival memory.
			status, raw := c.ingest("garden.md", "# Garden\n\nWater the tomatoes every morning.\n\nThe basil needs shade after noon.")
			if status != http.StatusCreated {
				t.Fatalf("ingest: %d %s", status, raw)
			}
			var ing apiMemory
			if err := json.Unmarshal(raw, &ing); err != nil || ing.Type != "archival" {
				t.Fatalf("ingest: %s %v", raw, err)
			}
			var tom apiSearch
			c.must(http.StatusOK, "GET", "/api/memories/search?q=tomatoes&type=archival", nil, &tom)
			if len(tom.Results) == 0 || tom.Results[0].ID != ing.ID {
				t.Fatalf("ingested file not found: %+v", tom)
			}
			// A file larger than the 1 MiB API body limit is still accepted: uploads have their own.
			big := strings.Repeat("Line about the orchard and its apple trees.\n\n", 50000)
			if status, raw := c.ingest("orchard.md", big); status != http.StatusCreated {
				t.Fatalf("ingest of a %d-byte file: %d %.200s", len(big), status, raw)
			}
			if status, raw := c.ingest("image.png", "\x89PNG\x00\x01"); status != http.StatusBadRequest {
				t.Fatalf("ingest png: %d %s", status, raw)
			}
			// An upload is a multipart form; JSON there is the wrong content type.
			if status, raw := c.req("POST", "/api/memories/ingest", `{}`); status != http.StatusUnsupportedMediaType {
				t.Fatalf("ingest without file: %d %s", status, raw)
			}
		})
	}
}

// TestMemoryRecalledInAnotherSession: a fact the agent is told in one
// session is found in another session of the same scope, with the offline
// model's tool use and with an OpenAI-compatible model on a test server; a
// session of another scope does not find it.
func TestMemoryRecalledInAnotherSession(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind+"/offline", func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), nil)
			c := d.client("acme", "alice")
			run := c.waitRun(c.createRun("main", "monday", "Please remember that the wifi password is gooseberry42"), 15*time.Second)
			if run.Status != store.RunCompleted || !strings.Contains(run.Output, "memory_write") {
				t.Fatalf("remember run: %+v", run)
			}
			run = c.waitRun(c.createRun("main", "friday", "what do you remember about the wifi password"), 15*time.Second)
			if run.Status != store.RunCompleted || !strings.Contains(run.Output, "gooseberry42") {
				t.Fatalf("recall run: %+v", run)
			}
			o := d.client("globex", "alice")
			run = o.waitRun(o.createRun("main", "friday", "what do you remember about the wifi password"), 15*time.Second)
			if run.Status != store.RunCompleted || strings.Contains(run.Output, "gooseberry42") {
				t.Fatalf("another scope recalled the fact: %+v", run)
			}
		})
		t.Run(kind+"/openai", func(t *testing.T) {
			srv := llmtest.NewServer(t)
			d := startDaemon(t, newConfig(t, kind), srv.Provider())
			c := d.client("acme", "alice")
			srv.Enqueue(
				llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "w1", Name: "memory_write", Arguments: `{"text":"The office door code is 5813.","type":"episodic"}`}}},
				llmtest.Reply{Text: "Noted."},
			)
			run := c.waitRun(c.createRun("main", "s1", "The office door code is 5813, keep it in mind."), 15*time.Second)
			if run.Status != store.RunCompleted {
				t.Fatalf("remember run: %+v", run)
			}
			srv.Enqueue(
				llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "s1", Name: "memory_search", Arguments: `{"query":"office door code"}`}}},
				llmtest.Reply{Text: "It is in my memory."},
			)
			before := srv.RequestCount()
			run = c.waitRun(c.createRun("main", "s2", "What is the office door code?"), 15*time.Second)
			if run.Status != store.RunCompleted {
				t.Fatalf("recall run: %+v", run)
			}
			reqs := srv.Requests()[before:]
			var toolResult string
			for _, r := range reqs {
				for _, m := range r.Messages {
					if m.Role == llm.RoleTool {
						toolResult += m.Content
					}
				}
			}
			if !strings.Contains(toolResult, "5813") {
				t.Fatalf("memory_search result in the second session lacks the fact: %q (requests %d)", toolResult, len(reqs))
			}
			if !strings.Contains(fmt.Sprint(reqs[0].Messages), "5813") {
				t.Logf("note: the fact was not recalled into the first call's context")
			}
		})
	}
}

// summariesOf reads the episodic summaries that cover runs (given in the
// order they were created): a summary is stored under the id of the first
// run it covers and lists them all. It returns each covered run's summary,
// failing the test when a run is covered twice or by another agent's.
func summariesOf(t *testing.T, c *client, runs []string) map[string]apiMemory {
	t.Helper()
	by := map[string]apiMemory{}
	for _, id := range runs {
		if _, done := by[id]; done {
			continue
		}
		status, body := c.req("GET", "/api/memories/mem_"+id, nil)
		if status == http.StatusNotFound {
			continue
		}
		var m apiMemory
		if status != http.StatusOK || json.Unmarshal(body, &m) != nil {
			t.Fatalf("GET mem_%s: %d %s", id, status, body)
		}
		covered := []string{m.Metadata["run_id"]}
		if ids := m.Metadata["run_ids"]; ids != "" {
			covered = strings.Split(ids, ",")
		}
		if covered[0] != id || m.Type != "episodic" || m.Metadata["kind"] != "run_summary" {
			t.Fatalf("summary mem_%s = %+v", id, m)
		}
		for _, r := range covered {
			if prev, twice := by[r]; twice {
				t.Fatalf("run %s is in two summaries, %s and %s", r, prev.ID, m.ID)
			}
			by[r] = m
		}
	}
	return by
}

// TestRunSummariesWaitInTheStore: a run's episodic summary is queued in the
// transaction that completes the run. While the embedder is down the
// summaries wait (the runs still complete), a restart keeps them, and once
// the embedder is back each run is in exactly one summary: the session's
// twelve runs in one, under the id of its first run.
func TestRunSummariesWaitInTheStore(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			cfg := newConfig(t, kind)
			down := startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t), Embedder: memorytest.DownEmbedder{HashEmbedder: memory.NewHashEmbedder(0)}})
			c := down.client("acme", "alice")
			const runs = 12
			inputs := map[string]string{}
			var ids []string
			for i := range runs {
				in := fmt.Sprintf("remember parcel %d goes to locker %d", i, 300+i)
				id := c.createRun("main", "s", in)
				// One at a time, so that the runs end in the order created.
				if r := c.waitRun(id, 15*time.Second); r.Status != store.RunCompleted {
					t.Fatalf("run %s: %+v", id, r)
				}
				inputs[id] = in
				ids = append(ids, id)
			}
			queued, err := down.Store.PendingSummaries(ctx, 100)
			if err != nil || len(queued) != runs {
				t.Fatalf("%d summaries queued while the embedder is down, want %d (%v)", len(queued), runs, err)
			}
			if got := summariesOf(t, c, ids); len(got) != 0 {
				t.Fatalf("%d runs summarised without an embedder", len(got))
			}
			down.stop()

			up := startDaemon(t, cfg, nil)
			c = up.client("acme", "alice")
			deadline := time.Now().Add(20 * time.Second)
			var got map[string]apiMemory
			for {
				if got = summariesOf(t, c, ids); len(got) == runs {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d runs summarised after the restart", len(got), runs)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for id, in := range inputs {
				m := got[id]
				if m.ID != "mem_"+ids[0] || m.AgentID != "main" || !strings.Contains(m.Text, in) || !strings.Contains(m.Text, "Run "+id+".") {
					t.Fatalf("summary of %s = %+v, want the session's one summary mem_%s", id, m, ids[0])
				}
			}
			for time.Now().Before(deadline) {
				if left, err := up.Store.PendingSummaries(ctx, 100); err == nil && len(left) == 0 {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if left, err := up.Store.PendingSummaries(ctx, 100); err != nil || len(left) != 0 {
				t.Fatalf("%d summaries still queued (%v)", len(left), err)
			}
			var found apiSearch
			c.must(http.StatusOK, "GET", "/api/memories/search?q=parcel+7+locker&top_k=20&type=episodic", nil, &found)
			if len(found.Results) != 1 || found.Results[0].ID != "mem_"+ids[0] {
				t.Fatalf("search found %+v, want the session's summary once", found.Results)
			}
		})
	}
}

// TestRunSummariesShareASessionsBurst: the runs of a session that follow
// each other within memory.SessionPause share one summary, of at most
// memory.SessionRuns runs; a run after a pause starts the next, and another
// session's runs are never in the same one.
func TestRunSummariesShareASessionsBurst(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), nil)
			c := d.client("acme", "alice")
			run := func(session string, i int) string {
				id := c.createRun("main", session, fmt.Sprintf("note %s %d", session, i))
				if r := c.waitRun(id, 15*time.Second); r.Status != store.RunCompleted {
					t.Fatalf("run %s: %+v", id, r)
				}
				return id
			}
			var burst, other []string
			for i := range memory.SessionRuns + 3 {
				burst = append(burst, run("a", i))
				if i%4 == 0 {
					other = append(other, run("b", i))
				}
			}
			time.Sleep(memory.SessionPause + 500*time.Millisecond)
			late := run("a", 99)
			all := append(append(slices.Clone(burst), other...), late)
			deadline := time.Now().Add(20 * time.Second)
			var got map[string]apiMemory
			for {
				if got = summariesOf(t, c, all); len(got) == len(all) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d runs summarised", len(got), len(all))
				}
				time.Sleep(50 * time.Millisecond)
			}
			want := map[string]string{late: "mem_" + late}
			for i, id := range burst {
				want[id] = "mem_" + burst[i/memory.SessionRuns*memory.SessionRuns]
			}
			for _, id := range other {
				want[id] = "mem_" + other[0]
			}
			for id, m := range want {
				if got[id].ID != m {
					t.Fatalf("run %s (burst %d, other %d) is in summary %s (%s), want %s", id, slices.Index(burst, id), slices.Index(other, id),
						got[id].ID, got[id].Metadata["run_ids"], m)
				}
			}
		})
	}
}

// gatedEmbedder holds the embedding of run summaries until open is closed.
type gatedEmbedder struct {
	*memory.HashEmbedder
	open chan struct{}
}

func (g gatedEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	for _, t := range texts {
		if strings.HasPrefix(t, "Run run_") {
			select {
			case <-g.open:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			break
		}
	}
	return g.HashEmbedder.Embed(ctx, texts)
}

// TestRunSummariesNotDroppedWhenWriterFallsBehind: while the summary writer
// is stuck, more runs complete than its channel holds; once it moves again,
// every run is in exactly one summary.
func TestRunSummariesNotDroppedWhenWriterFallsBehind(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			gate := gatedEmbedder{memory.NewHashEmbedder(0), make(chan struct{})}
			d := startMain(t, &daemon.Main{Config: newConfig(t, kind), Logger: testLogger(t), Embedder: gate})
			c := d.client("acme", "alice")
			const agents, perAgent = 4, 80 // 320 runs: more than the writer's channel (256)
			for a := range agents {
				c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": fmt.Sprintf("w%d", a), "name": "w"}, nil)
			}
			var ids []string
			for i := range agents * perAgent {
				ids = append(ids, c.createRun(fmt.Sprintf("w%d", i%agents), "s", fmt.Sprintf("hello %d", i)))
			}
			for _, id := range ids {
				if r := c.waitRun(id, 30*time.Second); r.Status != store.RunCompleted {
					t.Fatalf("run %s: %+v", id, r)
				}
			}
			close(gate.open)
			deadline := time.Now().Add(30 * time.Second)
			for {
				left, err := d.Store.PendingSummaries(ctx, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d summaries still queued", len(left))
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Each agent's runs are in its session's summaries, none twice.
			got := summariesOf(t, c, ids)
			for i, id := range ids {
				m, ok := got[id]
				if !ok || m.AgentID != fmt.Sprintf("w%d", i%agents) || !strings.Contains(m.Text, fmt.Sprintf("hello %d\n", i)) {
					t.Fatalf("summary of %s (hello %d) = %+v (found: %v)", id, i, m, ok)
				}
			}
		})
	}
}

// TestCoreMemoryAndHistoryInPrompt: a turn's system prompt carries the
// agent's core memory blocks and its messages the session's earlier turns,
// on both stores (PostgreSQL reads them with the claim, SQLite after it),
// and a block changed between turns is the one the next turn sees.
func TestCoreMemoryAndHistoryInPrompt(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.NewServer(t)
			srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
				return llmtest.Reply{Text: "answer to " + req.Messages[len(req.Messages)-1].Content}
			})
			d := startDaemon(t, newConfig(t, kind), srv.Provider())
			c := d.client("acme", "alice")
			c.must(http.StatusOK, "PUT", "/api/agents/main/core-memory", `{"blocks":[{"label":"human","value":"Alice likes tea."}]}`, nil)
			if run := c.waitRun(c.createRun("main", "s1", "first question"), 15*time.Second); run.Status != store.RunCompleted {
				t.Fatalf("first run: %+v", run)
			}
			c.must(http.StatusOK, "PUT", "/api/agents/main/core-memory", `{"blocks":[{"label":"human","value":"Alice now prefers coffee."}]}`, nil)
			before := srv.RequestCount()
			if run := c.waitRun(c.createRun("main", "s1", "second question"), 15*time.Second); run.Status != store.RunCompleted {
				t.Fatalf("second run: %+v", run)
			}
			reqs := srv.Requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("%d model calls for the second run, want 1", len(reqs))
			}
			msgs := reqs[0].Messages
			if msgs[0].Role != llm.RoleSystem || !strings.Contains(msgs[0].Content, "Alice now prefers coffee.") ||
				strings.Contains(msgs[0].Content, "Alice likes tea.") {
				t.Fatalf("system prompt without the current core memory: %q", msgs[0].Content)
			}
			var turns []string
			for _, m := range msgs[1:] {
				if m.Role != llm.RoleSystem {
					turns = append(turns, string(m.Role)+": "+m.Content)
				}
			}
			want := []string{"user: first question", "assistant: answer to first question", "user: second question"}
			if fmt.Sprint(turns) != fmt.Sprint(want) {
				t.Fatalf("conversation %q, want %q", turns, want)
			}
		})
	}
}
