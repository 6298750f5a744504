package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// MCPServerPath is where the daemon serves its own tools over MCP.
const MCPServerPath = "/mcp"

// MountMCPServer serves h (streamable HTTP MCP) at /mcp on the engine, so it
// gets the engine's host, origin and body checks; h authenticates each
// request against the API itself.
func (s *Server) MountMCPServer(h http.Handler) {
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
		s.engine.Handle(m, MCPServerPath, gin.WrapH(h))
	}
}
