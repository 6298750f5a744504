package llm

import (
	"context"
	"encoding/json"
	"errors"
)

// Roles of chat messages.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	Name       string     `json:"name,omitempty"`
}

// ToolCall is a model's request to run a tool. Arguments is the raw JSON text
// the model produced (it may be invalid JSON; the tool router reports that).
type ToolCall struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolSpec describes a tool to the model. Parameters is a JSON schema object.
type ToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
}

// Request is one chat completion request.
type Request struct {
	Model       string
	Messages    []Message
	Tools       []ToolSpec
	Temperature *float64
	MaxTokens   int
}

// Usage counts tokens of one call.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// CacheReadTokens: prompt tokens served from the provider's cache (part of PromptTokens).
	CacheReadTokens int `json:"cache_read_tokens,omitempty"`
}

// Response is a model's whole answer: text, tool calls, or both.
type Response struct {
	Model        string     `json:"model"`
	Content      string     `json:"content"`
	ToolCalls    []ToolCall `json:"tool_calls,omitempty"`
	FinishReason string     `json:"finish_reason"`
	Usage        Usage      `json:"usage"`
}

// TokenFunc receives streamed text deltas as they arrive. It must not block for long.
type TokenFunc func(delta string)

// Provider is a language model backend.
type Provider interface {
	// Name is the provider's name for logs and events ("openai", "offline", ...).
	Name() string
	// Complete sends the request, streams text deltas to onToken (which may be
	// nil), and returns the whole response. It returns when ctx is cancelled.
	Complete(ctx context.Context, req Request, onToken TokenFunc) (Response, error)
}

// Errors a provider returns, wrapped with detail. Callers test them with errors.Is.
var (
	// ErrAuth: the provider refused the credentials (401/403). Not retried.
	ErrAuth = errors.New("llm: authentication failed")
	// ErrRateLimited: still 429 after the retries.
	ErrRateLimited = errors.New("llm: rate limited")
	// ErrUnavailable: 5xx or network failure after the retries.
	ErrUnavailable = errors.New("llm: provider unavailable")
	// ErrBadRequest: the provider rejected the request (4xx other than 401/403/429).
	ErrBadRequest = errors.New("llm: bad request")
)
