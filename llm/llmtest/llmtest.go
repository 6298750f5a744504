// Package llmtest runs a local HTTP server that speaks the real OpenAI
// chat-completions wire format (streamed server-sent events or plain JSON),
// for tests and benchmarks of code that uses an llm.Provider.
//
// Replies are scripted: Enqueue adds replies served in order; when the queue
// is empty the default reply function answers (Echo unless SetDefault changed
// it). Every request is decoded and kept for assertions (Requests).
//
//	srv := llmtest.NewServer(t, llmtest.WithAPIKey("sk-test"))
//	srv.Enqueue(llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"a.txt"}`}}})
//	srv.Enqueue(llmtest.Reply{Text: "The file says hello."})
//	p := srv.Provider() // an *llm.OpenAI pointed at the server
package llmtest

import (
	"bytes"
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

// Reply is one scripted answer of the server.
type Reply struct {
	// Text is the assistant's text, streamed in chunks of ChunkSize runes.
	Text string
	// ToolCalls are streamed as tool_calls deltas, one index per call: the
	// first chunk of an index carries id and name, the arguments follow split
	// into chunks of ChunkSize runes. IDs default to "call_<i>".
	ToolCalls []llm.ToolCall
	// InterleaveToolCalls sends the argument chunks of the calls round-robin
	// (index 0, 1, 0, 1, ...) instead of one call after the other.
	InterleaveToolCalls bool
	// ChunkSize is the number of runes per content/argument chunk (default 4).
	ChunkSize int
	// Status, when not 0 or 200, answers with that HTTP status and an
	// OpenAI-shaped error body carrying ErrorMessage (default: the status text).
	Status       int
	ErrorMessage string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Delay is waited before the response headers are sent.
	Delay time.Duration
	// ChunkDelay is waited before each stream chunk after the first.
	ChunkDelay time.Duration
	// StallAfter, when > 0, stops after that many stream events and then
	// sends nothing until the client goes away (to test idle timeouts).
	StallAfter int
	// DropAfter, when > 0, ends the response after that many stream events
	// without finish_reason and [DONE], as if the connection broke.
	DropAfter int
	// StreamError, when set, is sent as an {"error":...} event after the
	// content chunks, ending the stream.
	StreamError string
	// JSON answers with a non-streaming chat.completion (application/json)
	// even when the request asked for a stream.
	JSON bool
	// Model is reported in the chunks (default: the requested model).
	Model string
	// FinishReason defaults to "tool_calls" with tool calls, else "stop".
	FinishReason string
	// Usage defaults to word counts of the request and the reply. It is sent
	// when the request asked for it (stream_options.include_usage) or for JSON.
	Usage *llm.Usage
	// Thinking (Anthropic wire format only) is sent first as a thinking
	// block, signed "sig:" + the text.
	Thinking string
}

// ChatRequest is a request the server received, decoded from the wire format.
type ChatRequest struct {
	Method        string
	Path          string
	Authorization string // the Authorization header
	Model         string
	Messages      []llm.Message
	Tools         []llm.ToolSpec
	ToolTypes     []string // the "type" of each tool ("function")
	Stream        bool
	IncludeUsage  bool
	Temperature   *float64
	MaxTokens     int
	Body          []byte // the raw request body
	// Anthropic wire format only: the x-api-key header and where the request
	// had cache_control ("system[0]", "tools[2]", "messages[1].content[0]").
	APIKey       string
	CacheControl []string
}

// LastUserMessage returns the content of the last user message, or "".
func (r ChatRequest) LastUserMessage() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == llm.RoleUser {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Option configures a Server.
type Option func(*Server)

// WithAPIKey makes the server require "Authorization: Bearer <key>" and
// answer 401 with an OpenAI-shaped error otherwise.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithDefault sets the reply function used when the queue is empty.
func WithDefault(fn func(ChatRequest) Reply) Option { return func(s *Server) { s.def = fn } }

// Server is a local OpenAI-compatible chat-completions server.
type Server struct {
	srv    *httptest.Server
	apiKey string
	done   chan struct{} // closed when the server shuts down; ends stalls
	// anthropic: the server speaks the Anthropic Messages API instead.
	anthropic bool
	cached    map[string]bool // prompt prefixes a cache_control wrote

	mu       sync.Mutex
	queue    []Reply
	def      func(ChatRequest) Reply
	requests []ChatRequest
}

// NewServer starts a server on 127.0.0.1; it is closed when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{def: Echo, done: make(chan struct{}), cached: map[string]bool{}}
	for _, o := range opts {
		o(s)
	}
	handler := s.handle
	if s.anthropic {
		handler = s.handleAnthropic
	}
	s.srv = httptest.NewServer(http.HandlerFunc(handler))
	t.Cleanup(s.Close)
	return s
}

// URL is the API base URL, ending in "/v1".
func (s *Server) URL() string { return s.srv.URL + "/v1" }

// APIKey is the key the server expects ("" if it accepts any).
func (s *Server) APIKey() string { return s.apiKey }

// Close shuts the server down (also done automatically at the end of the test).
func (s *Server) Close() {
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

// Provider returns an llm.OpenAI client for this server: the expected API
// key, model "test-model", a 1ms backoff base and a 5s timeout.
func (s *Server) Provider() *llm.OpenAI {
	return llm.NewOpenAI(llm.OpenAIConfig{
		BaseURL:     s.URL(),
		APIKey:      s.apiKey,
		Model:       "test-model",
		Timeout:     5 * time.Second,
		BackoffBase: time.Millisecond,
		MaxBackoff:  10 * time.Millisecond,
	})
}

// Enqueue adds replies served, in order, to the next requests.
func (s *Server) Enqueue(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, replies...)
}

// Pending reports how many enqueued replies were not served yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// SetDefault sets the reply function used when the queue is empty.
func (s *Server) SetDefault(fn func(ChatRequest) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = fn
}

// Requests returns a copy of the requests received so far, in order
// (including those refused for a wrong API key).
func (s *Server) Requests() []ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChatRequest, len(s.requests))
	copy(out, s.requests)
	return out
}

// RequestCount is len(Requests()).
func (s *Server) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Echo is the initial default reply: the text "echo: <last user message>".
func Echo(req ChatRequest) Reply {
	return Reply{Text: "echo: " + req.LastUserMessage()}
}

// ToolThenText returns a stateless "instant LLM" reply function, e.g. for
// benchmarks: when the last message is not a tool result and the tool is
// offered it calls tool with args; otherwise it answers text.
func ToolThenText(tool, args, text string) func(ChatRequest) Reply {
	return func(req ChatRequest) Reply {
		n := len(req.Messages)
		if n > 0 && req.Messages[n-1].Role == llm.RoleTool {
			return Reply{Text: text}
		}
		for _, t := range req.Tools {
			if t.Name == tool {
				return Reply{ToolCalls: []llm.ToolCall{{ID: fmt.Sprintf("call_%d", n), Name: tool, Arguments: args}}}
			}
		}
		return Reply{Text: text}
	}
}

// Wire types (the subset of the chat-completions API the server reads).
type wireRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		Name       string          `json:"name"`
		ToolCallID string          `json:"tool_call_id"`
		ToolCalls  []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Temperature *float64 `json:"temperature"`
	MaxTokens   int      `json:"max_tokens"`
}

// contentText decodes a message content: a string, null, or an array of
// {"type":"text","text":...} parts.
func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("content is neither a string nor parts: %w", err)
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func decodeRequest(r *http.Request, body []byte) (ChatRequest, error) {
	cr := ChatRequest{
		Method:        r.Method,
		Path:          r.URL.Path,
		Authorization: r.Header.Get("Authorization"),
		Body:          body,
	}
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return cr, fmt.Errorf("invalid JSON body: %w", err)
	}
	cr.Model, cr.Stream, cr.Temperature, cr.MaxTokens = w.Model, w.Stream, w.Temperature, w.MaxTokens
	cr.IncludeUsage = w.StreamOptions != nil && w.StreamOptions.IncludeUsage
	for i, m := range w.Messages {
		text, err := contentText(m.Content)
		if err != nil {
			return cr, fmt.Errorf("messages[%d]: %w", i, err)
		}
		msg := llm.Message{Role: m.Role, Content: text, Name: m.Name, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, llm.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		cr.Messages = append(cr.Messages, msg)
	}
	for _, t := range w.Tools {
		cr.ToolTypes = append(cr.ToolTypes, t.Type)
		cr.Tools = append(cr.Tools, llm.ToolSpec{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	return cr, nil
}

func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var c any
	if code != "" {
		c = code
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c},
	})
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"test-model","object":"model","owned_by":"llmtest"}]}`)
		return
	}
	if r.URL.Path != "/v1/chat/completions" {
		writeError(w, http.StatusNotFound, "Unknown request URL: "+r.Method+" "+r.URL.Path, "invalid_request_error", "unknown_url")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed", "invalid_request_error", "")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req, decErr := decodeRequest(r, body)

	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	if s.apiKey != "" && req.Authorization != "Bearer "+s.apiKey {
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
			"invalid_request_error", "invalid_api_key")
		return
	}
	if decErr != nil {
		writeError(w, http.StatusBadRequest, decErr.Error(), "invalid_request_error", "")
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

	if !s.wait(r, reply.Delay) {
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
		typ := "invalid_request_error"
		switch {
		case reply.Status == http.StatusTooManyRequests:
			typ = "rate_limit_error"
		case reply.Status >= 500:
			typ = "server_error"
		}
		writeError(w, reply.Status, msg, typ, "")
		return
	}
	s.respond(w, r, req, reply)
}

// wait sleeps d unless the request or the server ends first.
func (s *Server) wait(r *http.Request, d time.Duration) bool { return waitFor(r, s.done, d) }

// Wire types the server writes.
type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *llm.Usage    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int      `json:"index"`
	Delta        *delta   `json:"delta,omitempty"`
	Message      *delta   `json:"message,omitempty"`
	FinishReason *string  `json:"finish_reason"`
	Logprobs     *float64 `json:"logprobs"`
}

type delta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	ToolCalls []deltaToolCall `json:"tool_calls,omitempty"`
}

type deltaToolCall struct {
	Index    *int          `json:"index,omitempty"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function deltaFunction `json:"function"`
}

type deltaFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request, req ChatRequest, reply Reply) {
	model := reply.Model
	if model == "" {
		model = req.Model
	}
	calls := make([]llm.ToolCall, len(reply.ToolCalls))
	copy(calls, reply.ToolCalls)
	for i := range calls {
		if calls[i].ID == "" {
			calls[i].ID = fmt.Sprintf("call_%d", i)
		}
	}
	finish := reply.FinishReason
	if finish == "" {
		finish = "stop"
		if len(calls) > 0 {
			finish = "tool_calls"
		}
	}
	usage := reply.Usage
	if usage == nil {
		u := llm.Usage{CompletionTokens: len(strings.Fields(reply.Text))}
		for _, m := range req.Messages {
			u.PromptTokens += len(strings.Fields(m.Content))
		}
		for _, c := range calls {
			u.CompletionTokens += 1 + len(strings.Fields(c.Arguments))
		}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		usage = &u
	}
	id := fmt.Sprintf("chatcmpl-llmtest-%d", s.RequestCount())
	created := time.Now().Unix()

	if reply.JSON || !req.Stream {
		msg := &delta{Role: llm.RoleAssistant}
		text := reply.Text
		if text != "" || len(calls) == 0 {
			msg.Content = &text
		}
		for _, c := range calls {
			msg.ToolCalls = append(msg.ToolCalls, deltaToolCall{ID: c.ID, Type: "function",
				Function: deltaFunction{Name: c.Name, Arguments: c.Arguments}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(chunk{ID: id, Object: "chat.completion", Created: created, Model: model,
			Choices: []chunkChoice{{Message: msg, FinishReason: &finish}}, Usage: usage})
		return
	}

	// Build the stream's events, then send them.
	var events []chunk
	mk := func(d *delta, fr *string) chunk {
		return chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model,
			Choices: []chunkChoice{{Delta: d, FinishReason: fr}}}
	}
	empty := ""
	events = append(events, mk(&delta{Role: llm.RoleAssistant, Content: &empty}, nil))
	size := reply.ChunkSize
	if size <= 0 {
		size = 4
	}
	for _, piece := range splitRunes(reply.Text, size) {
		events = append(events, mk(&delta{Content: &piece}, nil))
	}
	// Tool calls: per call, a head chunk (id, name) and argument chunks.
	perCall := make([][]deltaToolCall, len(calls))
	for i, c := range calls {
		idx := i
		perCall[i] = append(perCall[i], deltaToolCall{Index: &idx, ID: c.ID, Type: "function",
			Function: deltaFunction{Name: c.Name}})
		for _, piece := range splitRunes(c.Arguments, size) {
			perCall[i] = append(perCall[i], deltaToolCall{Index: &idx, Function: deltaFunction{Arguments: piece}})
		}
	}
	if reply.InterleaveToolCalls {
		for k := 0; ; k++ {
			more := false
			for i := range perCall {
				if k < len(perCall[i]) {
					more = true
					events = append(events, mk(&delta{ToolCalls: []deltaToolCall{perCall[i][k]}}, nil))
				}
			}
			if !more {
				break
			}
		}
	} else {
		for i := range perCall {
			for _, tc := range perCall[i] {
				events = append(events, mk(&delta{ToolCalls: []deltaToolCall{tc}}, nil))
			}
		}
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	sent := 0
	send := func(data []byte) bool {
		if sent > 0 && !s.wait(r, reply.ChunkDelay) {
			return false
		}
		if reply.StallAfter > 0 && sent >= reply.StallAfter {
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return false
		}
		if reply.DropAfter > 0 && sent >= reply.DropAfter {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		sent++
		return true
	}
	sendJSON := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err) // our own types always encode
		}
		return send(b)
	}
	for _, ev := range events {
		if !sendJSON(ev) {
			return
		}
	}
	if reply.StreamError != "" {
		sendJSON(map[string]any{"error": map[string]any{"message": reply.StreamError, "type": "server_error", "param": nil, "code": nil}})
		return
	}
	if !sendJSON(mk(&delta{}, &finish)) {
		return
	}
	if req.IncludeUsage {
		if !sendJSON(chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model,
			Choices: []chunkChoice{}, Usage: usage}) {
			return
		}
	}
	send([]byte("[DONE]"))
}

// splitRunes cuts s into pieces of n runes.
func splitRunes(s string, n int) []string {
	var out []string
	r := []rune(s)
	for len(r) > 0 {
		k := min(n, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}
