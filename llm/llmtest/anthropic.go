package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
)

// NewAnthropicServer starts a server speaking the Anthropic Messages API
// (POST /v1/messages, the key in x-api-key or as a bearer token, the SSE event sequence message_start,
// content_block_start/delta/stop, message_delta, message_stop; error bodies
// {"type":"error","error":{...}}). Replies, the queue and Requests work as for
// NewServer; requests are decoded into the provider-neutral ChatRequest
// (system blocks as system messages, tool_result blocks as tool messages).
//
// The server keeps a prompt cache: a prefix up to a cache_control breakpoint
// is written on first sight and read afterwards, which the usage reports as
// cache_creation_input_tokens and cache_read_input_tokens.
func NewAnthropicServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	return NewServer(t, append([]Option{func(s *Server) { s.anthropic = true }}, opts...)...)
}

// AnthropicURL is the server's root, the ANTHROPIC_BASE_URL of a client.
func (s *Server) AnthropicURL() string { return s.srv.URL }

// AnthropicProvider returns an llm.Anthropic client for this server: the
// expected API key, model "claude-test", a 5s timeout.
func (s *Server) AnthropicProvider() *llm.Anthropic {
	return llm.NewAnthropic(llm.AnthropicConfig{
		BaseURL: s.AnthropicURL(), APIKey: s.apiKey, Model: "claude-test", Timeout: 5 * time.Second,
	})
}

// Wire types of the Messages API the server reads.
type anthropicRequest struct {
	Model     string           `json:"model"`
	MaxTokens int              `json:"max_tokens"`
	Stream    bool             `json:"stream"`
	System    json.RawMessage  `json:"system"`
	Messages  []anthropicTurn  `json:"messages"`
	Tools     []anthropicTool  `json:"tools"`
	Thinking  *json.RawMessage `json:"thinking"`
	Temp      *float64         `json:"temperature"`
}

type anthropicTurn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type anthropicBlock struct {
	Type         string          `json:"type"`
	Text         string          `json:"text"`
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	Content      json.RawMessage `json:"content"`
	IsError      bool            `json:"is_error"`
	Thinking     string          `json:"thinking"`
	Signature    string          `json:"signature"`
	Data         string          `json:"data"`
	CacheControl *struct {
		Type string `json:"type"`
	} `json:"cache_control"`
}

type anthropicTool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl *struct {
		Type string `json:"type"`
	} `json:"cache_control"`
}

// blocks decodes content that is a string or an array of blocks.
func blocks(raw json.RawMessage) ([]anthropicBlock, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return []anthropicBlock{{Type: "text", Text: str}}, nil
	}
	var bs []anthropicBlock
	if err := json.Unmarshal(raw, &bs); err != nil {
		return nil, fmt.Errorf("content is neither a string nor blocks: %w", err)
	}
	return bs, nil
}

// decodeAnthropic decodes a request; prefix is the prompt up to the last
// cache breakpoint ("" without one).
func decodeAnthropic(r *http.Request, body []byte) (req ChatRequest, prefix string, err error) {
	req = ChatRequest{Method: r.Method, Path: r.URL.Path, APIKey: r.Header.Get("X-Api-Key"),
		Authorization: r.Header.Get("Authorization"), Body: body}
	if req.APIKey == "" {
		// The v2 SDK sends the key as a bearer token, which the API also takes.
		req.APIKey, _ = strings.CutPrefix(req.Authorization, "Bearer ")
	}
	var w anthropicRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return req, "", fmt.Errorf("invalid JSON body: %w", err)
	}
	if w.Model == "" {
		return req, "", fmt.Errorf("model: Field required")
	}
	if w.MaxTokens <= 0 {
		return req, "", fmt.Errorf("max_tokens: Field required")
	}
	req.Model, req.Stream, req.MaxTokens, req.Temperature = w.Model, w.Stream, w.MaxTokens, w.Temp
	var pre strings.Builder
	for i, t := range w.Tools {
		req.ToolTypes = append(req.ToolTypes, "custom")
		req.Tools = append(req.Tools, llm.ToolSpec{Name: t.Name, Description: t.Description, Parameters: t.InputSchema})
		fmt.Fprintf(&pre, "tool %s %s %s\n", t.Name, t.Description, t.InputSchema)
		if t.CacheControl != nil {
			req.CacheControl = append(req.CacheControl, fmt.Sprintf("tools[%d]", i))
			prefix = pre.String()
		}
	}
	system, err := blocks(w.System)
	if err != nil {
		return req, "", fmt.Errorf("system: %w", err)
	}
	for i, b := range system {
		if b.Type != "text" || b.Text == "" {
			return req, "", fmt.Errorf("system.%d: text content blocks must be non-empty", i)
		}
		req.Messages = append(req.Messages, llm.Message{Role: llm.RoleSystem, Content: b.Text})
		fmt.Fprintf(&pre, "system %s\n", b.Text)
		if b.CacheControl != nil {
			req.CacheControl = append(req.CacheControl, fmt.Sprintf("system[%d]", i))
			prefix = pre.String()
		}
	}
	for i, turn := range w.Messages {
		if turn.Role != "user" && turn.Role != "assistant" {
			return req, "", fmt.Errorf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		if i == 0 && turn.Role != "user" {
			return req, "", fmt.Errorf("messages: the first message must use the \"user\" role")
		}
		bs, err := blocks(turn.Content)
		if err != nil {
			return req, "", fmt.Errorf("messages.%d: %w", i, err)
		}
		var assistant *llm.Message
		for j, b := range bs {
			if b.CacheControl != nil {
				req.CacheControl = append(req.CacheControl, fmt.Sprintf("messages[%d].content[%d]", i, j))
			}
			switch {
			case b.Type == "text" && b.Text == "":
				return req, "", fmt.Errorf("messages.%d.content.%d: text content blocks must be non-empty", i, j)
			case turn.Role == "user" && b.Type == "text":
				req.Messages = append(req.Messages, llm.Message{Role: llm.RoleUser, Content: b.Text})
			case turn.Role == "user" && b.Type == "tool_result":
				cbs, err := blocks(b.Content)
				if err != nil {
					return req, "", fmt.Errorf("messages.%d.content.%d: %w", i, j, err)
				}
				var text strings.Builder
				for _, c := range cbs {
					text.WriteString(c.Text)
				}
				req.Messages = append(req.Messages, llm.Message{Role: llm.RoleTool, ToolCallID: b.ToolUseID, Content: text.String()})
			case turn.Role == "assistant":
				if assistant == nil {
					req.Messages = append(req.Messages, llm.Message{Role: llm.RoleAssistant})
					assistant = &req.Messages[len(req.Messages)-1]
				}
				switch b.Type {
				case "text":
					assistant.Content += b.Text
				case "tool_use":
					assistant.ToolCalls = append(assistant.ToolCalls, llm.ToolCall{ID: b.ID, Name: b.Name, Arguments: string(b.Input)})
				case "thinking":
					if b.Signature != "sig:"+b.Thinking {
						return req, "", fmt.Errorf("messages.%d.content.%d: Invalid `signature` in `thinking` block", i, j)
					}
					assistant.Thinking = append(assistant.Thinking, llm.Thinking{Provider: "anthropic", Text: b.Thinking, Signature: b.Signature})
				case "redacted_thinking":
					assistant.Thinking = append(assistant.Thinking, llm.Thinking{Provider: "anthropic", Redacted: b.Data})
				default:
					return req, "", fmt.Errorf("messages.%d.content.%d: unexpected block type %q", i, j, b.Type)
				}
			default:
				return req, "", fmt.Errorf("messages.%d.content.%d: unexpected block type %q in a %s turn", i, j, b.Type, turn.Role)
			}
		}
	}
	return req, prefix, nil
}

// writeAnthropicError answers with the Messages API's error body.
func writeAnthropicError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "error", "error": map[string]any{"type": typ, "message": msg},
		"request_id": "req_llmtest",
	})
}

// anthropicErrorType is the error type the API sends with a status.
func anthropicErrorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == 529:
		return "overloaded_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

func (s *Server) handleAnthropic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/messages" {
		writeAnthropicError(w, http.StatusNotFound, "not_found_error", "Not found: "+r.Method+" "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		writeAnthropicError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Method not allowed")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	req, prefix, decErr := decodeAnthropic(r, body)

	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	if s.apiKey != "" && req.APIKey != s.apiKey {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	if decErr != nil {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", decErr.Error())
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
			if reply.Status == 529 {
				msg = "Overloaded"
			}
		}
		writeAnthropicError(w, reply.Status, anthropicErrorType(reply.Status), msg)
		return
	}
	s.respondAnthropic(w, r, req, prefix, reply)
}

// anthropicUsage is the usage the server reports for a reply.
func (s *Server) anthropicUsage(req ChatRequest, prefix string, reply Reply, calls []llm.ToolCall) map[string]int {
	if u := reply.Usage; u != nil {
		return map[string]int{"input_tokens": u.PromptTokens - u.CacheReadTokens - u.CacheWriteTokens,
			"output_tokens": u.CompletionTokens, "cache_read_input_tokens": u.CacheReadTokens,
			"cache_creation_input_tokens": u.CacheWriteTokens}
	}
	input := 0
	for _, m := range req.Messages {
		input += len(strings.Fields(m.Content))
	}
	output := len(strings.Fields(reply.Text)) + len(strings.Fields(reply.Thinking))
	for _, c := range calls {
		output += 1 + len(strings.Fields(c.Arguments))
	}
	u := map[string]int{"input_tokens": input, "output_tokens": output, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
	if prefix != "" {
		n := len(strings.Fields(prefix))
		s.mu.Lock()
		hit := s.cached[prefix]
		s.cached[prefix] = true
		s.mu.Unlock()
		if hit {
			u["cache_read_input_tokens"] = n
		} else {
			u["cache_creation_input_tokens"] = n
		}
		u["input_tokens"] = max(0, input-n)
	}
	return u
}

func (s *Server) respondAnthropic(w http.ResponseWriter, r *http.Request, req ChatRequest, prefix string, reply Reply) {
	model := reply.Model
	if model == "" {
		model = req.Model
	}
	calls := make([]llm.ToolCall, len(reply.ToolCalls))
	copy(calls, reply.ToolCalls)
	for i := range calls {
		if calls[i].ID == "" {
			calls[i].ID = fmt.Sprintf("toolu_%d", i)
		}
		if strings.TrimSpace(calls[i].Arguments) == "" {
			calls[i].Arguments = "{}"
		}
	}
	stop := reply.FinishReason
	if stop == "" {
		stop = "end_turn"
		if len(calls) > 0 {
			stop = "tool_use"
		}
	}
	usage := s.anthropicUsage(req, prefix, reply, calls)
	id := fmt.Sprintf("msg_llmtest_%d", s.RequestCount())

	type block = map[string]any
	var content []block
	if reply.Thinking != "" {
		content = append(content, block{"type": "thinking", "thinking": reply.Thinking, "signature": "sig:" + reply.Thinking})
	}
	if reply.Text != "" {
		content = append(content, block{"type": "text", "text": reply.Text})
	}
	for _, c := range calls {
		content = append(content, block{"type": "tool_use", "id": c.ID, "name": c.Name, "input": json.RawMessage(c.Arguments)})
	}
	if reply.JSON || !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "type": "message", "role": "assistant", "model": model,
			"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}

	type event struct {
		name string
		data any
	}
	startUsage := map[string]int{"input_tokens": usage["input_tokens"], "output_tokens": 1,
		"cache_read_input_tokens": usage["cache_read_input_tokens"], "cache_creation_input_tokens": usage["cache_creation_input_tokens"]}
	events := []event{{"message_start", block{"type": "message_start", "message": block{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": startUsage}}}}
	size := reply.ChunkSize
	if size <= 0 {
		size = 4
	}
	for i, b := range content {
		start := block{"type": "content_block_start", "index": i}
		var deltas []block
		switch b["type"] {
		case "thinking":
			start["content_block"] = block{"type": "thinking", "thinking": "", "signature": ""}
			for _, piece := range splitRunes(reply.Thinking, size) {
				deltas = append(deltas, block{"type": "thinking_delta", "thinking": piece})
			}
			deltas = append(deltas, block{"type": "signature_delta", "signature": b["signature"]})
		case "text":
			start["content_block"] = block{"type": "text", "text": ""}
			for _, piece := range splitRunes(reply.Text, size) {
				deltas = append(deltas, block{"type": "text_delta", "text": piece})
			}
		case "tool_use":
			start["content_block"] = block{"type": "tool_use", "id": b["id"], "name": b["name"], "input": block{}}
			for _, piece := range splitRunes(string(b["input"].(json.RawMessage)), size) {
				deltas = append(deltas, block{"type": "input_json_delta", "partial_json": piece})
			}
		}
		events = append(events, event{"content_block_start", start})
		if i == 0 {
			events = append(events, event{"ping", block{"type": "ping"}})
		}
		for _, d := range deltas {
			events = append(events, event{"content_block_delta", block{"type": "content_block_delta", "index": i, "delta": d}})
		}
		events = append(events, event{"content_block_stop", block{"type": "content_block_stop", "index": i}})
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	sent := 0
	send := func(ev event) bool {
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
		data, err := json.Marshal(ev.data)
		if err != nil {
			panic(err) // our own types always encode
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, data); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		sent++
		return true
	}
	for _, ev := range events {
		if !send(ev) {
			return
		}
	}
	if reply.StreamError != "" {
		send(event{"error", block{"type": "error", "error": block{"type": "overloaded_error", "message": reply.StreamError}}})
		return
	}
	if !send(event{"message_delta", block{"type": "message_delta",
		"delta": block{"stop_reason": stop, "stop_sequence": nil}, "usage": block{"output_tokens": usage["output_tokens"]}}}) {
		return
	}
	send(event{"message_stop", block{"type": "message_stop"}})
}
