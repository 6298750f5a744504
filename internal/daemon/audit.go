package daemon

import (
	"log/slog"

	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// toolAuditor records the agents' calls of tools that change something in
// the store's audit log (both stores keep one).
func toolAuditor(st store.Store, logger *slog.Logger) tools.Option {
	as, ok := st.(store.AuditStore)
	if !ok {
		return func(*tools.Registry) {}
	}
	return tools.WithAuditor(tools.NewStoreAuditor(as, logger.With("component", "audit")))
}
