package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// listSessions answers GET /api/sessions: the scope's sessions, the most
// recently active first.
func (s *Server) listSessions(c *gin.Context) { listPaged(s, c, "sessions", s.deps.Store.ListSessions) }

// getSession answers GET /api/sessions/:session_key: the session's run
// counts by status, its agents and its last activity; another scope's
// session is not found.
func (s *Server) getSession(c *gin.Context) {
	key := c.Param("session_key")
	if len(key) > maxSessionKey {
		writeError(c, http.StatusBadRequest, "invalid_session_key", "session_key must be at most 128 characters")
		return
	}
	session, err := s.deps.Store.GetSession(c.Request.Context(), scopeOf(c), key)
	if err != nil {
		s.fail(c, err, "session "+strconv.Quote(key))
		return
	}
	c.JSON(http.StatusOK, session)
}
