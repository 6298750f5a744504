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
	// Thinking is the reasoning an assistant message came with, kept so the
	// provider that produced it gets it back: Anthropic wants its signed
	// thinking blocks again within a tool loop. Other providers skip it, so
	// an agent can switch provider between turns.
	Thinking []Thinking `json:"thinking,omitempty"`
}

// Thinking is one block of a model's extended thinking. It is opaque to the
// rest of the system: shown in the trace, never sent to a model as text.
type Thinking struct {
	// Provider made the block ("anthropic"); only it is sent the block back.
	Provider string `json:"provider"`
	Text     string `json:"text,omitempty"`
	// Signature authenticates Text to the provider.
	Signature string `json:"signature,omitempty"`
	// Redacted holds the encrypted data of a redacted thinking block.
	Redacted string `json:"redacted,omitempty"`
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
	// CacheReadTokens and CacheWriteTokens are the prompt tokens read from
	// and written to the provider's prompt cache; both are part of
	// PromptTokens.
	CacheReadTokens  int `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int `json:"cache_write_tokens,omitempty"`
}

// Response is a model's whole answer: text, tool calls, or both.
type Response struct {
	Model        string     `json:"model"`
	Content      string     `json:"content"`
	ToolCalls    []ToolCall `json:"tool_calls,omitempty"`
	FinishReason string     `json:"finish_reason"`
	Usage        Usage      `json:"usage"`
	// Thinking is the model's extended thinking, when it was asked for.
	Thinking []Thinking `json:"thinking,omitempty"`
	// Provider names the provider that answered (set by a Router; "" means
	// the one Complete was called on).
	Provider string `json:"provider,omitempty"`
	// FallbackFrom is the model asked first when a fallback answered, and
	// Failed the attempts that failed before the answer, in order.
	FallbackFrom string          `json:"fallback_from,omitempty"`
	Failed       []FailedAttempt `json:"failed,omitempty"`
}

// FailedAttempt is a model a Router tried that failed before another answered.
type FailedAttempt struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Error    string `json:"error"`
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
