package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/ingest/mineru"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// mineruKind is the mineru_pdf job kind when mineru.enabled, else nil.
// The client logs at debug without the key (it never holds it in a log).
func mineruKind(cfg config.Config, jobs store.JobStore, mem ingest.Memories, logger *slog.Logger) (ingest.Kind, error) {
	m := cfg.Mineru
	if !m.Enabled {
		return nil, nil
	}
	c, err := mineru.New(mineru.Config{
		BaseURL: m.BaseURL, APIKey: m.APIKey,
		Timeout: time.Duration(m.TimeoutMs) * time.Millisecond, MaxRetries: m.MaxRetries,
		PollInterval: time.Duration(m.PollIntervalMs) * time.Millisecond, MaxPollAttempts: m.MaxPollAttempts,
		ModelVersion: m.DefaultModelVersion, Logger: logger.With("component", "mineru"),
	})
	if err != nil {
		return nil, &config.Error{Key: "mineru", Reason: err.Error()}
	}
	return mineru.Kind{Client: c, Store: jobs, Memories: mem}, nil
}

// registerMineruTool offers mineru_ingest_pdf when the kind runs here.
func registerMineruTool(registry *tools.Registry, kind ingest.Kind, cfg config.Config, jobs store.JobStore, wake func()) error {
	if kind == nil {
		return nil
	}
	if err := registry.Register(mineru.Tool{Jobs: jobs, Workspace: cfg.Workspace(), Wake: wake}); err != nil {
		return fmt.Errorf("register tool: %w", err)
	}
	return nil
}

// kindName is a kind's name, "" for none.
func kindName(k ingest.Kind) string {
	if k == nil {
		return ""
	}
	return k.Name()
}
