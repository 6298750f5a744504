package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/openintern/openintern/internal/httpretry"
)

// Defaults of OpenAIEmbedder.
const (
	DefaultEmbedBatchSize   = 64
	DefaultEmbedTimeout     = 30 * time.Second
	DefaultEmbedMaxRetries  = 3
	DefaultEmbedBackoffBase = 500 * time.Millisecond
	DefaultEmbedMaxBackoff  = 20 * time.Second
)

// OpenAIEmbedder calls an OpenAI-compatible POST {BaseURL}/embeddings
// (BaseURL usually ends in /v1). Zero fields take their defaults; it is safe
// for concurrent use.
type OpenAIEmbedder struct {
	BaseURL    string
	APIKey     string
	ModelName  string
	Dimension  int // the model's vector length; checked against every answer
	HTTPClient *http.Client
	BatchSize  int // texts per request; DefaultEmbedBatchSize when zero

	// Timeout bounds each attempt (one request and its answer), so a hung
	// server fails the call instead of blocking a write or search for ever.
	// DefaultEmbedTimeout when zero.
	Timeout time.Duration
	// MaxRetries is how often a request that failed with 408, 429, 5xx, a
	// timeout or a network error is retried; other answers (401, 400, ...)
	// are not, since they would fail again. DefaultEmbedMaxRetries when
	// zero; negative disables retries.
	MaxRetries int
	// BackoffBase is the first retry delay, doubled per retry with jitter and
	// capped by MaxBackoff; a Retry-After header takes precedence, still
	// capped. Defaults: DefaultEmbedBackoffBase, DefaultEmbedMaxBackoff.
	BackoffBase time.Duration
	MaxBackoff  time.Duration
	// Logger receives retry warnings; discarded when nil.
	Logger *slog.Logger
}

// ErrEmbeddingDimension marks an answer whose vectors are not of the
// configured dimension: the configuration, not the server, needs fixing.
var ErrEmbeddingDimension = errors.New("embedding dimension mismatch")

// EmbeddingHTTPError is a non-2xx answer of the embeddings endpoint.
type EmbeddingHTTPError struct {
	Endpoint   string
	StatusCode int
	Message    string // the server's error message, or the start of its body
}

func (e *EmbeddingHTTPError) Error() string {
	return fmt.Sprintf("POST %s: HTTP %d: %s", e.Endpoint, e.StatusCode, e.Message)
}

// Model returns "openai:<model>" so vectors of a local and a remote model of
// the same name never mix.
func (o *OpenAIEmbedder) Model() string { return "openai:" + o.ModelName }

// Dim returns the configured dimension.
func (o *OpenAIEmbedder) Dim() int { return o.Dimension }

// Endpoint is the URL requests are posted to.
func (o *OpenAIEmbedder) Endpoint() string {
	base := strings.TrimRight(strings.TrimSpace(o.BaseURL), "/")
	if strings.HasSuffix(base, "/embeddings") {
		return base
	}
	return base + "/embeddings"
}

// Embed sends texts in batches and normalizes the answers.
func (o *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	bs := o.BatchSize
	if bs <= 0 {
		bs = DefaultEmbedBatchSize
	}
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += bs {
		vecs, err := o.embedBatch(ctx, texts[i:min(i+bs, len(texts))])
		if err != nil {
			return nil, fmt.Errorf("memory: embeddings (%s): %w", o.ModelName, err)
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// embedBatch posts one batch, retrying what may succeed on a second try.
func (o *OpenAIEmbedder) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": o.ModelName, "input": texts})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	retries := o.MaxRetries
	switch {
	case retries == 0:
		retries = DefaultEmbedMaxRetries
	case retries < 0:
		retries = 0
	}
	for attempt := 0; ; attempt++ {
		vecs, retryable, retryAfter, err := o.attempt(ctx, body, len(texts))
		if err == nil {
			return vecs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !retryable || attempt >= retries {
			if attempt > 0 {
				return nil, fmt.Errorf("%w (after %d attempts)", err, attempt+1)
			}
			return nil, err
		}
		delay := o.backoff(attempt, retryAfter)
		o.logger().Warn("embeddings request failed; retrying", "model", o.ModelName, "attempt", attempt+1,
			"max_retries", retries, "delay", delay, "err", err)
		if err := httpretry.Sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

func (o *OpenAIEmbedder) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// backoff is the delay before retry number attempt+1.
func (o *OpenAIEmbedder) backoff(attempt int, retryAfter time.Duration) time.Duration {
	base, maxWait := o.BackoffBase, o.MaxBackoff
	if base <= 0 {
		base = DefaultEmbedBackoffBase
	}
	if maxWait <= 0 {
		maxWait = DefaultEmbedMaxBackoff
	}
	return httpretry.Backoff(attempt, base, maxWait, retryAfter)
}

// attempt makes one request; retryable says whether another might succeed.
func (o *OpenAIEmbedder) attempt(ctx context.Context, body []byte, n int) (vecs [][]float32, retryable bool, retryAfter time.Duration, err error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultEmbedTimeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	endpoint := o.Endpoint()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, false, 0, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return nil, true, 0, fmt.Errorf("POST %s: no answer within %s", endpoint, timeout)
		}
		return nil, true, 0, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, true, 0, fmt.Errorf("POST %s: read answer: %w", endpoint, err)
	}
	if code := resp.StatusCode; code/100 != 2 {
		herr := &EmbeddingHTTPError{Endpoint: endpoint, StatusCode: code, Message: embeddingErrorMessage(raw, code)}
		retryable := code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
		return nil, retryable, httpretry.After(resp.Header), herr
	}
	vecs, err = o.decode(raw, n)
	if err != nil {
		// A well-formed request answered with the wrong shape will not
		// improve on a retry.
		return nil, false, 0, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	return vecs, false, 0, nil
}

// decode checks an answer of the OpenAI wire format and puts its vectors in
// input order: data[i].index, not the position in data, says which text a
// vector belongs to.
func (o *OpenAIEmbedder) decode(raw []byte, n int) ([][]float32, error) {
	var parsed struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &parsed); err != nil {
		return nil, fmt.Errorf("decode answer: %w (body starts %q)", err, truncateUTF8(string(raw), 120))
	}
	if len(parsed.Data) != n {
		return nil, fmt.Errorf("%d vectors for %d texts", len(parsed.Data), n)
	}
	out := make([][]float32, n)
	for _, d := range parsed.Data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil {
			return nil, fmt.Errorf("bad or repeated index %d in an answer for %d texts", d.Index, n)
		}
		if o.Dimension > 0 && len(d.Embedding) != o.Dimension {
			return nil, fmt.Errorf("%w: the model returned vectors of dimension %d, configured %d", ErrEmbeddingDimension, len(d.Embedding), o.Dimension)
		}
		if len(d.Embedding) == 0 {
			return nil, fmt.Errorf("empty vector at index %d", d.Index)
		}
		for _, x := range d.Embedding {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("non-finite value in the vector at index %d", d.Index)
			}
		}
		out[d.Index] = normalize(d.Embedding)
	}
	return out, nil
}

// embeddingErrorMessage extracts the message of an OpenAI-shaped error body
// ({"error":{"message":...}}) or of the shapes other servers use
// ({"error":"..."}, {"message":...}, {"detail":"..."}), else the body's start.
func embeddingErrorMessage(raw []byte, code int) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(raw, &e) == nil {
		var obj struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case len(e.Error) > 0 && json.Unmarshal(e.Error, &obj) == nil && obj.Message != "":
			return obj.Message
		case len(e.Error) > 0 && json.Unmarshal(e.Error, &s) == nil && s != "":
			return s
		case e.Message != "":
			return e.Message
		case len(e.Detail) > 0 && json.Unmarshal(e.Detail, &s) == nil && s != "":
			return s
		}
	}
	if msg := strings.Join(strings.Fields(truncateUTF8(string(raw), 300)), " "); msg != "" {
		return msg
	}
	return http.StatusText(code)
}
