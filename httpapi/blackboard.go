package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Blackboard is the groups' shared memory (memory.Blackboard implements it).
type Blackboard interface {
	Post(ctx context.Context, scope store.Scope, groupID string, p memory.Post) (memory.Entry, bool, error)
	List(ctx context.Context, scope store.Scope, groupID string, q memory.BoardQuery) ([]memory.Entry, int, error)
	Get(ctx context.Context, scope store.Scope, groupID, id string) (memory.Entry, error)
	Search(ctx context.Context, scope store.Scope, groupID, query, kind string, topK int) ([]memory.BoardHit, error)
}

func (s *Server) boardOf(c *gin.Context) (store.Group, Blackboard, bool) {
	bb := s.deps.Blackboard
	if bb == nil {
		writeError(c, http.StatusNotImplemented, "no_blackboard", "this daemon runs without memory, so groups have no blackboard")
		return store.Group{}, nil, false
	}
	g, ok := s.groupOf(c)
	return g, bb, ok
}

func (s *Server) listBlackboard(c *gin.Context) {
	g, bb, ok := s.boardOf(c)
	if !ok {
		return
	}
	kind := c.Query("kind")
	if kind != "" && !memory.ValidKind(kind) {
		writeError(c, http.StatusBadRequest, "invalid_kind", "kind must be fact, proposal, decision or todo")
		return
	}
	if q := strings.TrimSpace(c.Query("q")); q != "" {
		if len(q) > 4096 {
			writeError(c, http.StatusBadRequest, "invalid_query", "q must be at most 4 KiB")
			return
		}
		hits, err := bb.Search(c.Request.Context(), g.Scope, g.ID, q, kind, 50)
		if err != nil {
			s.failTeam(c, err, "blackboard")
			return
		}
		c.JSON(http.StatusOK, gin.H{"results": nonNil(hits), "query": q})
		return
	}
	page, ok := pageOf(c)
	if !ok {
		return
	}
	entries, total, err := bb.List(c.Request.Context(), g.Scope, g.ID, memory.BoardQuery{Kind: kind, Author: c.Query("author"), Page: page.Page})
	if err != nil {
		s.failTeam(c, err, "blackboard")
		return
	}
	c.JSON(http.StatusOK, gin.H{"entries": nonNil(entries), "total": total, "page": page.number, "limit": page.Limit})
}

func (s *Server) getBlackboard(c *gin.Context) {
	g, bb, ok := s.boardOf(c)
	if !ok {
		return
	}
	id := c.Param("memory_id")
	if len(id) > 128 {
		writeError(c, http.StatusNotFound, "not_found", "entry not found")
		return
	}
	e, err := bb.Get(c.Request.Context(), g.Scope, g.ID, id)
	if err != nil {
		s.fail(c, err, "entry "+strconv.Quote(id))
		return
	}
	c.JSON(http.StatusOK, e)
}

func (s *Server) postBlackboard(c *gin.Context) {
	g, bb, ok := s.boardOf(c)
	if !ok {
		return
	}
	var body struct {
		OrgID     string `json:"org_id"`
		UserID    string `json:"user_id"`
		ProjectID string `json:"project_id"`
		Kind      string `json:"kind"`
		Text      string `json:"text"`
		AgentID   string `json:"agent_id"` // post on behalf of a member
		// Author is who the entry says wrote it: the caller ("user:<user_id>",
		// the default) or a member agent, which is the same as agent_id.
		Author string `json:"author"`
	}
	if !bindJSON(c, &body) {
		return
	}
	if body.Kind == "" {
		body.Kind = memory.KindFact
	}
	me := "user:" + g.Scope.UserID
	switch {
	case body.Author == "" || body.Author == body.AgentID:
	case body.AgentID != "":
		writeError(c, http.StatusBadRequest, "invalid_author", "author and agent_id name different authors; give one of them")
		return
	case body.Author == me:
	case strings.HasPrefix(body.Author, "user:"):
		writeError(c, http.StatusForbidden, "author_not_allowed", "author can be only you ("+strconv.Quote(me)+") or a member agent of the group")
		return
	default:
		body.AgentID = body.Author
	}
	p := memory.Post{Kind: body.Kind, Text: body.Text, Author: me}
	if body.AgentID != "" {
		if !agentIDPattern.MatchString(body.AgentID) {
			writeError(c, http.StatusBadRequest, "invalid_agent_id", "agent_id must be a member's id")
			return
		}
		if _, err := s.deps.Store.GetMember(c.Request.Context(), g.Scope, g.ID, body.AgentID); errors.Is(err, store.ErrNotFound) {
			writeError(c, http.StatusUnprocessableEntity, "not_member", "agent "+strconv.Quote(body.AgentID)+" is not a member of the group")
			return
		} else if err != nil {
			s.fail(c, err, "member")
			return
		}
		p.AgentID, p.Author = body.AgentID, body.AgentID
	}
	e, _, err := bb.Post(c.Request.Context(), g.Scope, g.ID, p)
	if err != nil {
		s.failTeam(c, err, "blackboard entry")
		return
	}
	c.JSON(http.StatusCreated, e)
}
