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

func writeMCPPin(ctx context.Context, tx pgx.Tx, p store.MCPToolPin) error {
	_, err := tx.Exec(ctx, `INSERT INTO mcp_tool_pins (`+mcpPinColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (server, tool) DO UPDATE SET hash = excluded.hash, definition = excluded.definition,
		pending_hash = excluded.pending_hash, pending_definition = excluded.pending_definition,
		pinned_at = excluded.pinned_at, updated_at = excluded.updated_at`,
		p.Server, p.Tool, p.Hash, string(p.Definition), p.PendingHash, string(p.PendingDefinition), p.PinnedAt, p.UpdatedAt)
	return err
}

// lockMCPPin serialises writers of one pin, also before its row exists, so
// two daemons seeing a tool first at once cannot pin two definitions.
func lockMCPPin(ctx context.Context, tx pgx.Tx, server, tool string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('mcp_tool_pins:' || $1 || '/' || $2, 0))`, server, tool)
	return err
}

// ObserveMCPTool records a definition the server offers (see store.MCPPinStore).
func (s *Store) ObserveMCPTool(ctx context.Context, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error) {
	if err := store.CheckMCPPinKey(server, tool); err != nil {
		return store.MCPToolPin{}, fmt.Errorf("postgres: observe mcp tool: %w", err)
	}
	var out store.MCPToolPin
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockMCPPin(ctx, tx, server, tool); err != nil {
			return err
		}
		var prev *store.MCPToolPin
		p, err := scanMCPPin(tx.QueryRow(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE server = $1 AND tool = $2`, server, tool))
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
		return writeMCPPin(ctx, tx, next)
	})
	return out, s.fail(ctx, "observe mcp tool", err)
}

// ListMCPToolPins lists a server's pins by tool name.
func (s *Store) ListMCPToolPins(ctx context.Context, server string) ([]store.MCPToolPin, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE server = $1 ORDER BY tool COLLATE "C"`, server)
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
	var out store.MCPToolPin
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockMCPPin(ctx, tx, server, tool); err != nil {
			return err
		}
		p, err := scanMCPPin(tx.QueryRow(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE server = $1 AND tool = $2`, server, tool))
		if err != nil {
			return err
		}
		next, err := store.ApproveMCPPin(p, hash, s.now())
		if err != nil {
			return err
		}
		out = next
		return writeMCPPin(ctx, tx, next)
	})
	return out, s.fail(ctx, "approve mcp tool", err)
}
