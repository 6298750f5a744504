package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/genai"

	"github.com/openintern/openintern/internal/httpretry"
)

// Defaults of GeminiConfig.
const (
	DefaultGeminiBaseURL = "https://generativelanguage.googleapis.com/"
	DefaultGeminiModel   = "gemini-2.5-flash"
)

// maxGeminiStreamBytes bounds one streamed response; the SDK itself would
// buffer a single line of up to 256 MB.
const maxGeminiStreamBytes = 64 << 20

// skipThoughtSignature is Google's documented placeholder for a functionCall
// part replayed without the thoughtSignature the model gave it. Gemini 3
// models reject such history otherwise; our provider-neutral history does
// not keep the opaque signatures.
const skipThoughtSignature = "skip_thought_signature_validator"

// GeminiConfig configures a Gemini API provider (generateContent, not Vertex AI).
type GeminiConfig struct {
	// APIKey is sent as x-goog-api-key; required.
	APIKey string
	// BaseURL is the API root, DefaultGeminiBaseURL when empty; the SDK
	// appends "v1beta/models/{model}:streamGenerateContent".
	BaseURL string
	// Model is used when Request.Model is empty (DefaultGeminiModel when empty).
	Model string
	// Timeout, MaxRetries, BackoffBase and MaxBackoff: as in OpenAIConfig.
	Timeout     time.Duration
	MaxRetries  int
	BackoffBase time.Duration
	MaxBackoff  time.Duration
	// HTTPClient sends the requests (its transport is wrapped);
	// NewHTTPClient's when nil.
	HTTPClient *http.Client
	// Logger receives retry warnings and debug lines; discarded when nil.
	Logger *slog.Logger
}

// Gemini is a Provider speaking Google's Gemini API through the official SDK
// (google.golang.org/genai), streaming with streamGenerateContent. The SDK's
// own retries stay off: Complete retries, honouring Retry-After, so one
// policy (MaxRetries) holds for every provider. It is safe for concurrent use.
type Gemini struct {
	client      *genai.Client
	baseURL     string
	model       string
	timeout     time.Duration
	maxRetries  int
	backoffBase time.Duration
	maxBackoff  time.Duration
	log         *slog.Logger
}

var _ Provider = (*Gemini)(nil)

// NewGemini returns a Gemini provider; zero fields of cfg take their defaults.
func NewGemini(cfg GeminiConfig) (*Gemini, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, errors.New("llm: provider \"gemini\" needs an API key (GEMINI_API_KEY or GOOGLE_API_KEY)")
	}
	g := &Gemini{
		baseURL:     strings.TrimSpace(cfg.BaseURL),
		model:       cfg.Model,
		timeout:     cfg.Timeout,
		maxRetries:  cfg.MaxRetries,
		backoffBase: cfg.BackoffBase,
		maxBackoff:  cfg.MaxBackoff,
		log:         cfg.Logger,
	}
	if g.baseURL == "" {
		g.baseURL = DefaultGeminiBaseURL
	}
	if !strings.HasSuffix(g.baseURL, "/") {
		g.baseURL += "/"
	}
	if g.model == "" {
		g.model = DefaultGeminiModel
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	g.maxRetries = retriesOf(g.maxRetries)
	if g.backoffBase <= 0 {
		g.backoffBase = DefaultBackoffBase
	}
	if g.maxBackoff <= 0 {
		g.maxBackoff = DefaultMaxBackoff
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("llm", "gemini")

	base := cfg.HTTPClient
	if base == nil {
		base = NewHTTPClient()
	}
	hc := *base
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = &geminiTransport{next: rt}
	client, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey:      cfg.APIKey,
		Backend:     genai.BackendGeminiAPI, // explicit, so GOOGLE_GENAI_USE_VERTEXAI cannot switch it
		HTTPClient:  &hc,
		HTTPOptions: genai.HTTPOptions{BaseURL: g.baseURL},
	})
	if err != nil {
		// The SDK's message prints the whole ClientConfig, API key included.
		return nil, errors.New("llm: gemini: cannot create the client")
	}
	g.client = client
	return g, nil
}

// Name implements Provider.
func (g *Gemini) Name() string { return "gemini" }

// Endpoint is the API root requests go to.
func (g *Gemini) Endpoint() string { return g.baseURL }

// Complete implements Provider.
func (g *Gemini) Complete(ctx context.Context, req Request, onToken TokenFunc) (Response, error) {
	model := req.Model
	if model == "" {
		model = g.model
	}
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("llm: gemini: %w", err)
	}
	contents, config, err := buildGeminiRequest(model, req)
	if err != nil {
		return Response{}, fmt.Errorf("%w: gemini: %w", ErrBadRequest, err)
	}

	var lastErr error
	for attempt := 0; ; attempt++ {
		start := time.Now()
		resp, att := g.attempt(ctx, model, contents, config, onToken)
		if att.err == nil {
			g.log.Debug("llm call done", "model", resp.Model, "attempt", attempt+1,
				"duration", time.Since(start), "finish_reason", resp.FinishReason,
				"tool_calls", len(resp.ToolCalls), "total_tokens", resp.Usage.TotalTokens)
			return resp, nil
		}
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("llm: gemini: %w", ctx.Err())
		}
		lastErr = withAttempts(att.err, attempt+1)
		if !att.retryable || att.streamed || attempt >= g.maxRetries {
			break
		}
		delay := httpretry.Backoff(attempt, g.backoffBase, g.maxBackoff, att.retryAfter)
		g.log.Warn("llm call failed; retrying", "attempt", attempt+1, "max_retries", g.maxRetries,
			"delay", delay, "error", att.err)
		if err := httpretry.Sleep(ctx, delay); err != nil {
			return Response{}, fmt.Errorf("llm: gemini: %w", err)
		}
	}
	return Response{}, lastErr
}

// geminiCall is what the transport learns about one attempt's HTTP exchange;
// it travels in the request context because the SDK's errors carry neither
// headers nor the idle timer.
type geminiCall struct {
	idle    *time.Timer
	timeout time.Duration

	mu         sync.Mutex
	retryAfter time.Duration
}

type geminiCallKey struct{}

// geminiTransport records Retry-After and resets the idle timer while the
// body streams in.
type geminiTransport struct{ next http.RoundTripper }

func (t *geminiTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	call, _ := req.Context().Value(geminiCallKey{}).(*geminiCall)
	if err != nil || call == nil {
		return resp, err
	}
	call.idle.Reset(call.timeout)
	call.mu.Lock()
	call.retryAfter = httpretry.After(resp.Header)
	call.mu.Unlock()
	resp.Body = &geminiBody{ReadCloser: resp.Body, call: call, left: maxGeminiStreamBytes}
	return resp, nil
}

// geminiBody resets the idle timer whenever data arrives and bounds the size.
type geminiBody struct {
	io.ReadCloser
	call *geminiCall
	left int64
}

var errGeminiTooLarge = errors.New("response larger than 64 MiB")

func (b *geminiBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errGeminiTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if n > 0 {
		b.call.idle.Reset(b.call.timeout)
	}
	return n, err
}

func (g *Gemini) attempt(ctx context.Context, model string, contents []*genai.Content, config *genai.GenerateContentConfig, onToken TokenFunc) (Response, attemptResult) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	call := &geminiCall{timeout: g.timeout}
	call.idle = time.AfterFunc(g.timeout, func() { cancel(errIdle) })
	defer call.idle.Stop()
	actx = context.WithValue(actx, geminiCallKey{}, call)

	acc := &geminiAccumulator{}
	var streamErr error
	for chunk, err := range g.client.Models.GenerateContentStream(actx, model, contents, config) {
		if err != nil {
			streamErr = err
			break
		}
		acc.add(chunk, onToken)
	}
	if streamErr != nil {
		return Response{}, g.classify(ctx, actx, call, streamErr, acc.streamed)
	}
	if !acc.done {
		return Response{}, attemptResult{
			err:       fmt.Errorf("%w: gemini: stream ended before it was complete", ErrUnavailable),
			retryable: true, streamed: acc.streamed,
		}
	}
	resp := acc.response()
	if resp.Model == "" {
		resp.Model = model
	}
	return resp, attemptResult{}
}

// classify turns an SDK error into an attemptResult: an APIError by its HTTP
// status (with Google's message), anything else as a transport failure.
func (g *Gemini) classify(ctx, actx context.Context, call *geminiCall, err error, streamed bool) attemptResult {
	if ctx.Err() != nil {
		return attemptResult{err: ctx.Err()}
	}
	if errors.Is(context.Cause(actx), errIdle) {
		return attemptResult{
			err: fmt.Errorf("%w: gemini: no data from server for %s: %w",
				ErrUnavailable, g.timeout, context.DeadlineExceeded),
			retryable: true, streamed: streamed,
		}
	}
	var apiErr genai.APIError
	if !errors.As(err, &apiErr) {
		return attemptResult{err: fmt.Errorf("%w: gemini: %w", ErrUnavailable, err), retryable: true, streamed: streamed}
	}
	call.mu.Lock()
	retryAfter := call.retryAfter
	call.mu.Unlock()
	msg := strings.TrimSpace(apiErr.Message)
	if msg == "" {
		msg = http.StatusText(apiErr.Code)
	}
	msg = truncate(msg, 1000)
	detail := fmt.Sprintf("gemini: HTTP %d: %s", apiErr.Code, msg)
	if apiErr.Status != "" && !strings.Contains(apiErr.Status, " ") { // "INVALID_ARGUMENT", not "400 Bad Request"
		detail += " (" + apiErr.Status + ")"
	}
	code := apiErr.Code
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden || apiKeyInvalid(apiErr):
		return attemptResult{err: fmt.Errorf("%w: %s", ErrAuth, detail)}
	case code == http.StatusTooManyRequests:
		return attemptResult{err: fmt.Errorf("%w: %s", ErrRateLimited, detail), retryable: true,
			retryAfter: retryAfter, streamed: streamed}
	case code >= 500 || code == http.StatusRequestTimeout || code == 0:
		return attemptResult{err: fmt.Errorf("%w: %s", ErrUnavailable, detail), retryable: true,
			retryAfter: retryAfter, streamed: streamed}
	default:
		return attemptResult{err: fmt.Errorf("%w: %s", ErrBadRequest, detail)}
	}
}

// apiKeyInvalid: Google answers a wrong API key with 400 INVALID_ARGUMENT and
// the reason API_KEY_INVALID in the details; that is an auth failure.
func apiKeyInvalid(e genai.APIError) bool {
	for _, d := range e.Details {
		if r, _ := d["reason"].(string); r == "API_KEY_INVALID" {
			return true
		}
	}
	return false
}

// geminiAccumulator assembles a Response from streamed GenerateContentResponse chunks.
type geminiAccumulator struct {
	model    string
	content  strings.Builder
	calls    []ToolCall
	finish   genai.FinishReason
	blocked  bool
	usage    Usage
	done     bool // a finishReason (or a prompt block) was seen
	streamed bool // onToken was called
}

func (a *geminiAccumulator) add(c *genai.GenerateContentResponse, onToken TokenFunc) {
	if c == nil {
		return
	}
	if c.ModelVersion != "" {
		a.model = c.ModelVersion
	}
	if u := c.UsageMetadata; u != nil {
		a.usage = Usage{
			PromptTokens: int(u.PromptTokenCount + u.ToolUsePromptTokenCount),
			// Thinking tokens are billed as output.
			CompletionTokens: int(u.CandidatesTokenCount + u.ThoughtsTokenCount),
			TotalTokens:      int(u.TotalTokenCount),
			CacheReadTokens:  int(u.CachedContentTokenCount),
		}
	}
	if c.PromptFeedback != nil && c.PromptFeedback.BlockReason != "" {
		a.blocked, a.done = true, true
	}
	if len(c.Candidates) == 0 || c.Candidates[0] == nil {
		return
	}
	cand := c.Candidates[0] // one candidate is requested
	if cand.Content != nil {
		for _, p := range cand.Content.Parts {
			switch {
			case p == nil || p.Thought:
				// Thought summaries are not part of the answer.
			case p.FunctionCall != nil:
				a.addCall(p.FunctionCall)
			case p.Text != "":
				a.content.WriteString(p.Text)
				if onToken != nil {
					a.streamed = true
					onToken(p.Text)
				}
			}
		}
	}
	if cand.FinishReason != "" && cand.FinishReason != genai.FinishReasonUnspecified {
		a.finish, a.done = cand.FinishReason, true
	}
}

// addCall appends a function call. Gemini sends each call whole in one
// part; older API versions give no id, so one is made from the call's
// position in the step ("call_<i>"), which the tool_call_id pairing needs.
func (a *geminiAccumulator) addCall(fc *genai.FunctionCall) {
	args := "{}"
	if len(fc.Args) > 0 {
		if b, err := json.Marshal(fc.Args); err == nil {
			args = string(b)
		}
	}
	id := fc.ID
	if id == "" {
		id = fmt.Sprintf("call_%d", len(a.calls))
	}
	a.calls = append(a.calls, ToolCall{ID: id, Name: fc.Name, Arguments: args})
}

func (a *geminiAccumulator) response() Response {
	r := Response{
		Model:     a.model,
		Content:   a.content.String(),
		ToolCalls: a.calls,
		Usage:     a.usage,
	}
	r.FinishReason = geminiFinishReason(a.finish, a.blocked, len(a.calls) > 0)
	if r.Usage.TotalTokens == 0 {
		r.Usage.TotalTokens = r.Usage.PromptTokens + r.Usage.CompletionTokens
	}
	return r
}

// geminiFinishReason maps Gemini's finishReason onto the OpenAI-style values
// the rest of the system shows; unknown reasons pass through lower-cased.
func geminiFinishReason(f genai.FinishReason, blocked, toolCalls bool) string {
	switch f {
	case "", genai.FinishReasonStop:
		if blocked {
			return "content_filter"
		}
		if toolCalls {
			return "tool_calls" // Gemini says STOP after function calls
		}
		return "stop"
	case genai.FinishReasonMaxTokens:
		return "length"
	case genai.FinishReasonSafety, genai.FinishReasonRecitation, genai.FinishReasonBlocklist,
		genai.FinishReasonProhibitedContent, genai.FinishReasonSPII, genai.FinishReasonImageSafety,
		genai.FinishReasonImageProhibitedContent, genai.FinishReasonImageRecitation:
		return "content_filter"
	}
	return strings.ToLower(string(f))
}

// synthesizedCallID matches the ids geminiAccumulator makes up; they are not
// sent back, as the API never issued them.
var synthesizedCallID = regexp.MustCompile(`^call_[0-9]+$`)

// buildGeminiRequest maps the provider-neutral history onto Gemini contents:
// leading system messages become the systemInstruction; user and assistant
// turns become roles "user" and "model"; assistant tool calls become
// functionCall parts; tool results become functionResponse parts, a run of
// them sharing one "user" content as Gemini expects.
func buildGeminiRequest(model string, req Request) ([]*genai.Content, *genai.GenerateContentConfig, error) {
	config := &genai.GenerateContentConfig{}
	if req.Temperature != nil {
		config.Temperature = genai.Ptr(float32(*req.Temperature))
	}
	if req.MaxTokens > 0 {
		config.MaxOutputTokens = int32(min(req.MaxTokens, 1<<30))
	}
	needSignature := geminiNeedsThoughtSignature(model)

	callNames := map[string]string{} // tool_call_id -> function name, for results without a name
	var system []*genai.Part
	var contents []*genai.Content
	// appendParts adds parts to the last content when it has the same role
	// and kind (tool results or not), else starts a new content.
	lastIsToolResults := false
	appendParts := func(role string, toolResults bool, parts ...*genai.Part) {
		if n := len(contents); n > 0 && contents[n-1].Role == role && lastIsToolResults == toolResults {
			contents[n-1].Parts = append(contents[n-1].Parts, parts...)
			return
		}
		contents = append(contents, &genai.Content{Role: role, Parts: parts})
		lastIsToolResults = toolResults
	}
	for _, m := range req.Messages {
		switch m.Role {
		case RoleSystem:
			if len(contents) == 0 {
				system = append(system, &genai.Part{Text: m.Content})
				continue
			}
			// Gemini has one systemInstruction; a later system note goes
			// in line, where it was said.
			appendParts(genai.RoleUser, false, &genai.Part{Text: "[system] " + m.Content})
		case RoleAssistant:
			var parts []*genai.Part
			if m.Content != "" {
				parts = append(parts, &genai.Part{Text: m.Content})
			}
			for i, tc := range m.ToolCalls {
				callNames[tc.ID] = tc.Name
				p := &genai.Part{FunctionCall: &genai.FunctionCall{Name: tc.Name, Args: geminiArgs(tc.Arguments)}}
				if !synthesizedCallID.MatchString(tc.ID) {
					p.FunctionCall.ID = tc.ID
				}
				// Only the first call of a step carries a signature.
				if needSignature && i == 0 {
					p.ThoughtSignature = []byte(skipThoughtSignature)
				}
				parts = append(parts, p)
			}
			if len(parts) == 0 {
				continue // an empty answer: Gemini refuses an empty part
			}
			appendParts(genai.RoleModel, false, parts...)
		case RoleTool:
			name := m.Name
			if name == "" {
				name = callNames[m.ToolCallID]
			}
			fr := &genai.FunctionResponse{Name: name, Response: map[string]any{"content": m.Content}}
			if !synthesizedCallID.MatchString(m.ToolCallID) {
				fr.ID = m.ToolCallID
			}
			appendParts(genai.RoleUser, true, &genai.Part{FunctionResponse: fr})
		default: // user, and any role Gemini does not know
			appendParts(genai.RoleUser, false, &genai.Part{Text: m.Content})
		}
	}
	if len(system) > 0 {
		config.SystemInstruction = &genai.Content{Parts: system}
	}
	if len(contents) == 0 {
		return nil, nil, errors.New("no user or assistant message to send")
	}
	if len(req.Tools) > 0 {
		decls := make([]*genai.FunctionDeclaration, 0, len(req.Tools))
		for _, t := range req.Tools {
			var schema any = json.RawMessage(emptySchema)
			if p := strings.TrimSpace(string(t.Parameters)); p != "" && p != "null" {
				if !json.Valid(t.Parameters) {
					return nil, nil, fmt.Errorf("tool %q: parameters are not valid JSON", t.Name)
				}
				schema = t.Parameters
			}
			decls = append(decls, &genai.FunctionDeclaration{
				Name: t.Name, Description: t.Description, ParametersJsonSchema: schema,
			})
		}
		config.Tools = []*genai.Tool{{FunctionDeclarations: decls}}
	}
	return contents, config, nil
}

// geminiArgs decodes a call's JSON arguments into the object Gemini wants.
// Arguments that are not a JSON object (a model can produce broken JSON)
// are kept as text under "arguments", so the history stays truthful.
func geminiArgs(raw string) map[string]any {
	if strings.TrimSpace(raw) == "" {
		return map[string]any{}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m == nil {
		return map[string]any{"arguments": raw}
	}
	return m
}

// geminiNeedsThoughtSignature: from Gemini 3 on, replayed function calls
// must carry a thought signature; 1.x and 2.x models do not check it. Names
// we cannot place (tuned models, aliases) get one too: where signatures are
// checked, a call without one is a 400.
func geminiNeedsThoughtSignature(model string) bool {
	m := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(model)), "models/")
	for _, old := range []string{"gemini-1", "gemini-2", "gemini-pro", "gemini-exp"} {
		if strings.HasPrefix(m, old) {
			return false
		}
	}
	return true
}
