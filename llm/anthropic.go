package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/openintern/openintern/internal/httpretry"
)

// Defaults of AnthropicConfig.
const (
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultAnthropicModel   = "claude-sonnet-4-5"
	// DefaultAnthropicMaxTokens is sent as max_tokens (which the Messages API
	// requires) when a request sets none.
	DefaultAnthropicMaxTokens = 8192
)

// AnthropicConfig configures an Anthropic Messages API provider.
type AnthropicConfig struct {
	// Name is what Name() reports ("anthropic" when empty).
	Name string
	// BaseURL is the API root, DefaultAnthropicBaseURL when empty; requests
	// go to BaseURL + "/v1/messages".
	BaseURL string
	// APIKey authenticates the requests (the SDK sends it as a bearer token).
	APIKey string
	// Model is used when Request.Model is empty.
	Model string
	// Timeout bounds the wait for the response headers and every gap between
	// two reads of the stream. DefaultTimeout when zero.
	Timeout time.Duration
	// MaxRetries is how many times the SDK retries a 408/409/429/5xx (529
	// "overloaded" included) or a network failure, waiting what Retry-After
	// (or retry-after-ms) says, else an exponential backoff. An error event
	// inside a stream before any text was streamed is retried as well.
	// DefaultMaxRetries when zero; negative disables retries.
	MaxRetries int
	// MaxBackoff caps the wait a Retry-After asks for (DefaultMaxBackoff
	// when zero), so one server cannot hold a turn for an hour.
	MaxBackoff time.Duration
	// ThinkingBudget, when > 0, turns on extended thinking with that many
	// budget tokens (at least 1024 per the API).
	ThinkingBudget int
	// HTTPClient sends the requests (NewHTTPClient's when nil).
	HTTPClient *http.Client
	// Logger receives debug lines; discarded when nil.
	Logger *slog.Logger
}

// Anthropic is a Provider speaking the Anthropic Messages API through the
// official SDK, with streaming, tool use, prompt caching and extended
// thinking. It is safe for concurrent use.
type Anthropic struct {
	name       string
	model      string
	baseURL    string
	maxRetries int
	thinking   int
	timeout    time.Duration
	client     anthropic.Client
	log        *slog.Logger
}

var _ Provider = (*Anthropic)(nil)

// NewAnthropic returns an Anthropic provider; zero fields take their defaults.
func NewAnthropic(cfg AnthropicConfig) *Anthropic {
	p := &Anthropic{name: cfg.Name, model: cfg.Model, maxRetries: cfg.MaxRetries, thinking: cfg.ThinkingBudget,
		timeout: cfg.Timeout, log: cfg.Logger}
	if p.name == "" {
		p.name = "anthropic"
	}
	p.baseURL = strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")
	if p.baseURL == "" {
		p.baseURL = DefaultAnthropicBaseURL
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	p.maxRetries = retriesOf(p.maxRetries)
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("llm", p.name)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = NewHTTPClient()
	}
	// Credentials and the endpoint come from our configuration only, never
	// from the SDK's own reading of the environment.
	p.client = anthropic.NewClient(
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(cfg.APIKey),
		option.WithBaseURL(p.baseURL+"/"),
		option.WithMaxRetries(p.maxRetries),
		option.WithHTTPClient(hc),
		option.WithMiddleware(idleTimeout(p.timeout), capRetryAfter(cfg.MaxBackoff)),
		option.WithoutOpenTelemetry(), // the runtime has its own llm spans
	)
	return p
}

// Name reports the provider's name.
func (p *Anthropic) Name() string { return p.name }

// Endpoint is the URL requests are posted to.
func (p *Anthropic) Endpoint() string { return p.baseURL + "/v1/messages" }

// Complete implements Provider.
func (p *Anthropic) Complete(ctx context.Context, req Request, onToken TokenFunc) (Response, error) {
	model := req.Model
	if model == "" {
		model = p.model
	}
	if model == "" {
		return Response{}, fmt.Errorf("%w: %s: no model configured", ErrBadRequest, p.name)
	}
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("llm: %s: %w", p.name, err)
	}
	params, opts, err := p.buildParams(model, req)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %s: %w", ErrBadRequest, p.name, err)
	}
	// The SDK retries before a stream starts; an error event within the
	// stream (often "overloaded_error") is retried here, unless text was
	// streamed already.
	for attempt := 0; ; attempt++ {
		start := time.Now()
		resp, streamed, err := p.stream(ctx, params, opts, onToken)
		if err == nil {
			resp.Provider = p.name
			p.log.Debug("llm call done", "model", resp.Model, "duration", time.Since(start),
				"finish_reason", resp.FinishReason, "tool_calls", len(resp.ToolCalls),
				"total_tokens", resp.Usage.TotalTokens, "cache_read_tokens", resp.Usage.CacheReadTokens)
			return resp, nil
		}
		var se *inStreamError
		if ctx.Err() != nil || streamed || !errors.As(err, &se) || !se.retryable || attempt >= p.maxRetries {
			return Response{}, err
		}
		p.log.Warn("llm stream failed; retrying", "attempt", attempt+1, "error", err)
		if err := httpretry.Sleep(ctx, DefaultBackoffBase<<attempt); err != nil {
			return Response{}, fmt.Errorf("llm: %s: %w", p.name, err)
		}
	}
}

// inStreamError is a failure after the response started (an error event or
// a broken stream), which the SDK does not retry.
type inStreamError struct {
	err       error
	retryable bool
}

func (e *inStreamError) Error() string { return e.err.Error() }
func (e *inStreamError) Unwrap() error { return e.err }

// stream makes one streamed call; streamed reports whether onToken was called.
func (p *Anthropic) stream(ctx context.Context, params anthropic.MessageNewParams, opts []option.RequestOption, onToken TokenFunc) (resp Response, streamed bool, err error) {
	s := p.client.Messages.NewStreaming(ctx, params, opts...)
	defer s.Close()
	var msg anthropic.Message
	started, stopped := false, false
	for s.Next() {
		ev := s.Current()
		started = true
		if err := msg.Accumulate(ev); err != nil {
			return Response{}, streamed, &inStreamError{err: fmt.Errorf("%w: %s: %w", ErrUnavailable, p.name, err), retryable: true}
		}
		switch ev.Type {
		case "content_block_delta":
			if ev.Delta.Type == "text_delta" && ev.Delta.Text != "" && onToken != nil {
				streamed = true
				onToken(ev.Delta.Text)
			}
		case "message_stop":
			stopped = true
		}
	}
	if err := s.Err(); err != nil {
		mapped, retryable := p.mapError(ctx, err)
		if started || isStreamEventError(err) {
			return Response{}, streamed, &inStreamError{err: mapped, retryable: retryable}
		}
		return Response{}, streamed, mapped
	}
	if !stopped {
		return Response{}, streamed, &inStreamError{
			err:       fmt.Errorf("%w: %s: stream ended before message_stop", ErrUnavailable, p.name),
			retryable: true,
		}
	}
	return p.response(msg), streamed, nil
}

// isStreamEventError reports whether err came from an "error" event of a
// 200 stream (the SDK gives it the stream's status).
func isStreamEventError(err error) bool {
	var apiErr *anthropic.Error
	return errors.As(err, &apiErr) && apiErr.StatusCode >= 200 && apiErr.StatusCode < 300
}

// mapError turns an SDK error into ours, with the provider's message, and
// says whether trying again could help.
func (p *Anthropic) mapError(ctx context.Context, err error) (error, bool) {
	if ctx.Err() != nil {
		return fmt.Errorf("llm: %s: %w", p.name, ctx.Err()), false
	}
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) {
		if errors.Is(err, errIdle) {
			err = fmt.Errorf("no data from server for %s: %w", p.timeout, context.DeadlineExceeded)
		}
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, p.name, err), true
	}
	msg := apiErr.Message
	if msg == "" {
		msg = errorMessage([]byte(apiErr.RawJSON()))
	}
	if msg == "" {
		msg = http.StatusText(apiErr.StatusCode)
	}
	typ := string(apiErr.Type())
	code := apiErr.StatusCode
	detail := fmt.Sprintf("%s: HTTP %d: %s", p.name, code, msg)
	if code >= 200 && code < 300 {
		detail = fmt.Sprintf("%s: error in stream: %s: %s", p.name, typ, msg)
	}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden ||
		typ == "authentication_error" || typ == "permission_error":
		return fmt.Errorf("%w: %s", ErrAuth, detail), false
	case code == http.StatusTooManyRequests || typ == "rate_limit_error":
		return fmt.Errorf("%w: %s", ErrRateLimited, detail), true
	case code >= 500 || code == http.StatusRequestTimeout || typ == "overloaded_error" ||
		typ == "api_error" || typ == "timeout_error" || (code >= 200 && code < 300 && typ == ""):
		return fmt.Errorf("%w: %s", ErrUnavailable, detail), true
	default:
		return fmt.Errorf("%w: %s", ErrBadRequest, detail), false
	}
}

// response converts the accumulated message.
func (p *Anthropic) response(msg anthropic.Message) Response {
	r := Response{Model: string(msg.Model)}
	var text strings.Builder
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := strings.TrimSpace(string(b.Input))
			if args == "" {
				args = "{}"
			}
			r.ToolCalls = append(r.ToolCalls, ToolCall{ID: b.ID, Name: b.Name, Arguments: args})
		case "thinking":
			r.Thinking = append(r.Thinking, Thinking{Provider: "anthropic", Text: b.Thinking, Signature: b.Signature})
		case "redacted_thinking":
			r.Thinking = append(r.Thinking, Thinking{Provider: "anthropic", Redacted: b.Data})
		}
	}
	r.Content = text.String()
	switch msg.StopReason {
	case "end_turn", "stop_sequence", "":
		r.FinishReason = "stop"
	case "tool_use":
		r.FinishReason = "tool_calls"
	case "max_tokens", "model_context_window_exceeded":
		r.FinishReason = "length"
	case "refusal":
		r.FinishReason = "content_filter"
	default:
		r.FinishReason = string(msg.StopReason)
	}
	if r.FinishReason == "stop" && len(r.ToolCalls) > 0 {
		r.FinishReason = "tool_calls"
	}
	u := msg.Usage
	r.Usage = Usage{
		// input_tokens counts only what is after the last cache breakpoint;
		// ours, like OpenAI's prompt_tokens, counts the whole prompt.
		PromptTokens:     int(u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens),
		CompletionTokens: int(u.OutputTokens),
		CacheReadTokens:  int(u.CacheReadInputTokens),
		CacheWriteTokens: int(u.CacheCreationInputTokens),
	}
	r.Usage.TotalTokens = r.Usage.PromptTokens + r.Usage.CompletionTokens
	return r
}

// buildParams maps our provider-neutral request to the Messages API.
func (p *Anthropic) buildParams(model string, req Request) (anthropic.MessageNewParams, []option.RequestOption, error) {
	params := anthropic.MessageNewParams{Model: anthropic.Model(model)}
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = DefaultAnthropicMaxTokens
	}
	var opts []option.RequestOption
	if p.thinking > 0 {
		params.Thinking = anthropic.ThinkingConfigParamUnion{OfEnabled: &anthropic.ThinkingConfigEnabledParam{BudgetTokens: int64(p.thinking)}}
		// max_tokens must exceed the thinking budget.
		maxTokens = max(maxTokens, p.thinking+DefaultAnthropicMaxTokens/2)
	} else if req.Temperature != nil {
		// Thinking does not allow a temperature; without it the API does.
		opts = append(opts, option.WithJSONSet("temperature", *req.Temperature))
	}
	params.MaxTokens = int64(maxTokens)

	var turns []anthropic.MessageParam
	// add appends blocks to the conversation, merging them into the last
	// turn when it has the same role: the API wants user and assistant to
	// alternate, and all tool results of a step in one user turn.
	add := func(assistant bool, blocks ...anthropic.ContentBlockParamUnion) {
		if len(blocks) == 0 {
			return
		}
		if n := len(turns); n > 0 {
			last := &turns[n-1]
			if assistant && last.OfAssistant != nil {
				last.OfAssistant.Content = append(last.OfAssistant.Content, blocks...)
				return
			}
			if !assistant && last.OfUser != nil {
				last.OfUser.Content = append(last.OfUser.Content, blocks...)
				return
			}
		}
		if assistant {
			turns = append(turns, anthropic.NewAssistantMessage(blocks...))
		} else {
			turns = append(turns, anthropic.NewUserMessage(blocks...))
		}
	}
	for _, m := range req.Messages {
		switch m.Role {
		case RoleSystem:
			if strings.TrimSpace(m.Content) != "" {
				params.System = append(params.System, anthropic.TextBlockParam{Text: m.Content})
			}
		case RoleAssistant:
			var blocks []anthropic.ContentBlockParamUnion
			for _, th := range m.Thinking {
				switch {
				case th.Provider != "anthropic":
				case th.Redacted != "":
					blocks = append(blocks, anthropic.NewRedactedThinkingBlock(th.Redacted))
				case th.Signature != "":
					blocks = append(blocks, anthropic.NewThinkingBlock(th.Signature, th.Text))
				}
			}
			if m.Content != "" {
				blocks = append(blocks, anthropic.NewTextBlock(m.Content))
			}
			for _, tc := range m.ToolCalls {
				blocks = append(blocks, anthropic.NewToolUseBlock(tc.ID, toolInput(tc.Arguments), tc.Name))
			}
			add(true, blocks...)
		case RoleTool:
			content := m.Content
			if content == "" {
				content = "(no output)"
			}
			add(false, anthropic.NewToolResultBlock(m.ToolCallID, content, false))
		default:
			content := m.Content
			if strings.TrimSpace(content) == "" {
				content = "(empty message)" // the API refuses empty text blocks
			}
			add(false, anthropic.NewTextBlock(content))
		}
	}
	if len(turns) == 0 || turns[0].OfUser == nil {
		// The conversation must start with a user turn.
		turns = append([]anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("(conversation start)"))}, turns...)
	}
	params.Messages = turns

	// Prompt caching: tools, then system, then messages form the prefix. A
	// breakpoint on the last tool caches the tool list; one on the first
	// system block (the agent's prompt with its core memory) caches that too.
	// Later system blocks (recalled memories) change per turn: after it.
	if len(params.System) > 0 {
		params.System[0].CacheControl = anthropic.NewCacheControlEphemeralParam()
	}
	for i, t := range req.Tools {
		schema, err := toolSchema(t.Parameters)
		if err != nil {
			return params, nil, fmt.Errorf("tool %s: %w", t.Name, err)
		}
		tp := &anthropic.ToolParam{Name: t.Name, InputSchema: schema}
		if t.Description != "" {
			tp.Description = anthropic.String(t.Description)
		}
		if i == len(req.Tools)-1 {
			tp.CacheControl = anthropic.NewCacheControlEphemeralParam()
		}
		params.Tools = append(params.Tools, anthropic.ToolUnionParam{OfTool: tp})
	}
	return params, opts, nil
}

// toolInput is a tool call's arguments as the JSON object the API wants;
// arguments that are not an object (a model's mistake) become {}.
func toolInput(args string) json.RawMessage {
	raw := json.RawMessage(strings.TrimSpace(args))
	var obj map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &obj) != nil || obj == nil {
		return json.RawMessage(`{}`)
	}
	return raw
}

// toolSchema maps a JSON schema object onto the SDK's input schema.
func toolSchema(params json.RawMessage) (anthropic.ToolInputSchemaParam, error) {
	var s anthropic.ToolInputSchemaParam
	raw := strings.TrimSpace(string(params))
	if raw == "" || raw == "null" {
		s.Properties = map[string]any{}
		return s, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return s, fmt.Errorf("parameters are not a JSON object: %w", err)
	}
	s.Properties = m["properties"]
	if s.Properties == nil {
		s.Properties = map[string]any{}
	}
	if req, ok := m["required"].([]any); ok {
		for _, r := range req {
			if name, ok := r.(string); ok {
				s.Required = append(s.Required, name)
			}
		}
	}
	for k, v := range m {
		if k == "type" || k == "properties" || k == "required" {
			continue
		}
		if s.ExtraFields == nil {
			s.ExtraFields = map[string]any{}
		}
		s.ExtraFields[k] = v
	}
	return s, nil
}

// idleTimeout is SDK middleware that fails an attempt when the server sends
// nothing for d: neither headers nor, later, any part of the stream. (The
// SDK's own request timeout would also cut a long but lively stream.)
func idleTimeout(d time.Duration) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		ctx, cancel := context.WithCancelCause(req.Context())
		timer := time.AfterFunc(d, func() { cancel(errIdle) })
		res, err := next(req.WithContext(ctx))
		if err != nil || res == nil {
			timer.Stop()
			if context.Cause(ctx) == errIdle && req.Context().Err() == nil {
				err = fmt.Errorf("no response headers for %s: %w", d, errIdle)
			}
			cancel(nil)
			return res, err
		}
		timer.Reset(d)
		res.Body = &idleBody{rc: res.Body, timer: timer, d: d, cancel: cancel, ctx: ctx}
		return res, nil
	}
}

// capRetryAfter lowers a Retry-After (and retry-after-ms) above max, which
// the SDK would otherwise wait in full.
func capRetryAfter(maxWait time.Duration) option.Middleware {
	if maxWait <= 0 {
		maxWait = DefaultMaxBackoff
	}
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(req)
		if res != nil && res.StatusCode >= 400 && httpretry.After(res.Header) > maxWait {
			res.Header.Del("Retry-After-Ms")
			res.Header.Set("Retry-After", strconv.Itoa(int(maxWait.Round(time.Second)/time.Second)))
			if maxWait < time.Second {
				res.Header.Del("Retry-After")
				res.Header.Set("Retry-After-Ms", strconv.FormatInt(maxWait.Milliseconds(), 10))
			}
		}
		return res, err
	}
}

// idleBody restarts the idle timer whenever data arrives.
type idleBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	d      time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.d)
	}
	if err != nil && err != io.EOF && context.Cause(b.ctx) == errIdle {
		err = fmt.Errorf("read stream: %w", errIdle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.cancel(nil)
	})
	return err
}
