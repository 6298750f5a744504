package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// OpenAIEmbedder calls an OpenAI-compatible POST {BaseURL}/embeddings
// (BaseURL usually ends in /v1).
type OpenAIEmbedder struct {
	BaseURL    string
	APIKey     string
	ModelName  string
	Dimension  int // the model's vector length; checked against every answer
	HTTPClient *http.Client
	BatchSize  int // texts per request; default 64
}

// Model returns "openai:<model>" so vectors of a local and a remote model of
// the same name never mix.
func (o *OpenAIEmbedder) Model() string { return "openai:" + o.ModelName }

// Dim returns the configured dimension.
func (o *OpenAIEmbedder) Dim() int { return o.Dimension }

// Embed sends texts in batches and normalizes the answers.
func (o *OpenAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	bs := o.BatchSize
	if bs <= 0 {
		bs = 64
	}
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += bs {
		vecs, err := o.embedBatch(ctx, texts[i:min(i+bs, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

func (o *OpenAIEmbedder) embedBatch(ctx context.Context, texts []string) ([][]float32, error) {
	body, _ := json.Marshal(map[string]any{"model": o.ModelName, "input": texts})
	url := strings.TrimRight(o.BaseURL, "/") + "/embeddings"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("memory: embeddings: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("memory: embeddings: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("memory: embeddings: read: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("memory: embeddings: HTTP %d: %s", resp.StatusCode, truncateUTF8(string(raw), 300))
	}
	var parsed struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &parsed); err != nil {
		return nil, fmt.Errorf("memory: embeddings: decode: %w", err)
	}
	if len(parsed.Data) != len(texts) {
		return nil, fmt.Errorf("memory: embeddings: %d vectors for %d texts", len(parsed.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range parsed.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, fmt.Errorf("memory: embeddings: bad index %d", d.Index)
		}
		if o.Dimension > 0 && len(d.Embedding) != o.Dimension {
			return nil, fmt.Errorf("memory: embeddings: got dimension %d, configured %d", len(d.Embedding), o.Dimension)
		}
		for _, x := range d.Embedding {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("memory: embeddings: non-finite value")
			}
		}
		out[d.Index] = normalize(d.Embedding)
	}
	return out, nil
}
