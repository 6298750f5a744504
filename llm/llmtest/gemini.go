package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
)

// GeminiServer is a local HTTP server that speaks Google's Gemini REST wire
// format: POST /v1beta/models/{model}:generateContent (JSON) and
// :streamGenerateContent?alt=sse (server-sent events), the API key in the
// x-goog-api-key header, errors as {"error":{"code","message","status"}}.
// It is scripted like Server, with the same Reply type: Text is streamed in
// chunks, ToolCalls become functionCall parts (ids only when the Reply sets
// them, as Gemini API versions without ids do), FinishReason is Gemini's
// ("STOP" by default; "MAX_TOKENS", "SAFETY", ...), Usage becomes
// usageMetadata (CacheReadTokens as cachedContentTokenCount).
type GeminiServer struct {
	srv    *httptest.Server
	apiKey string
	done   chan struct{}

	mu       sync.Mutex
	queue    []Reply
	def      func(GeminiRequest) Reply
	requests []GeminiRequest
}

// GeminiRequest is a request the server received, decoded from the wire format.
type GeminiRequest struct {
	Method string
	Path   string
	APIKey string // the x-goog-api-key header
	Model  string // from the path, without "models/"
	Stream bool   // streamGenerateContent with alt=sse
	// SystemInstruction is the text of the systemInstruction parts, joined by "\n".
	SystemInstruction string
	Contents          []GeminiContent
	Tools             []llm.ToolSpec // the functionDeclarations (parametersJsonSchema, else parameters)
	Temperature       *float64
	MaxOutputTokens   int
	Body              []byte // the raw request body
}

// GeminiContent is one entry of contents.
type GeminiContent struct {
	Role  string       `json:"role"`
	Parts []GeminiPart `json:"parts"`
}

// GeminiPart is one part; only the kinds the provider sends are decoded.
type GeminiPart struct {
	Text             string                  `json:"text,omitempty"`
	Thought          bool                    `json:"thought,omitempty"`
	ThoughtSignature []byte                  `json:"thoughtSignature,omitempty"`
	FunctionCall     *GeminiFunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *GeminiFunctionResponse `json:"functionResponse,omitempty"`
}

// GeminiFunctionCall is a functionCall part.
type GeminiFunctionCall struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// GeminiFunctionResponse is a functionResponse part.
type GeminiFunctionResponse struct {
	ID       string          `json:"id,omitempty"`
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

// LastUserText returns the text of the last "user" content that has text, or "".
func (r GeminiRequest) LastUserText() string {
	for i := len(r.Contents) - 1; i >= 0; i-- {
		c := r.Contents[i]
		if c.Role != "user" {
			continue
		}
		var b strings.Builder
		for _, p := range c.Parts {
			b.WriteString(p.Text)
		}
		if b.Len() > 0 {
			return b.String()
		}
	}
	return ""
}

// GeminiOption configures a GeminiServer.
type GeminiOption func(*GeminiServer)

// WithGeminiAPIKey makes the server require "x-goog-api-key: <key>" and answer
// 400 API_KEY_INVALID otherwise, as Google does.
func WithGeminiAPIKey(key string) GeminiOption { return func(s *GeminiServer) { s.apiKey = key } }

// WithGeminiDefault sets the reply function used when the queue is empty.
func WithGeminiDefault(fn func(GeminiRequest) Reply) GeminiOption {
	return func(s *GeminiServer) { s.def = fn }
}

// GeminiEcho is the initial default reply: "echo: <last user text>".
func GeminiEcho(req GeminiRequest) Reply { return Reply{Text: "echo: " + req.LastUserText()} }

// NewGeminiServer starts a server on 127.0.0.1; it is closed when the test ends.
func NewGeminiServer(t testing.TB, opts ...GeminiOption) *GeminiServer {
	t.Helper()
	s := &GeminiServer{def: GeminiEcho, done: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

// URL is the API root (GEMINI_BASE_URL), without the version.
func (s *GeminiServer) URL() string { return s.srv.URL + "/" }

// APIKey is the key the server expects ("" if it accepts any).
func (s *GeminiServer) APIKey() string { return s.apiKey }

// Close shuts the server down (also done automatically at the end of the test).
func (s *GeminiServer) Close() {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
		close(s.done)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Provider returns an llm.Gemini client for this server: the expected API
// key (or "test-key"), model "gemini-2.5-flash", a 1ms backoff base and a 5s
// timeout.
func (s *GeminiServer) Provider(t testing.TB) *llm.Gemini {
	t.Helper()
	key := s.apiKey
	if key == "" {
		key = "test-key"
	}
	p, err := llm.NewGemini(llm.GeminiConfig{
		BaseURL:     s.URL(),
		APIKey:      key,
		Model:       "gemini-2.5-flash",
		Timeout:     5 * time.Second,
		BackoffBase: time.Millisecond,
		MaxBackoff:  10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Enqueue adds replies served, in order, to the next requests.
func (s *GeminiServer) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// Pending reports how many enqueued replies were not served yet.
func (s *GeminiServer) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// SetDefault sets the reply function used when the queue is empty.
func (s *GeminiServer) SetDefault(fn func(GeminiRequest) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = fn
}

// Requests returns a copy of the requests received so far, in order.
func (s *GeminiServer) Requests() []GeminiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]GeminiRequest, len(s.requests))
	copy(out, s.requests)
	return out
}

// RequestCount is len(Requests()).
func (s *GeminiServer) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// geminiStatus is the canonical status name Google sends with an HTTP code.
func geminiStatus(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if code >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

func writeGeminiError(w http.ResponseWriter, code int, msg string, details ...map[string]any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	e := map[string]any{"code": code, "message": msg, "status": geminiStatus(code)}
	if len(details) > 0 {
		e["details"] = details
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// geminiWireRequest is the subset of GenerateContentRequest the server reads.
type geminiWireRequest struct {
	Contents          []GeminiContent `json:"contents"`
	SystemInstruction *GeminiContent  `json:"systemInstruction"`
	Tools             []struct {
		FunctionDeclarations []struct {
			Name                 string          `json:"name"`
			Description          string          `json:"description"`
			Parameters           json.RawMessage `json:"parameters"`
			ParametersJSONSchema json.RawMessage `json:"parametersJsonSchema"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	GenerationConfig *struct {
		Temperature     *float64 `json:"temperature"`
		MaxOutputTokens int      `json:"maxOutputTokens"`
	} `json:"generationConfig"`
}

func (s *GeminiServer) handle(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	const prefix = "/v1beta/models/"
	model, method, ok := strings.Cut(strings.TrimPrefix(path, prefix), ":")
	if !strings.HasPrefix(path, prefix) || !ok || (method != "generateContent" && method != "streamGenerateContent") {
		writeGeminiError(w, http.StatusNotFound, "Method not found: "+r.Method+" "+path)
		return
	}
	if r.Method != http.MethodPost {
		writeGeminiError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req := GeminiRequest{
		Method: r.Method, Path: path, APIKey: r.Header.Get("x-goog-api-key"), Model: model,
		Stream: method == "streamGenerateContent" && r.URL.Query().Get("alt") == "sse",
		Body:   body,
	}
	var wr geminiWireRequest
	decErr := json.Unmarshal(body, &wr)
	if decErr == nil {
		req.Contents = wr.Contents
		if wr.SystemInstruction != nil {
			var texts []string
			for _, p := range wr.SystemInstruction.Parts {
				texts = append(texts, p.Text)
			}
			req.SystemInstruction = strings.Join(texts, "\n")
		}
		for _, t := range wr.Tools {
			for _, d := range t.FunctionDeclarations {
				params := d.ParametersJSONSchema
				if len(params) == 0 {
					params = d.Parameters
				}
				req.Tools = append(req.Tools, llm.ToolSpec{Name: d.Name, Description: d.Description, Parameters: params})
			}
		}
		if g := wr.GenerationConfig; g != nil {
			req.Temperature, req.MaxOutputTokens = g.Temperature, g.MaxOutputTokens
		}
	}

	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	if s.apiKey != "" && req.APIKey != s.apiKey {
		writeGeminiError(w, http.StatusBadRequest, "API key not valid. Please pass a valid API key.", map[string]any{
			"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
		})
		return
	}
	if decErr != nil {
		writeGeminiError(w, http.StatusBadRequest, "Invalid JSON payload received. "+decErr.Error())
		return
	}
	if len(req.Contents) == 0 {
		writeGeminiError(w, http.StatusBadRequest, "* GenerateContentRequest.contents: contents is not specified")
		return
	}

	s.mu.Lock()
	var reply Reply
	if len(s.queue) > 0 {
		reply = s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
	} else {
		def := s.def
		s.mu.Unlock()
		reply = def(req)
	}

	if !waitFor(r, s.done, reply.Delay) {
		return
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		msg := reply.ErrorMessage
		if msg == "" {
			msg = http.StatusText(reply.Status)
		}
		writeGeminiError(w, reply.Status, msg)
		return
	}
	s.respond(w, r, req, reply)
}

// waitFor sleeps d unless the request or the server ends first.
func waitFor(r *http.Request, done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-done:
		return false
	}
}

// Wire types the server writes.
type geminiChunk struct {
	Candidates    []geminiCandidate `json:"candidates,omitempty"`
	UsageMetadata *geminiUsage      `json:"usageMetadata,omitempty"`
	ModelVersion  string            `json:"modelVersion"`
	ResponseID    string            `json:"responseId"`
}

type geminiCandidate struct {
	Content      GeminiContent `json:"content"`
	FinishReason string        `json:"finishReason,omitempty"`
	Index        int           `json:"index"`
}

type geminiUsage struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount,omitempty"`
	TotalTokenCount         int `json:"totalTokenCount"`
	CachedContentTokenCount int `json:"cachedContentTokenCount,omitempty"`
}

func (s *GeminiServer) respond(w http.ResponseWriter, r *http.Request, req GeminiRequest, reply Reply) {
	model := reply.Model
	if model == "" {
		model = req.Model
	}
	finish := reply.FinishReason
	if finish == "" {
		finish = "STOP"
	}
	var usage geminiUsage
	if reply.Usage != nil {
		usage = geminiUsage{PromptTokenCount: reply.Usage.PromptTokens, CandidatesTokenCount: reply.Usage.CompletionTokens,
			TotalTokenCount: reply.Usage.TotalTokens, CachedContentTokenCount: reply.Usage.CacheReadTokens}
	} else {
		usage.CandidatesTokenCount = len(strings.Fields(reply.Text))
		for _, c := range req.Contents {
			for _, p := range c.Parts {
				usage.PromptTokenCount += len(strings.Fields(p.Text))
			}
		}
		for _, c := range reply.ToolCalls {
			usage.CandidatesTokenCount += 1 + len(strings.Fields(c.Arguments))
		}
		usage.TotalTokenCount = usage.PromptTokenCount + usage.CandidatesTokenCount
	}
	// Gemini sends every function call whole, each in its own part.
	var callParts []GeminiPart
	for _, c := range reply.ToolCalls {
		args := json.RawMessage(c.Arguments)
		if !json.Valid(args) {
			panic(fmt.Sprintf("llmtest: Gemini function call arguments must be JSON: %q", c.Arguments))
		}
		callParts = append(callParts, GeminiPart{FunctionCall: &GeminiFunctionCall{ID: c.ID, Name: c.Name, Args: args}})
	}
	id := fmt.Sprintf("llmtest-gemini-%d", s.RequestCount())
	mk := func(parts []GeminiPart, fr string, u *geminiUsage) geminiChunk {
		return geminiChunk{ModelVersion: model, ResponseID: id, UsageMetadata: u,
			Candidates: []geminiCandidate{{Content: GeminiContent{Role: "model", Parts: parts}, FinishReason: fr}}}
	}

	if !req.Stream || reply.JSON {
		var parts []GeminiPart
		if reply.Text != "" {
			parts = append(parts, GeminiPart{Text: reply.Text})
		}
		parts = append(parts, callParts...)
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		_ = json.NewEncoder(w).Encode(mk(parts, finish, &usage))
		return
	}

	size := reply.ChunkSize
	if size <= 0 {
		size = 4
	}
	var events []geminiChunk
	for _, piece := range splitRunes(reply.Text, size) {
		events = append(events, mk([]GeminiPart{{Text: piece}}, "", nil))
	}
	for _, p := range callParts {
		events = append(events, mk([]GeminiPart{p}, "", nil))
	}
	// The last chunk carries finishReason and usage (an empty text part when
	// there is nothing else, as the API does). A StreamError replaces it.
	if reply.StreamError == "" {
		if len(events) > 0 {
			events[len(events)-1].Candidates[0].FinishReason = finish
			events[len(events)-1].UsageMetadata = &usage
		} else {
			events = append(events, mk([]GeminiPart{{Text: ""}}, finish, &usage))
		}
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	for i, ev := range events {
		if i > 0 && !waitFor(r, s.done, reply.ChunkDelay) {
			return
		}
		if reply.StallAfter > 0 && i >= reply.StallAfter {
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		}
		if reply.DropAfter > 0 && i >= reply.DropAfter {
			return
		}
		b, err := json.Marshal(ev)
		if err != nil {
			panic(err) // our own types always encode
		}
		if _, err := fmt.Fprintf(w, "data: %s\r\n\r\n", b); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	if reply.StreamError != "" {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": 500, "message": reply.StreamError, "status": "INTERNAL"}})
		_, _ = fmt.Fprintf(w, "data: %s\r\n\r\n", b)
	}
}
