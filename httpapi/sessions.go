package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// maxSessionKeyLen is the longest session key a message or run may have.
const maxSessionKeyLen = 128

// listSessions answers GET /api/sessions: the scope's sessions, the most
// recently active first.
func (s *Server) listSessions(c *gin.Context) {
	page, ok := pageOf(c)
	if !ok {
		return
	}
	sessions, total, err := s.deps.Store.ListSessions(c.Request.Context(), scopeOf(c), page.Page)
	if err != nil {
		s.fail(c, err, "sessions")
		return
	}
	c.JSON(http.StatusOK, gin.H{"sessions": nonNil(sessions), "total": total, "page": page.number, "limit": page.Limit})
}

// getSession answers GET /api/sessions/:session_key: the session's run
// counts by status, its agents and its last activity; another scope's
// session is not found.
func (s *Server) getSession(c *gin.Context) {
	key := c.Param("session_key")
	if key == "" || len(key) > maxSessionKeyLen {
		writeError(c, http.StatusNotFound, "not_found", "session "+strconv.Quote(key)+" not found")
		return
	}
	session, err := s.deps.Store.GetSession(c.Request.Context(), scopeOf(c), key)
	if err != nil {
		s.fail(c, err, "session "+strconv.Quote(key))
		return
	}
	c.JSON(http.StatusOK, session)
}
