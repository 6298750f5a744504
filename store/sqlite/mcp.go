package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/store"
)

const mcpPinColumns = `server, tool, hash, definition, pending_hash, pending_definition, pinned_at, updated_at`

func scanMCPPin(row interface{ Scan(...any) error }) (store.MCPToolPin, error) {
	var (
		p                 store.MCPToolPin
		def, pending      string
		pinned, updatedAt int64
	)
	if err := row.Scan(&p.Server, &p.Tool, &p.Hash, &def, &p.PendingHash, &pending, &pinned, &updatedAt); err != nil {
		return store.MCPToolPin{}, err
	}
	p.Definition = json.RawMessage(def)
	if pending != "" {
		p.PendingDefinition = json.RawMessage(pending)
	}
	p.PinnedAt, p.UpdatedAt = fromMicros(pinned), fromMicros(updatedAt)
	return p, nil
}

func (s *Store) writeMCPPin(ctx context.Context, tx *sql.Tx, p store.MCPToolPin) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO mcp_tool_pins (`+mcpPinColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (server, tool) DO UPDATE SET hash = excluded.hash, definition = excluded.definition,
		pending_hash = excluded.pending_hash, pending_definition = excluded.pending_definition,
		pinned_at = excluded.pinned_at, updated_at = excluded.updated_at`,
		p.Server, p.Tool, p.Hash, string(p.Definition), p.PendingHash, string(p.PendingDefinition), micros(p.PinnedAt), micros(p.UpdatedAt))
	return err
}

// ObserveMCPTool records a definition the server offers (see store.MCPPinStore).
func (s *Store) ObserveMCPTool(ctx context.Context, server, tool, hash string, def json.RawMessage) (store.MCPToolPin, error) {
	if err := store.CheckMCPPinKey(server, tool); err != nil {
		return store.MCPToolPin{}, fmt.Errorf("sqlite: observe mcp tool: %w", err)
	}
	var out store.MCPToolPin
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var prev *store.MCPToolPin
		p, err := scanMCPPin(tx.QueryRowContext(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE server = ? AND tool = ?`, server, tool))
		switch {
		case err == nil:
			prev = &p
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		next, write := store.ObserveMCPPin(prev, server, tool, hash, def, s.now())
		out = next
		if !write {
			return nil
		}
		return s.writeMCPPin(ctx, tx, next)
	})
	return out, fail("observe mcp tool", err)
}

// ListMCPToolPins lists a server's pins by tool name.
func (s *Store) ListMCPToolPins(ctx context.Context, server string) ([]store.MCPToolPin, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE server = ? ORDER BY tool`, server)
	if err != nil {
		return nil, fail("list mcp tool pins", err)
	}
	defer rows.Close()
	var out []store.MCPToolPin
	for rows.Next() {
		p, err := scanMCPPin(rows)
		if err != nil {
			return nil, fail("list mcp tool pins", err)
		}
		out = append(out, p)
	}
	return out, fail("list mcp tool pins", rows.Err())
}

// ApproveMCPTool trusts a tool's pending definition (see store.MCPPinStore).
func (s *Store) ApproveMCPTool(ctx context.Context, server, tool, hash string) (store.MCPToolPin, error) {
	var out store.MCPToolPin
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		p, err := scanMCPPin(tx.QueryRowContext(ctx, `SELECT `+mcpPinColumns+` FROM mcp_tool_pins WHERE server = ? AND tool = ?`, server, tool))
		if err != nil {
			return err
		}
		next, err := store.ApproveMCPPin(p, hash, s.now())
		if err != nil {
			return err
		}
		out = next
		return s.writeMCPPin(ctx, tx, next)
	})
	return out, fail("approve mcp tool", err)
}
