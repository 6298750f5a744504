package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/memory"
)

const (
	testEmbedModel = "test-embed-1"
	testEmbedKey   = "sk-embed-test"
	testEmbedDim   = 64
)

// embeddingsServer is an OpenAI-compatible POST /v1/embeddings on 127.0.0.1.
// Its vectors come from a local hashed embedder, so similar texts get similar
// vectors and searches through it rank like real ones; a request without the
// expected key is a 401, like OpenAI's. While held, requests that embed
// anything but a search query (queries are the texts in queries) wait.
type embeddingsServer struct {
	srv *httptest.Server
	emb *memory.HashEmbedder
	key string

	mu      sync.Mutex
	models  []string
	auths   []string
	inputs  [][]string
	held    int // requests waiting for release
	release chan struct{}
	queries map[string]bool
}

func newEmbeddingsServer(t *testing.T, dim int) *embeddingsServer {
	t.Helper()
	es := &embeddingsServer{emb: memory.NewHashEmbedder(dim), key: testEmbedKey, queries: map[string]bool{}}
	es.srv = httptest.NewServer(http.HandlerFunc(es.serve))
	t.Cleanup(func() {
		es.unhold()
		es.srv.Close()
	})
	return es
}

func (es *embeddingsServer) baseURL() string { return es.srv.URL + "/v1" }

func (es *embeddingsServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Input) == 0 {
		http.Error(w, `{"error":{"message":"'input' is required"}}`, http.StatusBadRequest)
		return
	}
	es.mu.Lock()
	es.models = append(es.models, req.Model)
	es.auths = append(es.auths, r.Header.Get("Authorization"))
	es.inputs = append(es.inputs, req.Input)
	wait := es.release
	if wait != nil && !es.queries[req.Input[0]] {
		es.held++
	} else {
		wait = nil
	}
	es.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		}
	}
	if r.Header.Get("Authorization") != "Bearer "+es.key {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}`))
		return
	}
	vecs, _ := es.emb.Embed(r.Context(), req.Input)
	data := make([]map[string]any, len(vecs))
	for i, v := range vecs {
		scaled := make([]float64, len(v))
		for j, x := range v {
			scaled[j] = 2 * float64(x)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": scaled}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": len(req.Input), "total_tokens": len(req.Input)}})
}

// hold makes non-query requests wait until unhold.
func (es *embeddingsServer) hold(queries ...string) {
	es.mu.Lock()
	defer es.mu.Unlock()
	es.release = make(chan struct{})
	for _, q := range queries {
		es.queries[q] = true
	}
}

func (es *embeddingsServer) unhold() {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.release != nil {
		close(es.release)
		es.release = nil
	}
}

func (es *embeddingsServer) heldCount() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.held
}

// embedded counts the texts of requests that were not search queries.
func (es *embeddingsServer) embedded() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	n := 0
	for _, in := range es.inputs {
		if !es.queries[in[0]] {
			n += len(in)
		}
	}
	return n
}

func (es *embeddingsServer) requests() (models, auths []string) {
	es.mu.Lock()
	defer es.mu.Unlock()
	return slices.Clone(es.models), slices.Clone(es.auths)
}

// withOpenAIEmbedder points cfg at es.
func withOpenAIEmbedder(cfg config.Config, es *embeddingsServer) config.Config {
	cfg.EmbeddingProvider = config.EmbeddingOpenAI
	cfg.EmbeddingModel = testEmbedModel
	cfg.EmbeddingBaseURL = es.baseURL()
	cfg.EmbeddingAPIKey = testEmbedKey
	cfg.EmbeddingDim = testEmbedDim
	return cfg
}

type searchHit struct {
	ID      string   `json:"id"`
	FoundBy []string `json:"found_by"`
}

func (c *client) search(q, mode string) []searchHit {
	c.t.Helper()
	var out struct {
		Results []searchHit `json:"results"`
	}
	c.must(http.StatusOK, "GET", "/api/memories/search?"+url.Values{"q": {q}, "mode": {mode}, "top_k": {"10"}}.Encode(), nil, &out)
	return out.Results
}

func TestEmbedderOpenAICompatibleEndToEnd(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			es := newEmbeddingsServer(t, testEmbedDim)
			d := startDaemon(t, withOpenAIEmbedder(newConfig(t, kind), es), nil)
			if d.Embedder.Model() != "openai:"+testEmbedModel || d.Embedder.Dim() != testEmbedDim {
				t.Fatalf("daemon embedder %s/%d", d.Embedder.Model(), d.Embedder.Dim())
			}
			c := d.client("acme", "emb")
			var boiler, garden apiMemory
			c.must(http.StatusCreated, "POST", "/api/memories", map[string]any{"type": "archival", "text": "The boiler in the basement leaks water near the pressure valve."}, &boiler)
			c.must(http.StatusCreated, "POST", "/api/memories", map[string]any{"type": "archival", "text": "Plant tomatoes in the garden after the last frost of spring."}, &garden)

			// Inflected words the full-text leg may stem differently; the
			// vector leg's character trigrams still find the boiler memory.
			hits := c.search("leaking boilers", memory.ModeHybrid)
			if len(hits) == 0 || hits[0].ID != boiler.ID || !slices.Contains(hits[0].FoundBy, "vector") {
				t.Fatalf("hybrid search: %+v, want %s first, found by the vector leg", hits, boiler.ID)
			}
			vec := c.search("tomato gardening", memory.ModeVector)
			if len(vec) == 0 || vec[0].ID != garden.ID || !slices.Equal(vec[0].FoundBy, []string{"vector"}) {
				t.Fatalf("vector search: %+v, want %s first", vec, garden.ID)
			}

			models, auths := es.requests()
			if len(models) < 4 { // two writes, two queries
				t.Fatalf("%d embeddings requests, want at least 4", len(models))
			}
			for i := range models {
				if models[i] != testEmbedModel || auths[i] != "Bearer "+testEmbedKey {
					t.Fatalf("request %d: model %q, authorization %q", i, models[i], auths[i])
				}
			}
		})
	}
}

func TestEmbedderRefusedKeyFailsWriteWithoutRetry(t *testing.T) {
	es := newEmbeddingsServer(t, testEmbedDim)
	es.key = "sk-other" // the daemon's key is refused
	d := startDaemon(t, withOpenAIEmbedder(newConfig(t, "sqlite"), es), nil)
	c := d.client("acme", "emb")
	status, body := c.req("POST", "/api/memories", map[string]any{"text": "anything"})
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"code":"embedder_unavailable"`) {
		t.Fatalf("write with a refused embeddings key: %d %s", status, body)
	}
	if _, auths := es.requests(); len(auths) != 1 {
		t.Fatalf("%d embeddings requests: a 401 must not be retried", len(auths))
	}
	// Searching still works from full text; a vector-only search cannot.
	if status, body := c.req("GET", "/api/memories/search?q=anything", nil); status != http.StatusOK {
		t.Fatalf("hybrid search with the embedder refusing: %d %s", status, body)
	}
	if status, body := c.req("GET", "/api/memories/search?q=anything&mode=vector", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("vector search with the embedder refusing: %d %s", status, body)
	}
}

// runInProcess runs the CLI in this process with exactly env as its environment.
func runInProcess(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	t.Logf("openintern %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func storeEnv(cfg config.Config) map[string]string {
	return map[string]string{"DATA_DIR": cfg.DataDir, "DATABASE_URL": cfg.DatabaseURL, "NO_COLOR": "1", "LOG_LEVEL": "warn"}
}

func embeddingEnv(env map[string]string, es *embeddingsServer, model string) map[string]string {
	out := map[string]string{"EMBEDDING_PROVIDER": "openai", "EMBEDDING_MODEL": model, "EMBEDDING_BASE_URL": es.baseURL(),
		"EMBEDDING_DIM": "64", "EMBEDDING_API_KEY": testEmbedKey}
	for k, v := range env {
		out[k] = v
	}
	return out
}

type reembedJSON struct {
	Model      string `json:"model"`
	Dim        int    `json:"dim"`
	Reembedded int    `json:"reembedded"`
}

func reembedCLI(t *testing.T, env map[string]string) reembedJSON {
	t.Helper()
	res := runInProcess(t, env, "memory", "reembed", "--json")
	if res.code != 0 {
		t.Fatalf("memory reembed: exit %d: %s", res.code, res.stderr)
	}
	var out reembedJSON
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("memory reembed --json: %v: %q", err, res.stdout)
	}
	return out
}

// TestReEmbedAfterEmbedderChange writes memories with the local embedder,
// restarts on an OpenAI-compatible one and checks that the daemon re-embeds
// them in the background (searches keep working meanwhile, and never compare
// vectors of two models), then that `memory reembed` does the same for yet
// another model and a second run has nothing to do.
func TestReEmbedAfterEmbedderChange(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			cfg := newConfig(t, kind)
			local := startDaemon(t, cfg, nil)
			c := local.client("acme", "emb")
			texts := []string{
				"The boiler in the basement leaks water near the pressure valve.",
				"Plant tomatoes in the garden after the last frost of spring.",
				strings.Repeat("The quarterly budget review covers travel, hardware and the new office lease. ", 40),
			}
			ids := make([]string, len(texts))
			chunks := 0
			for i, text := range texts {
				var m apiMemory
				c.must(http.StatusCreated, "POST", "/api/memories", map[string]any{"type": "archival", "text": text}, &m)
				ids[i], chunks = m.ID, chunks+m.Chunks
			}
			if chunks < 4 {
				t.Fatalf("%d chunks; the long memory should have several", chunks)
			}
			local.stop()

			es := newEmbeddingsServer(t, testEmbedDim)
			es.hold("leaking boilers", "boiler")
			remote := startDaemon(t, withOpenAIEmbedder(cfg, es), nil)
			waitFor(t, 10*time.Second, "the background re-embedding to call the embeddings server", func() bool { return es.heldCount() > 0 })
			c = remote.client("acme", "emb")
			// Meanwhile: no vector of the new model exists, so the vector leg
			// finds nothing (the local vectors are never compared with the
			// new model's), and the full-text leg still works.
			if hits := c.search("leaking boilers", memory.ModeVector); len(hits) != 0 {
				t.Fatalf("vector search before re-embedding found %+v", hits)
			}
			if hits := c.search("boiler", memory.ModeHybrid); len(hits) != 1 || hits[0].ID != ids[0] || !slices.Equal(hits[0].FoundBy, []string{"fulltext"}) {
				t.Fatalf("hybrid search during re-embedding: %+v", hits)
			}
			es.unhold()
			waitFor(t, 10*time.Second, "vector search of the new model to find the memory", func() bool {
				hits := c.search("leaking boilers", memory.ModeVector)
				return len(hits) > 0 && hits[0].ID == ids[0]
			})
			waitFor(t, 5*time.Second, "every chunk to be re-embedded", func() bool { return es.embedded() >= chunks })
			if got := es.embedded(); got != chunks {
				t.Fatalf("the daemon re-embedded %d texts, want the %d chunks", got, chunks)
			}
			if hits := c.search("leaking boilers", memory.ModeHybrid); len(hits) == 0 || hits[0].ID != ids[0] ||
				!slices.Contains(hits[0].FoundBy, "vector") || !slices.Contains(hits[0].FoundBy, "fulltext") {
				t.Fatalf("hybrid search after re-embedding: %+v", hits)
			}
			remote.stop()

			env := storeEnv(cfg)
			if out := reembedCLI(t, embeddingEnv(env, es, testEmbedModel)); out.Reembedded != 0 || out.Model != "openai:"+testEmbedModel {
				t.Fatalf("reembed after the daemon did it: %+v, want 0", out)
			}
			other := embeddingEnv(env, es, "test-embed-2")
			// The key through the fallback to LLM_API_KEY, which holds when the
			// LLM and the embeddings live on one server (nothing here calls the LLM).
			delete(other, "EMBEDDING_API_KEY")
			other["LLM_API_KEY"] = testEmbedKey
			other["LLM_BASE_URL"] = es.baseURL()
			if out := reembedCLI(t, other); out.Reembedded != chunks || out.Model != "openai:test-embed-2" || out.Dim != testEmbedDim {
				t.Fatalf("reembed for a new model: %+v, want %d chunks", out, chunks)
			}
			if out := reembedCLI(t, other); out.Reembedded != 0 {
				t.Fatalf("second reembed: %+v, want 0", out)
			}
			models, auths := es.requests()
			if !slices.Contains(models, "test-embed-2") || slices.ContainsFunc(auths, func(a string) bool { return a != "Bearer "+testEmbedKey }) {
				t.Fatalf("models %v, authorizations %v", models, auths)
			}
			if out := reembedCLI(t, env); out.Reembedded != 0 || out.Model != "hash-v1-1024" {
				t.Fatalf("the local model's vectors were kept, yet: %+v", out)
			}
		})
	}
}

func TestReembedCommandErrors(t *testing.T) {
	res := runInProcess(t, map[string]string{"DATA_DIR": t.TempDir()}, "memory", "reembed")
	assertOneLineError(t, res, "no store at")
	res = runInProcess(t, map[string]string{"DATA_DIR": t.TempDir(), "EMBEDDING_PROVIDER": "openai", "EMBEDDING_DIM": "8"}, "memory", "reembed")
	if res.code != 2 || !strings.Contains(res.stderr, "EMBEDDING_MODEL") {
		t.Fatalf("openai without a model: exit %d, %q", res.code, res.stderr)
	}

	cfg := newConfig(t, "sqlite")
	d := startDaemon(t, cfg, nil)
	d.client("acme", "emb").must(http.StatusCreated, "POST", "/api/memories", map[string]any{"text": "hello there"}, nil)
	d.stop()
	es := newEmbeddingsServer(t, testEmbedDim)
	es.key = "sk-other"
	res = runInProcess(t, embeddingEnv(storeEnv(cfg), es, testEmbedModel), "memory", "reembed")
	assertOneLineError(t, res, "HTTP 401: Incorrect API key provided")
	if !strings.Contains(res.stderr, "0 chunks done") {
		t.Fatalf("the error does not say how far it got: %q", res.stderr)
	}
}

func TestEmbeddingFlagsBeatEnv(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().String("config", "", "")
	addServeFlags(cmd.Flags())
	if err := cmd.ParseFlags([]string{"--embedding-model", "flag-model", "--embedding-dim", "32"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EMBEDDING_PROVIDER": "openai", "EMBEDDING_MODEL": "env-model", "EMBEDDING_DIM": "5000", "EMBEDDING_API_KEY": "sk-e"}
	cfg, err := loadConfig(cmd, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the flag's dimension should replace the env's invalid one: %v", err)
	}
	if cfg.EmbeddingModel != "flag-model" || cfg.EmbeddingDim != 32 || cfg.EmbeddingProvider != "openai" {
		t.Fatalf("cfg: %q %q %d", cfg.EmbeddingProvider, cfg.EmbeddingModel, cfg.EmbeddingDim)
	}
	emb, ok := daemon.NewEmbedder(cfg, nil).(*memory.OpenAIEmbedder)
	if !ok || emb.BaseURL != config.DefaultEmbeddingBaseURL || emb.APIKey != "sk-e" || emb.Model() != "openai:flag-model" || emb.Timeout != 30*time.Second {
		t.Fatalf("embedder from config: %+v", emb)
	}
	if local := daemon.NewEmbedder(config.Default(), nil); local.Model() != memory.NewHashEmbedder(0).Model() {
		t.Fatalf("default embedder %s", local.Model())
	}
}

func TestDoctorChecksEmbedder(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), nil)
	es := newEmbeddingsServer(t, testEmbedDim)
	base := map[string]string{"DATA_DIR": d.Config.DataDir, "OPENINTERN_URL": d.URL(), "NO_COLOR": "1"}
	check := func(res cliResult) checkResult {
		t.Helper()
		var report struct {
			Checks []checkResult `json:"checks"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &report); err != nil {
			t.Fatalf("doctor --json: %v", err)
		}
		for _, c := range report.Checks {
			if c.Name == "embedder" {
				return c
			}
		}
		t.Fatalf("no embedder check: %s", res.stdout)
		return checkResult{}
	}

	res := runInProcess(t, base, "doctor", "--json", "--skip-llm")
	if c := check(res); res.code != 0 || !c.OK || !strings.Contains(c.Detail, "local hashed hash-v1-1024, 1024 dimensions") {
		t.Fatalf("local embedder: exit %d, %+v", res.code, c)
	}

	env := embeddingEnv(base, es, testEmbedModel)
	res = runInProcess(t, env, "doctor", "--json", "--skip-llm")
	c := check(res)
	if res.code != 0 || !c.OK || !strings.Contains(c.Detail, testEmbedModel) || !strings.Contains(c.Detail, "64 dimensions") || !strings.Contains(c.Detail, "answered in") {
		t.Fatalf("openai embedder: exit %d, %+v", res.code, c)
	}
	if models, _ := es.requests(); len(models) != 1 {
		t.Fatalf("doctor made %d embeddings calls, want 1", len(models))
	}
	if res = runInProcess(t, env, "doctor", "--json", "--skip-llm", "--skip-embedder"); !check(res).OK {
		t.Fatalf("--skip-embedder: %+v", check(res))
	}
	if models, _ := es.requests(); len(models) != 1 {
		t.Fatalf("--skip-embedder still called the server (%d calls)", len(models))
	}

	failures := []struct {
		name   string
		env    map[string]string
		detail string
		hint   string
	}{
		{"bad key", map[string]string{"EMBEDDING_API_KEY": "sk-wrong"}, "HTTP 401", "EMBEDDING_API_KEY"},
		{"wrong dimension", map[string]string{"EMBEDDING_DIM": "32"}, "dimension 64, configured 32", "EMBEDDING_DIM"},
		{"server down", map[string]string{"EMBEDDING_BASE_URL": "http://" + closedPort(t) + "/v1"}, "connection refused", "EMBEDDING_BASE_URL"},
	}
	for _, f := range failures {
		e := embeddingEnv(base, es, testEmbedModel)
		for k, v := range f.env {
			e[k] = v
		}
		res := runInProcess(t, e, "doctor", "--json", "--skip-llm")
		c := check(res)
		if res.code != 1 || c.OK || !strings.Contains(c.Detail, f.detail) || !strings.Contains(c.Hint, f.hint) {
			t.Errorf("%s: exit %d, %+v", f.name, res.code, c)
		}
	}
}

// TestEvalRetrievalUsesConfiguredEmbedder measures a tiny set through an
// OpenAI-compatible embedder: its vectors must be the ones searched.
func TestEvalRetrievalUsesConfiguredEmbedder(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"corpus.jsonl": `{"_id":"d1","title":"Boilers","text":"The boiler leaks water near the pressure valve."}
{"_id":"d2","title":"Gardens","text":"Plant tomatoes after the last frost of spring."}
{"_id":"d3","title":"Budgets","text":"The quarterly budget covers travel and hardware."}
`,
		"queries.jsonl": `{"_id":"q1","text":"leaking boilers"}
{"_id":"q2","text":"tomato gardening"}
`,
		"qrels.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	es := newEmbeddingsServer(t, testEmbedDim)
	res := runInProcess(t, embeddingEnv(map[string]string{}, es, testEmbedModel), "eval", "retrieval", "--set", dir, "--json")
	if res.code != 0 {
		t.Fatalf("eval: exit %d: %s", res.code, res.stderr)
	}
	var rep struct {
		Embedder string                        `json:"embedder"`
		Queries  int                           `json:"queries"`
		Methods  map[string]map[string]float64 `json:"methods"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Embedder != "openai:"+testEmbedModel || rep.Queries != 2 || rep.Methods[memory.ModeVector]["recall@10"] != 1 {
		t.Fatalf("report %+v: want the openai embedder and 2 queries, each finding its document", rep)
	}
	// Every document and query went through the server.
	es.mu.Lock()
	defer es.mu.Unlock()
	sent := strings.Join(slices.Concat(es.inputs...), "\n")
	for _, want := range []string{"boiler leaks water", "tomatoes after the last frost", "quarterly budget", "leaking boilers", "tomato gardening"} {
		if !strings.Contains(sent, want) {
			t.Fatalf("the embeddings server never saw %q; it saw:\n%s", want, sent)
		}
	}
}
