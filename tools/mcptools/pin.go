package mcptools

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
)

// definition is what a tool's pin covers: exactly what the model is shown
// (the name, the description and the input schema, whose property
// descriptions are prompt text too). Keys are sorted at every level, so the
// same definition always has the same bytes and hash.
func definition(t mcp.Tool) (canonical json.RawMessage, schema json.RawMessage, err error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, nil, fmt.Errorf("encode tool %q: %w", t.Name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers as the server wrote them
	var all map[string]any
	if err := dec.Decode(&all); err != nil {
		return nil, nil, fmt.Errorf("decode tool %q: %w", t.Name, err)
	}
	in := all["inputSchema"]
	if in == nil {
		in = map[string]any{"type": "object", "properties": map[string]any{}}
	}
	schema, err = json.Marshal(in)
	if err != nil {
		return nil, nil, err
	}
	canonical, err = json.Marshal(map[string]any{"name": t.Name, "description": t.Description, "inputSchema": in})
	if err != nil {
		return nil, nil, err
	}
	return canonical, schema, nil
}

func hashOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}
