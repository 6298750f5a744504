package daemon

import (
	"fmt"
	"slices"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/secrets"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
	"github.com/openintern/openintern/tools/mcptools"
)

// tenantMCP configures the HTTP MCP servers tenants add over the API: their
// URLs dial through http_fetch's address guard (its allow-list and
// OPENINTERN_MCP_ALLOW), their header values are sealed with the daemon's
// secret key. On the embedded store without OPENINTERN_SECRET_KEY a key is
// generated into DATA_DIR; on PostgreSQL without one, sealed headers are
// refused (503) and env references still work.
func (m *Main) tenantMCP(cfg config.Config, registry *tools.Registry) (*mcptools.TenantConfig, error) {
	st, ok := m.Store.(store.MCPServerStore)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no tenant MCP servers", m.Store)
	}
	guard, err := tools.NewAddrGuard(slices.Concat(cfg.Fetch.Allow, cfg.MCPAllow))
	if err != nil {
		return nil, &config.Error{Key: "OPENINTERN_MCP_ALLOW", Reason: err.Error()}
	}
	logger := m.Logger.With("component", "mcp")
	sealer, err := secrets.Load(cfg.SecretKey, cfg.DataDir, cfg.DatabaseURL == "", logger)
	if err != nil {
		return nil, &config.Error{Key: secrets.KeyEnv, Reason: err.Error()}
	}
	if sealer == nil {
		logger.Warn("no " + secrets.KeyEnv + ": tenant MCP servers may only take headers from OPENINTERN_MCP_SECRET_* variables until it is set")
	}
	return &mcptools.TenantConfig{
		Store: st, Registry: registry, Sealer: sealer, Guard: guard,
		IdleTimeout: time.Duration(cfg.MCPIdleTimeout), MaxPerScope: cfg.MCPMaxServersPerScope,
	}, nil
}
