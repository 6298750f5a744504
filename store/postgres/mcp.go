package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

const mcpPinColumns = `server, tool, hash, definition, pending_hash, pending_definition, pinned_at, updated_at`

// mcpPinKey is the scope of a pin: ("", "") for a config server's tools.
type mcpPinKey struct{ org, project string }

func scanMCPPin(row pgx.Row) (store.MCPToolPin, error) {
	var (
		p            store.MCPToolPin
		def, pending string
	)
	if err := row.Scan(&p.Server, &p.Tool, &p.Hash, &def, &p.PendingHash, &pending, &p.PinnedAt, &p.UpdatedAt); err != nil {
		return store.MCPToolPin{}, err
	}
	p.Definition = json.RawMessage(def)
	if pending != "" {
		p.PendingDefinition = json.RawMessage(pending)
	}
	p.PinnedAt, p.UpdatedAt = p.PinnedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

func writeMCPPin(ctx context.Context, tx pgx.Tx, k mcpPinKey, p store.MCPToolPin) error {
	_, err := tx.Exec(ctx, `INSERT INTO mcp_tool_pins (org_id, project_id, `+mcpPinColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (org_id, project_id, server, tool) DO UPDATE SET hash = excluded.hash, definition = excluded.definition,
		pending_hash = excluded.pending_hash, pending_definition = excluded.pending_definition,
		pinned_at = excluded.pinned_at, updated_at = excluded.updated_at`,
		k.org, k.project, p.Server, p.Tool, p.Hash, string(p.Definition), p.PendingHash, string(p.PendingDefinition), p.PinnedAt, p.UpdatedAt)
	return err
}

// lockMCPPin serialises writers of one pin, also before its row exists, so
// two daemons seeing a tool first at once cannot pin two definitions.
func lockMCPPin(ctx context.Context, tx pgx.Tx, k mcpPinKey, server, tool string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('mcp_tool_pins:' || $1 || '/' || $2 || '/' || $3 || '/' || $4, 0))`,
		k.org, k.project, server, tool)
	return err
}

const selectMCPPin = `SELECT ` + mcpPinColumns + ` FROM mcp_tool_pins WHERE org_id = $1 AND project_id = $2 AND server = $3 AND tool = $4`

// ObserveMCPTool records a definition the server offers (see store.MCPPinStore).
func (s *Store) ObserveMCPTool(ctx context.Context, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error) {
	return s.observeMCPTool(ctx, mcpPinKey{}, server, tool, hash, def)
}

// ObserveScopedMCPTool is ObserveMCPTool for a tenant server of scope.
func (s *Store) ObserveScopedMCPTool(ctx context.Context, scope store.Scope, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error) {
	org, project := store.MCPScopeKey(scope)
	if org == "" {
		return store.MCPToolPin{}, errors.New("postgres: observe mcp tool: a tenant pin needs an org")
	}
	return s.observeMCPTool(ctx, mcpPinKey{org, project}, server, tool, hash, def)
}

func (s *Store) observeMCPTool(ctx context.Context, k mcpPinKey, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error) {
	if err := store.CheckMCPPinKey(server, tool); err != nil {
		return store.MCPToolPin{}, fmt.Errorf("postgres: observe mcp tool: %w", err)
	}
	var out store.MCPToolPin
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockMCPPin(ctx, tx, k, server, tool); err != nil {
			return err
		}
		var prev *store.MCPToolPin
		p, err := scanMCPPin(tx.QueryRow(ctx, selectMCPPin, k.org, k.project, server, tool))
		switch {
		case err == nil:
			prev = &p
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		next, write := store.ObserveMCPPin(prev, server, tool, hash, def, s.now())
		out = next
		if !write {
			return nil
		}
		return writeMCPPin(ctx, tx, k, next)
	})
	return out, s.fail(ctx, "observe mcp tool", err)
}

// ListMCPToolPins lists a server's pins by tool name.
func (s *Store) ListMCPToolPins(ctx context.Context, server string) ([]store.MCPToolPin, error) {
	return s.listMCPToolPins(ctx, mcpPinKey{}, server)
}

// ListScopedMCPToolPins is ListMCPToolPins for a tenant server of scope.
func (s *Store) ListScopedMCPToolPins(ctx context.Context, scope store.Scope, server string) ([]store.MCPToolPin, error) {
	org, project := store.MCPScopeKey(scope)
	if org == "" {
		return nil, nil
	}
	return s.listMCPToolPins(ctx, mcpPinKey{org, project}, server)
}

func (s *Store) listMCPToolPins(ctx context.Context, k mcpPinKey, server string) ([]store.MCPToolPin, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE org_id = $1 AND project_id = $2 AND server = $3 ORDER BY tool COLLATE "C"`,
		k.org, k.project, server)
	if err != nil {
		return nil, s.fail(ctx, "list mcp tool pins", err)
	}
	defer rows.Close()
	var out []store.MCPToolPin
	for rows.Next() {
		p, err := scanMCPPin(rows)
		if err != nil {
			return nil, s.fail(ctx, "list mcp tool pins", err)
		}
		out = append(out, p)
	}
	return out, s.fail(ctx, "list mcp tool pins", rows.Err())
}

// ApproveMCPTool trusts a tool's pending definition (see store.MCPPinStore).
func (s *Store) ApproveMCPTool(ctx context.Context, server, tool, hash string) (store.MCPToolPin, error) {
	return s.approveMCPTool(ctx, mcpPinKey{}, server, tool, hash)
}

// ApproveScopedMCPTool is ApproveMCPTool for a tenant server of scope.
func (s *Store) ApproveScopedMCPTool(ctx context.Context, scope store.Scope, server, tool, hash string) (store.MCPToolPin, error) {
	org, project := store.MCPScopeKey(scope)
	if org == "" {
		return store.MCPToolPin{}, fmt.Errorf("postgres: approve mcp tool: %w", store.ErrNotFound)
	}
	return s.approveMCPTool(ctx, mcpPinKey{org, project}, server, tool, hash)
}

func (s *Store) approveMCPTool(ctx context.Context, k mcpPinKey, server, tool, hash string) (store.MCPToolPin, error) {
	var out store.MCPToolPin
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockMCPPin(ctx, tx, k, server, tool); err != nil {
			return err
		}
		p, err := scanMCPPin(tx.QueryRow(ctx, selectMCPPin, k.org, k.project, server, tool))
		if err != nil {
			return err
		}
		next, err := store.ApproveMCPPin(p, hash, s.now())
		if err != nil {
			return err
		}
		out = next
		return writeMCPPin(ctx, tx, k, next)
	})
	return out, s.fail(ctx, "approve mcp tool", err)
}

const mcpServerColumns = `org_id, project_id, name, url, transport, headers, created_by, created_at`

func scanMCPServer(row pgx.Row) (store.MCPServer, error) {
	var (
		srv     store.MCPServer
		headers string
	)
	if err := row.Scan(&srv.OrgID, &srv.ProjectID, &srv.Name, &srv.URL, &srv.Transport, &headers, &srv.CreatedBy, &srv.CreatedAt); err != nil {
		return store.MCPServer{}, err
	}
	h, err := store.DecodeMCPHeaders(headers)
	if err != nil {
		return store.MCPServer{}, err
	}
	srv.Headers, srv.CreatedAt = h, srv.CreatedAt.UTC()
	return srv, nil
}

// CreateMCPServer adds a tenant server (see store.MCPServerStore).
func (s *Store) CreateMCPServer(ctx context.Context, srv store.MCPServer, maxPerScope int) (store.MCPServer, error) {
	if err := store.CheckMCPServer(srv); err != nil {
		return store.MCPServer{}, fmt.Errorf("postgres: create mcp server: %w", err)
	}
	headers, err := store.EncodeMCPHeaders(srv.Headers)
	if err != nil {
		return store.MCPServer{}, fmt.Errorf("postgres: create mcp server: %w", err)
	}
	srv.CreatedAt = s.now()
	if srv.Headers == nil {
		srv.Headers = []store.MCPHeader{}
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if maxPerScope > 0 {
			// The scope's adds are serialised so two at once cannot both
			// pass the count.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('mcp_servers:' || $1 || '/' || $2, 0))`, srv.OrgID, srv.ProjectID); err != nil {
				return err
			}
			var n int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM mcp_servers WHERE org_id = $1 AND project_id = $2`, srv.OrgID, srv.ProjectID).Scan(&n); err != nil {
				return err
			}
			if n >= int64(maxPerScope) {
				return &store.QuotaError{Quota: store.QuotaMCPServers, Limit: int64(maxPerScope), Used: n, Adding: 1}
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO mcp_servers (`+mcpServerColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			srv.OrgID, srv.ProjectID, srv.Name, srv.URL, srv.Transport, headers, srv.CreatedBy, srv.CreatedAt)
		return err
	})
	if err != nil {
		return store.MCPServer{}, s.fail(ctx, "create mcp server", err)
	}
	return srv, nil
}

// GetMCPServer returns a scope's server.
func (s *Store) GetMCPServer(ctx context.Context, scope store.Scope, name string) (store.MCPServer, error) {
	org, project := store.MCPScopeKey(scope)
	srv, err := scanMCPServer(s.pool.QueryRow(ctx, `SELECT `+mcpServerColumns+` FROM mcp_servers WHERE org_id = $1 AND project_id = $2 AND name = $3`, org, project, name))
	return srv, s.fail(ctx, "get mcp server", err)
}

// ListMCPServers lists a scope's servers by name.
func (s *Store) ListMCPServers(ctx context.Context, scope store.Scope) ([]store.MCPServer, error) {
	org, project := store.MCPScopeKey(scope)
	return s.queryMCPServers(ctx, `SELECT `+mcpServerColumns+` FROM mcp_servers WHERE org_id = $1 AND project_id = $2 ORDER BY name COLLATE "C"`, org, project)
}

// ListAllMCPServers lists every scope's servers.
func (s *Store) ListAllMCPServers(ctx context.Context) ([]store.MCPServer, error) {
	return s.queryMCPServers(ctx, `SELECT `+mcpServerColumns+` FROM mcp_servers ORDER BY org_id COLLATE "C", project_id COLLATE "C", name COLLATE "C"`)
}

func (s *Store) queryMCPServers(ctx context.Context, q string, args ...any) ([]store.MCPServer, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail(ctx, "list mcp servers", err)
	}
	defer rows.Close()
	out := []store.MCPServer{}
	for rows.Next() {
		srv, err := scanMCPServer(rows)
		if err != nil {
			return nil, s.fail(ctx, "list mcp servers", err)
		}
		out = append(out, srv)
	}
	return out, s.fail(ctx, "list mcp servers", rows.Err())
}

// DeleteMCPServer removes a scope's server and its pins: a server added
// again under that name is trusted afresh, not by its predecessor's pins.
func (s *Store) DeleteMCPServer(ctx context.Context, scope store.Scope, name string) error {
	org, project := store.MCPScopeKey(scope)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM mcp_servers WHERE org_id = $1 AND project_id = $2 AND name = $3`, org, project, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		_, err = tx.Exec(ctx, `DELETE FROM mcp_tool_pins WHERE org_id = $1 AND project_id = $2 AND server = $3`, org, project, name)
		return err
	})
	return s.fail(ctx, "delete mcp server", err)
}

var _ store.MCPServerStore = (*Store)(nil)
