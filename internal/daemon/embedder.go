package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/httpretry"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/memory"
)

// NewEmbedder builds the embedder cfg names; cfg is validated, so openai has
// a model and a dimension.
func NewEmbedder(cfg config.Config, logger *slog.Logger) memory.Embedder {
	if cfg.EmbeddingProvider != config.EmbeddingOpenAI {
		return memory.NewHashEmbedder(cfg.EmbeddingDim)
	}
	return &memory.OpenAIEmbedder{
		BaseURL: cfg.EmbeddingEndpoint(), APIKey: cfg.EmbeddingAPIKey,
		ModelName: cfg.EmbeddingModel, Dimension: cfg.EmbeddingDim,
		Timeout: time.Duration(cfg.EmbeddingTimeout), HTTPClient: llm.NewHTTPClient(), Logger: logger,
	}
}

// DescribeEmbedder names the embedder for humans: provider, model, dimension.
func DescribeEmbedder(emb memory.Embedder) string {
	switch e := emb.(type) {
	case *memory.OpenAIEmbedder:
		return fmt.Sprintf("openai-compatible %s at %s, %d dimensions", e.ModelName, e.BaseURL, e.Dim())
	case *memory.HashEmbedder:
		return fmt.Sprintf("local hashed %s, %d dimensions, no network", e.Model(), e.Dim())
	}
	return fmt.Sprintf("%s, %d dimensions", emb.Model(), emb.Dim())
}

// Delays between attempts of the background re-embedding when the embedder
// fails (say, its server is not up yet): retried until it works or the
// daemon stops, since searches miss the vector leg of the chunks not done.
const (
	reEmbedRetryMin = 2 * time.Second
	reEmbedRetryMax = 5 * time.Minute
)

// startReEmbed gives every stored chunk a vector of the service's current
// model, in the background: after a change of embedder, old chunks keep being
// found by the full-text leg, and by the vector leg as soon as they are done.
// It ends when done or when ctx ends; the returned stop cancels it and waits.
func startReEmbed(ctx context.Context, svc *memory.Service, logger *slog.Logger) func(context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	model := svc.Embedder().Model()
	go func() {
		defer close(done)
		delay := reEmbedRetryMin
		total := 0
		start := time.Now()
		for {
			res, err := svc.ReEmbed(ctx)
			total += res.Embedded
			switch {
			case err == nil:
				if total > 0 {
					logger.Info("memory: re-embedding done", "model", model, "chunks", total, "duration", time.Since(start).Round(time.Millisecond))
				}
				if res.Rejected > 0 {
					// Asking again would get the same answer: these wait for
					// the next start or `memory reembed`.
					logger.Warn("memory: the embeddings server rejected some chunks; they are found by full text only",
						"model", model, "rejected", res.Rejected, "first", res.FirstReject)
				}
				return
			case ctx.Err() != nil:
				logger.Info("memory: re-embedding stopped by shutdown; it resumes at the next start", "model", model, "chunks", total)
				return
			}
			logger.Warn("memory: re-embedding failed; retrying", "model", model, "chunks", total, "retry_in", delay, "err", err)
			if httpretry.Sleep(ctx, delay) != nil {
				return
			}
			delay = min(2*delay, reEmbedRetryMax)
		}
	}()
	return func(stopCtx context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-stopCtx.Done():
			return errors.New("memory: re-embedding did not stop in time")
		}
	}
}
