package memory_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
)

// embeddingsRequest is the body of POST /v1/embeddings.
type embeddingsRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

// wireServer is an OpenAI-compatible embeddings endpoint on 127.0.0.1. By
// default it answers like OpenAI (object, data, model, usage) with vectors
// derived from each text by a local hashed embedder, scaled so that they are
// not normalized, and with data in reverse order, which the API allows since
// every item carries its index. handle, when set, answers instead.
type wireServer struct {
	t      *testing.T
	srv    *httptest.Server
	emb    *memory.HashEmbedder
	scale  float64
	handle func(w http.ResponseWriter, r *http.Request, n int) bool // true: handled

	mu       sync.Mutex
	requests []embeddingsRequest
	auth     []string
}

func newWireServer(t *testing.T, dim int) *wireServer {
	t.Helper()
	ws := &wireServer{t: t, emb: memory.NewHashEmbedder(dim), scale: 3}
	ws.srv = httptest.NewServer(http.HandlerFunc(ws.serve))
	t.Cleanup(ws.srv.Close)
	return ws
}

func (ws *wireServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req embeddingsRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	ws.mu.Lock()
	ws.requests = append(ws.requests, req)
	ws.auth = append(ws.auth, r.Header.Get("Authorization"))
	n := len(ws.requests)
	ws.mu.Unlock()
	if ws.handle != nil && ws.handle(w, r, n) {
		return
	}
	vecs, _ := ws.emb.Embed(r.Context(), req.Input)
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	data := make([]item, 0, len(vecs))
	for i := len(vecs) - 1; i >= 0; i-- {
		e := make([]float64, len(vecs[i]))
		for j, x := range vecs[i] {
			e[j] = float64(x) * ws.scale
		}
		data = append(data, item{Object: "embedding", Index: i, Embedding: e})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": len(req.Input), "total_tokens": len(req.Input)},
	})
}

func (ws *wireServer) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.requests)
}

func (ws *wireServer) embedder(dim int) *memory.OpenAIEmbedder {
	return &memory.OpenAIEmbedder{
		BaseURL: ws.srv.URL + "/v1/", APIKey: "sk-test", ModelName: "text-embedding-3-small", Dimension: dim,
		BackoffBase: time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	}
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": nil}})
}

func TestOpenAIEmbedderBatchesInOrderAndNormalizes(t *testing.T) {
	ws := newWireServer(t, 16)
	emb := ws.embedder(16)
	emb.BatchSize = 64
	texts := make([]string, 150)
	for i := range texts {
		texts[i] = "note number " + strings.Repeat("x", i%7) + " about topic " + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	got, err := emb.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := memory.NewHashEmbedder(16).Embed(context.Background(), texts)
	if len(got) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(got), len(texts))
	}
	for i := range got {
		var norm float64
		for j := range got[i] {
			norm += float64(got[i][j]) * float64(got[i][j])
			if math.Abs(float64(got[i][j]-want[i][j])) > 1e-5 {
				t.Fatalf("vector %d differs from its text's vector at %d: %v vs %v (order lost?)", i, j, got[i][j], want[i][j])
			}
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Fatalf("vector %d has squared norm %v, want 1", i, norm)
		}
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.requests) != 3 {
		t.Fatalf("%d requests for 150 texts in batches of 64, want 3", len(ws.requests))
	}
	for i, size := range []int{64, 64, 22} {
		r := ws.requests[i]
		if len(r.Input) != size || r.Model != "text-embedding-3-small" || ws.auth[i] != "Bearer sk-test" {
			t.Fatalf("request %d: %d texts, model %q, auth %q", i, len(r.Input), r.Model, ws.auth[i])
		}
	}
	if ws.requests[2].Input[0] != texts[128] {
		t.Fatalf("third batch starts with %q, want text 128", ws.requests[2].Input[0])
	}
}

func TestOpenAIEmbedderNoTextsNoRequest(t *testing.T) {
	ws := newWireServer(t, 8)
	vecs, err := ws.embedder(8).Embed(context.Background(), nil)
	if err != nil || len(vecs) != 0 || ws.count() != 0 {
		t.Fatalf("vecs %v err %v requests %d", vecs, err, ws.count())
	}
}

func TestOpenAIEmbedderRejectsBadAnswers(t *testing.T) {
	cases := map[string]struct {
		body string
		want string
	}{
		"dimension": {`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3,0.4]}]}`, "dimension 4, configured 8"},
		"count":     {`{"object":"list","data":[]}`, "0 vectors for 1 texts"},
		"index":     {`{"object":"list","data":[{"object":"embedding","index":3,"embedding":[1,0,0,0,0,0,0,0]}]}`, "index 3"},
		"json":      {`<html>gateway</html>`, "decode answer"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ws := newWireServer(t, 8)
			ws.handle = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.body))
				return true
			}
			_, err := ws.embedder(8).Embed(context.Background(), []string{"hello"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if ws.count() != 1 {
				t.Fatalf("%d requests: a malformed answer must not be retried", ws.count())
			}
			if (name == "dimension") != errors.Is(err, memory.ErrEmbeddingDimension) {
				t.Fatalf("%s: errors.Is(ErrEmbeddingDimension) = %v", name, errors.Is(err, memory.ErrEmbeddingDimension))
			}
		})
	}
}

func TestOpenAIEmbedderUnauthorizedIsNotRetried(t *testing.T) {
	ws := newWireServer(t, 8)
	ws.handle = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		writeJSONError(w, http.StatusUnauthorized, "Incorrect API key provided: sk-test.")
		return true
	}
	_, err := ws.embedder(8).Embed(context.Background(), []string{"hello"})
	var he *memory.EmbeddingHTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want an EmbeddingHTTPError with 401", err)
	}
	if !strings.Contains(err.Error(), "Incorrect API key provided") || !strings.Contains(err.Error(), "text-embedding-3-small") {
		t.Fatalf("error does not carry the server's message and the model: %v", err)
	}
	if ws.count() != 1 {
		t.Fatalf("%d requests after a 401, want 1", ws.count())
	}
}

func TestOpenAIEmbedderRetriesRateLimitHonoringRetryAfter(t *testing.T) {
	ws := newWireServer(t, 8)
	ws.handle = func(w http.ResponseWriter, _ *http.Request, n int) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "0.2")
			writeJSONError(w, http.StatusTooManyRequests, "Rate limit reached")
			return true
		}
		return false
	}
	emb := ws.embedder(8)
	emb.MaxBackoff = 5 * time.Second // so that the 200 ms of Retry-After, not the cap, is the wait
	start := time.Now()
	vecs, err := emb.Embed(context.Background(), []string{"hello"})
	if err != nil || len(vecs) != 1 {
		t.Fatalf("vecs %d err %v", len(vecs), err)
	}
	if ws.count() != 2 {
		t.Fatalf("%d requests, want a 429 and a retry", ws.count())
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("retried after %s, before Retry-After's 200ms", waited)
	}
}

func TestOpenAIEmbedderServerErrorsBounded(t *testing.T) {
	ws := newWireServer(t, 8)
	ws.handle = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		w.Header().Set("Retry-After", "3600") // capped by MaxBackoff
		http.Error(w, "upstream down", http.StatusBadGateway)
		return true
	}
	emb := ws.embedder(8)
	emb.MaxRetries = 2
	start := time.Now()
	_, err := emb.Embed(context.Background(), []string{"hello"})
	var he *memory.EmbeddingHTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway || !strings.Contains(err.Error(), "after 3 attempts") ||
		!strings.Contains(err.Error(), "upstream down") {
		t.Fatalf("err = %v", err)
	}
	if ws.count() != 3 {
		t.Fatalf("%d requests with MaxRetries 2, want 3", ws.count())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Retry-After was not capped: %s", time.Since(start))
	}

	ws.handle = func(w http.ResponseWriter, _ *http.Request, n int) bool {
		if n <= 4 { // 3 above, then one more failure before success
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	if _, err := emb.Embed(context.Background(), []string{"hello"}); err != nil {
		t.Fatalf("a 503 then success: %v", err)
	}
}

func TestOpenAIEmbedderStopsOnContextCancel(t *testing.T) {
	t.Run("during the request", func(t *testing.T) {
		ws := newWireServer(t, 8)
		ws.handle = func(_ http.ResponseWriter, r *http.Request, _ int) bool {
			<-r.Context().Done()
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := ws.embedder(8).Embed(ctx, []string{"hello"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the context's error", err)
		}
		if time.Since(start) > 3*time.Second || ws.count() != 1 {
			t.Fatalf("took %s and %d requests after the context ended", time.Since(start), ws.count())
		}
	})
	t.Run("during a backoff", func(t *testing.T) {
		ws := newWireServer(t, 8)
		ws.handle = func(w http.ResponseWriter, _ *http.Request, _ int) bool {
			w.Header().Set("Retry-After", "30")
			writeJSONError(w, http.StatusTooManyRequests, "slow down")
			return true
		}
		emb := ws.embedder(8)
		emb.MaxBackoff = time.Minute
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := emb.Embed(ctx, []string{"hello"})
		if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
			t.Fatalf("err = %v after %s, want context.Canceled at once", err, time.Since(start))
		}
	})
}

func TestOpenAIEmbedderTimeout(t *testing.T) {
	ws := newWireServer(t, 8)
	ws.handle = func(_ http.ResponseWriter, r *http.Request, _ int) bool {
		<-r.Context().Done()
		return true
	}
	emb := ws.embedder(8)
	emb.Timeout = 50 * time.Millisecond
	emb.MaxRetries = 1
	_, err := emb.Embed(context.Background(), []string{"hello"})
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") || ws.count() != 2 {
		t.Fatalf("err = %v after %d requests, want a timeout retried once", err, ws.count())
	}
}

func TestOpenAIEmbedderModelNamesItsVectors(t *testing.T) {
	emb := &memory.OpenAIEmbedder{ModelName: "nomic-embed-text", Dimension: 768, BaseURL: "http://127.0.0.1:11434/v1"}
	if emb.Model() != "openai:nomic-embed-text" || emb.Dim() != 768 || emb.Endpoint() != "http://127.0.0.1:11434/v1/embeddings" {
		t.Fatalf("model %q dim %d endpoint %q", emb.Model(), emb.Dim(), emb.Endpoint())
	}
	if memory.NewHashEmbedder(0).Model() == emb.Model() {
		t.Fatal("local and remote vectors share a model name")
	}
}
