package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openintern/openintern/internal/httpretry"
)

// Defaults of OpenAIConfig.
const (
	DefaultOpenAIBaseURL = "https://api.openai.com/v1"
	DefaultTimeout       = 120 * time.Second
	DefaultMaxRetries    = 3
	DefaultBackoffBase   = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// maxLineBytes bounds one SSE line (or a whole non-streaming JSON body).
const maxLineBytes = 16 << 20

// OpenAIConfig configures an OpenAI-compatible chat-completions provider.
type OpenAIConfig struct {
	// Name is what Name() reports ("openai" when empty), e.g. "ollama".
	Name string
	// BaseURL is the API root, DefaultOpenAIBaseURL when empty. Requests go to
	// BaseURL + "/chat/completions", e.g. http://127.0.0.1:11434/v1 for Ollama.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>" when not empty.
	APIKey string
	// Model is used when Request.Model is empty.
	Model string
	// Timeout bounds each attempt's wait for the response headers and every
	// gap between two reads of the stream (an idle timeout), not the length of
	// a whole stream. DefaultTimeout when zero.
	Timeout time.Duration
	// MaxRetries is how many times a failed attempt (429, 5xx, 408, network
	// error, broken stream before any text was streamed) is retried.
	// DefaultMaxRetries when zero; negative disables retries.
	MaxRetries int
	// BackoffBase is the first retry delay, doubled on each further retry
	// with jitter, capped by MaxBackoff. A Retry-After header takes precedence
	// (still capped by MaxBackoff). Defaults: DefaultBackoffBase, DefaultMaxBackoff.
	BackoffBase time.Duration
	MaxBackoff  time.Duration
	// HTTPClient sends the requests; NewHTTPClient's when nil. Its own
	// Timeout, if any, applies in addition to Timeout.
	HTTPClient *http.Client
	// Logger receives retry warnings and debug lines; discarded when nil.
	Logger *slog.Logger
}

// OpenAI is a Provider speaking the OpenAI chat-completions wire format with
// streaming (server-sent events) and tool calls. It works with OpenAI and
// compatible servers (Ollama, vLLM, DeepSeek, Qwen/DashScope, ...). It is safe
// for concurrent use.
type OpenAI struct {
	name        string
	endpoint    string
	apiKey      string
	model       string
	timeout     time.Duration
	maxRetries  int
	backoffBase time.Duration
	maxBackoff  time.Duration
	client      *http.Client
	log         *slog.Logger

	// noStreamOptions is set once a server rejected stream_options.
	mu              sync.Mutex
	noStreamOptions bool
}

var _ Provider = (*OpenAI)(nil)

// NewOpenAI returns an OpenAI-compatible provider; zero fields of cfg take
// their defaults.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	p := &OpenAI{
		name:        cfg.Name,
		apiKey:      cfg.APIKey,
		model:       cfg.Model,
		timeout:     cfg.Timeout,
		maxRetries:  cfg.MaxRetries,
		backoffBase: cfg.BackoffBase,
		maxBackoff:  cfg.MaxBackoff,
		client:      cfg.HTTPClient,
		log:         cfg.Logger,
	}
	if p.name == "" {
		p.name = "openai"
	}
	base := strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")
	if base == "" {
		base = DefaultOpenAIBaseURL
	}
	if strings.HasSuffix(base, "/chat/completions") {
		p.endpoint = base
	} else {
		p.endpoint = base + "/chat/completions"
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	p.maxRetries = retriesOf(p.maxRetries)
	if p.backoffBase <= 0 {
		p.backoffBase = DefaultBackoffBase
	}
	if p.maxBackoff <= 0 {
		p.maxBackoff = DefaultMaxBackoff
	}
	if p.client == nil {
		p.client = NewHTTPClient()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("llm", p.name)
	return p
}

// Name reports the provider's name ("openai" unless configured otherwise).
func (p *OpenAI) Name() string { return p.name }

// Endpoint is the URL requests are posted to.
func (p *OpenAI) Endpoint() string { return p.endpoint }

// Complete implements Provider.
func (p *OpenAI) Complete(ctx context.Context, req Request, onToken TokenFunc) (Response, error) {
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

	var lastErr error
	for attempt := 0; ; attempt++ {
		p.mu.Lock()
		withStreamOptions := !p.noStreamOptions
		p.mu.Unlock()
		body, err := json.Marshal(buildWireRequest(model, req, withStreamOptions))
		if err != nil {
			return Response{}, fmt.Errorf("%w: %s: encode request: %w", ErrBadRequest, p.name, err)
		}

		start := time.Now()
		resp, att := p.attempt(ctx, body, model, onToken)
		if att.err == nil {
			p.log.Debug("llm call done", "model", resp.Model, "attempt", attempt+1,
				"duration", time.Since(start), "finish_reason", resp.FinishReason,
				"tool_calls", len(resp.ToolCalls), "total_tokens", resp.Usage.TotalTokens)
			return resp, nil
		}
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("llm: %s: %w", p.name, ctx.Err())
		}
		if att.streamOptionsRejected && withStreamOptions {
			p.mu.Lock()
			p.noStreamOptions = true
			p.mu.Unlock()
			p.log.Info("server rejected stream_options; retrying without it", "error", att.err)
			attempt-- // not counted as a retry
			continue
		}
		lastErr = withAttempts(att.err, attempt+1)
		if !att.retryable || att.streamed || attempt >= p.maxRetries {
			break
		}
		delay := p.backoff(attempt, att.retryAfter)
		p.log.Warn("llm call failed; retrying", "attempt", attempt+1, "max_retries", p.maxRetries,
			"delay", delay, "error", att.err)
		if err := httpretry.Sleep(ctx, delay); err != nil {
			return Response{}, fmt.Errorf("llm: %s: %w", p.name, err)
		}
	}
	return Response{}, lastErr
}

// retriesOf reads a configured MaxRetries: DefaultMaxRetries when zero, none
// when negative.
func retriesOf(n int) int {
	switch {
	case n == 0:
		return DefaultMaxRetries
	case n < 0:
		return 0
	}
	return n
}

// withAttempts notes the number of attempts in err when there were several.
func withAttempts(err error, attempts int) error {
	if attempts <= 1 {
		return err
	}
	return fmt.Errorf("%w (after %d attempts)", err, attempts)
}

// backoff is the delay before retry number attempt+1.
func (p *OpenAI) backoff(attempt int, retryAfter time.Duration) time.Duration {
	return httpretry.Backoff(attempt, p.backoffBase, p.maxBackoff, retryAfter)
}

// attemptResult describes how one attempt failed.
type attemptResult struct {
	err                   error
	retryable             bool
	streamed              bool // text was already passed to onToken
	retryAfter            time.Duration
	streamOptionsRejected bool
}

// errIdle is the cancellation cause when the server sent nothing for Timeout.
var errIdle = errors.New("idle timeout")

func (p *OpenAI) attempt(ctx context.Context, body []byte, model string, onToken TokenFunc) (Response, attemptResult) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(p.timeout, func() { cancel(errIdle) })
	defer idle.Stop()

	// failed classifies an error of the transport or of reading the body.
	failed := func(what string, err error, streamed bool) attemptResult {
		if ctx.Err() != nil {
			return attemptResult{err: ctx.Err()}
		}
		if errors.Is(context.Cause(actx), errIdle) {
			return attemptResult{
				err: fmt.Errorf("%w: %s: %s: no data from server for %s: %w",
					ErrUnavailable, p.name, what, p.timeout, context.DeadlineExceeded),
				retryable: true, streamed: streamed,
			}
		}
		return attemptResult{
			err:       fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, p.name, what, err),
			retryable: true, streamed: streamed,
		}
	}

	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return Response{}, attemptResult{err: fmt.Errorf("%w: %s: %w", ErrBadRequest, p.name, err)}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream, application/json")
	hreq.Header.Set("User-Agent", "openintern")
	if p.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+p.apiKey)
	}

	hresp, err := p.client.Do(hreq)
	if err != nil {
		return Response{}, failed("request", err, false)
	}
	defer hresp.Body.Close()
	idle.Reset(p.timeout)

	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		return Response{}, p.statusError(ctx, hresp)
	}

	body2 := &idleReader{r: hresp.Body, timer: idle, timeout: p.timeout}
	mediaType, _, _ := mime.ParseMediaType(hresp.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		resp, err := decodeCompletion(io.LimitReader(body2, maxLineBytes))
		if err != nil {
			var apiErr *streamAPIError
			if errors.As(err, &apiErr) {
				return Response{}, attemptResult{err: fmt.Errorf("%w: %s: %s", ErrUnavailable, p.name, apiErr.msg), retryable: true}
			}
			if ctx.Err() != nil || context.Cause(actx) != nil {
				return Response{}, failed("read response", err, false)
			}
			return Response{}, attemptResult{err: fmt.Errorf("%w: %s: decode response: %w", ErrUnavailable, p.name, err), retryable: true}
		}
		if resp.Model == "" {
			resp.Model = model
		}
		if resp.Content != "" && onToken != nil {
			onToken(resp.Content)
		}
		return resp, attemptResult{}
	}

	acc := newStreamAccumulator()
	sawDone, err := readSSE(body2, func(data []byte) error {
		return acc.add(data, onToken)
	})
	if err != nil {
		var apiErr *streamAPIError
		if errors.As(err, &apiErr) {
			return Response{}, attemptResult{
				err:       fmt.Errorf("%w: %s: error in stream: %s", ErrUnavailable, p.name, apiErr.msg),
				retryable: true, streamed: acc.streamed,
			}
		}
		var decErr *chunkDecodeError
		if errors.As(err, &decErr) {
			return Response{}, attemptResult{
				err:       fmt.Errorf("%w: %s: %w", ErrUnavailable, p.name, err),
				retryable: true, streamed: acc.streamed,
			}
		}
		return Response{}, failed("read stream", err, acc.streamed)
	}
	if !sawDone && !acc.done {
		return Response{}, attemptResult{
			err:       fmt.Errorf("%w: %s: stream ended before it was complete", ErrUnavailable, p.name),
			retryable: true, streamed: acc.streamed,
		}
	}
	if sawDone {
		// A compliant server ends the response right after [DONE]; reading
		// to the end lets the transport reuse the connection. Give it little
		// time: the answer is complete already.
		idle.Reset(100 * time.Millisecond)
		_, _ = io.Copy(io.Discard, io.LimitReader(hresp.Body, 4<<10))
	}
	resp := acc.response()
	if resp.Model == "" {
		resp.Model = model
	}
	return resp, attemptResult{}
}

// statusError turns a non-2xx response into an attemptResult.
func (p *OpenAI) statusError(ctx context.Context, hresp *http.Response) attemptResult {
	raw, _ := io.ReadAll(io.LimitReader(hresp.Body, 64<<10))
	if ctx.Err() != nil {
		return attemptResult{err: ctx.Err()}
	}
	msg := errorMessage(raw)
	if msg == "" {
		msg = http.StatusText(hresp.StatusCode)
	}
	code := hresp.StatusCode
	detail := fmt.Sprintf("%s: HTTP %d: %s", p.name, code, msg)
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return attemptResult{err: fmt.Errorf("%w: %s", ErrAuth, detail)}
	case code == http.StatusTooManyRequests:
		return attemptResult{err: fmt.Errorf("%w: %s", ErrRateLimited, detail), retryable: true,
			retryAfter: httpretry.After(hresp.Header)}
	case code >= 500 || code == http.StatusRequestTimeout:
		return attemptResult{err: fmt.Errorf("%w: %s", ErrUnavailable, detail), retryable: true,
			retryAfter: httpretry.After(hresp.Header)}
	default:
		return attemptResult{
			err:                   fmt.Errorf("%w: %s", ErrBadRequest, detail),
			streamOptionsRejected: code == http.StatusBadRequest && strings.Contains(msg, "stream_options"),
		}
	}
}

// errorMessage extracts the message of an OpenAI-shaped error body
// ({"error":{"message":...}}), or of the shapes other servers use
// ({"error":"..."}, {"message":...}, {"detail":...}), else the trimmed body.
func errorMessage(raw []byte) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(raw, &e) == nil {
		if len(e.Error) > 0 {
			var obj struct {
				Message string `json:"message"`
			}
			var s string
			if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
				return obj.Message
			}
			if json.Unmarshal(e.Error, &s) == nil && s != "" {
				return s
			}
		}
		if e.Message != "" {
			return e.Message
		}
		if len(e.Detail) > 0 {
			var s string
			if json.Unmarshal(e.Detail, &s) == nil {
				return s
			}
			return truncate(string(e.Detail), 500)
		}
	}
	return truncate(strings.TrimSpace(string(raw)), 500)
}

// idleReader resets the idle timer whenever data arrives.
type idleReader struct {
	r       io.Reader
	timer   *time.Timer
	timeout time.Duration
}

func (r *idleReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.timer.Reset(r.timeout)
	}
	return n, err
}

// readSSE calls fn with the data of each server-sent event until "[DONE]" or
// the end of r, and reports whether "[DONE]" was seen. Comment lines
// (keep-alives) and fields other than data are ignored.
func readSSE(r io.Reader, fn func(data []byte) error) (sawDone bool, err error) {
	sc := bufio.NewScanner(r)
	// The buffer grows as long lines need it: one of 64 KiB for every call
	// was a fifth of the daemon's allocations under load.
	sc.Buffer(make([]byte, 0, 4<<10), maxLineBytes)
	var data []byte
	dispatch := func() (bool, error) {
		d := bytes.TrimSpace(data)
		data = data[:0]
		if len(d) == 0 {
			return false, nil
		}
		if string(d) == "[DONE]" {
			return true, nil
		}
		return false, fn(d)
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if done, err := dispatch(); done || err != nil {
				return done, err
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		if string(field) != "data" {
			continue
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		// Tolerate servers that omit the blank line between events.
		if len(data) > 0 && (json.Valid(data) || string(bytes.TrimSpace(data)) == "[DONE]") {
			if done, err := dispatch(); done || err != nil {
				return done, err
			}
		}
		if len(data) > 0 {
			data = append(data, '\n')
		}
		data = append(data, value...)
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return dispatch()
}

// streamAPIError is an error object sent by the server inside a 200 response.
type streamAPIError struct{ msg string }

func (e *streamAPIError) Error() string { return e.msg }

// chunkDecodeError is a stream event that is not valid JSON.
type chunkDecodeError struct{ err error }

func (e *chunkDecodeError) Error() string { return "decode stream chunk: " + e.err.Error() }
func (e *chunkDecodeError) Unwrap() error { return e.err }

// Wire types of the chat-completions API.

type wireRequest struct {
	Model         string             `json:"model"`
	Messages      []wireMessage      `json:"messages"`
	Tools         []wireTool         `json:"tools,omitempty"`
	Temperature   *float64           `json:"temperature,omitempty"`
	MaxTokens     int                `json:"max_tokens,omitempty"`
	Stream        bool               `json:"stream"`
	StreamOptions *wireStreamOptions `json:"stream_options,omitempty"`
}

type wireStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type wireMessage struct {
	Role       string         `json:"role"`
	Content    *string        `json:"content"`
	Name       string         `json:"name,omitempty"`
	ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type wireToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type wireTool struct {
	Type     string       `json:"type"`
	Function wireToolSpec `json:"function"`
}

type wireToolSpec struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

// validName is what OpenAI accepts in a message's name field.
var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// emptySchema is sent for a tool without parameters.
const emptySchema = `{"type":"object","properties":{}}`

func buildWireRequest(model string, req Request, streamOptions bool) wireRequest {
	w := wireRequest{
		Model:       model,
		Messages:    make([]wireMessage, 0, len(req.Messages)),
		Temperature: req.Temperature,
		MaxTokens:   req.MaxTokens,
		Stream:      true,
	}
	if streamOptions {
		w.StreamOptions = &wireStreamOptions{IncludeUsage: true}
	}
	for _, m := range req.Messages {
		content := m.Content
		wm := wireMessage{Role: m.Role, Content: &content, ToolCallID: m.ToolCallID}
		// The name field is only valid on system/user/assistant messages and
		// only with a restricted alphabet; anything else would be a 400.
		if m.Role != RoleTool && validName.MatchString(m.Name) {
			wm.Name = m.Name
		}
		for _, tc := range m.ToolCalls {
			args := tc.Arguments
			if strings.TrimSpace(args) == "" {
				args = "{}"
			}
			wm.ToolCalls = append(wm.ToolCalls, wireToolCall{
				ID: tc.ID, Type: "function",
				Function: wireFunction{Name: tc.Name, Arguments: args},
			})
		}
		if len(wm.ToolCalls) > 0 && content == "" {
			wm.Content = nil // assistant message with only tool calls
		}
		w.Messages = append(w.Messages, wm)
	}
	for _, t := range req.Tools {
		params := t.Parameters
		if len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
			params = json.RawMessage(emptySchema)
		}
		w.Tools = append(w.Tools, wireTool{
			Type:     "function",
			Function: wireToolSpec{Name: t.Name, Description: t.Description, Parameters: params},
		})
	}
	return w
}

// wireChunk is one streamed chat.completion.chunk, or a whole non-streaming
// chat.completion (which has message instead of delta).
type wireChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index        int        `json:"index"`
		Delta        wireDelta  `json:"delta"`
		Message      *wireDelta `json:"message"`
		FinishReason *string    `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage          `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type wireDelta struct {
	Role      string         `json:"role"`
	Content   *string        `json:"content"`
	ToolCalls []wireToolCall `json:"tool_calls"`
}

// chunkError returns the server's error object in a chunk, if any.
func chunkError(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	msg := errorMessage(append(append([]byte(`{"error":`), raw...), '}'))
	if msg == "" {
		msg = "unknown error"
	}
	return &streamAPIError{msg: msg}
}

// streamAccumulator assembles a Response from stream chunks.
type streamAccumulator struct {
	model        string
	content      strings.Builder
	calls        []*toolCallBuilder
	byIndex      map[int]*toolCallBuilder
	finishReason string
	usage        Usage
	done         bool // a finish_reason or usage chunk was seen
	streamed     bool // onToken was called
}

type toolCallBuilder struct {
	index int
	id    string
	name  string
	args  strings.Builder
}

func newStreamAccumulator() *streamAccumulator {
	return &streamAccumulator{byIndex: map[int]*toolCallBuilder{}}
}

func (a *streamAccumulator) add(data []byte, onToken TokenFunc) error {
	var c wireChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return &chunkDecodeError{err: err}
	}
	if err := chunkError(c.Error); err != nil {
		return err
	}
	if c.Model != "" {
		a.model = c.Model
	}
	if c.Usage != nil && (c.Usage.TotalTokens > 0 || c.Usage.PromptTokens > 0 || c.Usage.CompletionTokens > 0) {
		a.usage = *c.Usage
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue // only the first choice is used (n=1)
		}
		d := ch.Delta
		if ch.Message != nil { // some servers put a whole message in a chunk
			d = *ch.Message
		}
		if d.Content != nil && *d.Content != "" {
			a.content.WriteString(*d.Content)
			if onToken != nil {
				a.streamed = true
				onToken(*d.Content)
			}
		}
		for _, tc := range d.ToolCalls {
			a.addToolCall(tc)
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			a.finishReason = *ch.FinishReason
			a.done = true
		}
	}
	return nil
}

func (a *streamAccumulator) addToolCall(tc wireToolCall) {
	var b *toolCallBuilder
	switch {
	case tc.Index != nil:
		b = a.byIndex[*tc.Index]
		// A server that reuses one index for distinct calls: a new id starts a new call.
		if b != nil && tc.ID != "" && b.id != "" && tc.ID != b.id {
			b = nil
		}
	case len(a.calls) > 0 && (tc.ID == "" || tc.ID == a.calls[len(a.calls)-1].id):
		b = a.calls[len(a.calls)-1] // no index: continues the last call
	}
	if b == nil {
		idx := len(a.calls)
		if tc.Index != nil {
			idx = *tc.Index
		}
		b = &toolCallBuilder{index: idx}
		a.calls = append(a.calls, b)
		a.byIndex[idx] = b
	}
	if b.id == "" {
		b.id = tc.ID
	}
	if b.name == "" {
		b.name = tc.Function.Name
	}
	b.args.WriteString(tc.Function.Arguments)
}

func (a *streamAccumulator) response() Response {
	r := Response{
		Model:        a.model,
		Content:      a.content.String(),
		FinishReason: a.finishReason,
		Usage:        a.usage,
	}
	calls := make([]*toolCallBuilder, len(a.calls))
	copy(calls, a.calls)
	sort.SliceStable(calls, func(i, j int) bool { return calls[i].index < calls[j].index })
	for i, b := range calls {
		id := b.id
		if id == "" {
			id = fmt.Sprintf("call_%d", i)
		}
		r.ToolCalls = append(r.ToolCalls, ToolCall{ID: id, Name: b.name, Arguments: b.args.String()})
	}
	if r.FinishReason == "" {
		r.FinishReason = "stop"
		if len(r.ToolCalls) > 0 {
			r.FinishReason = "tool_calls"
		}
	}
	if r.Usage.TotalTokens == 0 {
		r.Usage.TotalTokens = r.Usage.PromptTokens + r.Usage.CompletionTokens
	}
	return r
}

// decodeCompletion reads a non-streaming chat.completion body.
func decodeCompletion(r io.Reader) (Response, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return Response{}, err
	}
	a := newStreamAccumulator()
	if err := a.add(raw, nil); err != nil {
		return Response{}, err
	}
	resp := a.response()
	return resp, nil
}

// truncate shortens s to at most n runes, marking a cut with "…".
func truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i] + "…"
		}
		count++
	}
	return s
}
