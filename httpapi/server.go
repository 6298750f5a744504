// Package httpapi is OpenIntern's REST API and SSE streams on gin. Handlers are
// thin: they bind and validate input, take the scope from the request, call the
// store, mailbox or runtime, and map domain errors to HTTP statuses in one place.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
)

// Store is what the API reads and writes directly.
type Store interface {
	store.AgentStore
	store.MessageStore
	store.RunStore
	store.EventStore
	store.TeamStore
	Ping(ctx context.Context) error
}

// Mailbox stores a message durably and wakes its agent.
type Mailbox interface {
	Send(ctx context.Context, msg store.NewMessage) (store.Message, error)
}

// Runtime is the agents' actor system, as the API drives it.
type Runtime interface {
	Wake(scope store.Scope, agentID string)
	// AgentChanged tells an active agent its row changed, so it reads it again.
	AgentChanged(scope store.Scope, agentID string)
	Pause(ctx context.Context, scope store.Scope, agentID string) (string, error)
	Resume(ctx context.Context, scope store.Scope, agentID string) (string, error)
	CancelRun(ctx context.Context, scope store.Scope, runID string) (store.Run, error)
	Stats(ctx context.Context) (actors.Stats, error)
	StartGroupRun(ctx context.Context, scope store.Scope, req actors.GroupRunRequest) (store.Run, error)
}

// Deps are the API's collaborators.
type Deps struct {
	Store        Store
	Mailbox      Mailbox
	Runtime      Runtime
	Bus          events.Bus
	Blackboard   Blackboard // nil: groups have no blackboard routes' data (501)
	Logger       *slog.Logger
	MaxBodyBytes int64
	// Heartbeat is the interval of SSE keep-alive comments (default 15 s).
	Heartbeat time.Duration
}

// Server holds the routes.
type Server struct {
	deps   Deps
	engine *gin.Engine
}

var ginModeOnce sync.Once

// New builds the API.
func New(deps Deps) *Server {
	ginModeOnce.Do(func() { gin.SetMode(gin.ReleaseMode) })
	if deps.MaxBodyBytes <= 0 {
		deps.MaxBodyBytes = 1 << 20
	}
	if deps.Heartbeat <= 0 {
		deps.Heartbeat = 15 * time.Second
	}
	s := &Server{deps: deps, engine: gin.New()}
	s.engine.HandleMethodNotAllowed = true
	s.engine.Use(s.requestID, s.recoverPanics, s.accessLog, s.limitBody)
	s.routes()
	return s
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }

// Engine exposes the router so other packages (the web console) can add routes.
func (s *Server) Engine() *gin.Engine { return s.engine }

func (s *Server) routes() {
	r := s.engine
	r.NoRoute(func(c *gin.Context) {
		writeError(c, http.StatusNotFound, "not_found", "no such route: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)

	api := r.Group("/api", s.scope)
	api.POST("/agents", s.createAgent)
	api.GET("/agents", s.listAgents)
	api.GET("/agents/:agent_id", s.getAgent)
	api.PATCH("/agents/:agent_id", s.patchAgent)
	api.DELETE("/agents/:agent_id", s.deleteAgent)
	api.POST("/agents/:agent_id/messages", s.postMessage)
	api.GET("/agents/:agent_id/messages", s.listMessages)
	api.POST("/agents/:agent_id/pause", s.pauseAgent)
	api.POST("/agents/:agent_id/resume", s.resumeAgent)
	api.GET("/agents/:agent_id/stream", s.streamAgent)

	api.POST("/runs", s.createRun)
	api.GET("/runs", s.listRuns)
	api.GET("/runs/:run_id", s.getRun)
	api.GET("/runs/:run_id/events", s.listRunEvents)
	api.GET("/runs/:run_id/stream", s.streamRun)
	api.POST("/runs/:run_id/cancel", s.cancelRun)
	api.GET("/sessions", s.listSessions)
	api.GET("/sessions/:session_key", s.getSession)
	api.GET("/sessions/:session_key/runs", s.listSessionRuns)

	s.teamRoutes(api)
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.deps.Store.Ping(ctx); err != nil {
		writeError(c, http.StatusServiceUnavailable, "store_unavailable", "the store is not reachable: "+err.Error())
		return
	}
	stats, err := s.deps.Runtime.Stats(ctx)
	if err != nil {
		writeError(c, http.StatusServiceUnavailable, "runtime_unavailable", err.Error())
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "agents": stats})
}

func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 128 {
		id = uuid.NewString()
	}
	c.Set("request_id", id)
	c.Header("X-Request-Id", id)
	c.Next()
}

func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.deps.Logger.Error("panic in handler", "path", c.Request.URL.Path, "request_id", c.GetString("request_id"), "panic", fmt.Sprint(p))
			if !c.Writer.Written() {
				writeError(c, http.StatusInternalServerError, "internal", "internal error (request "+c.GetString("request_id")+")")
			}
			c.Abort()
		}
	}()
	c.Next()
}

func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.deps.Logger.Debug("http", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
		"ms", time.Since(start).Milliseconds(), "request_id", c.GetString("request_id"))
}

// limitBody answers 413 for bodies over the limit, whether announced by
// Content-Length or discovered while reading.
func (s *Server) limitBody(c *gin.Context) {
	limit := s.deps.MaxBodyBytes
	if isUploadRoute(c.FullPath()) {
		limit = max(limit, MaxUploadBytes)
	}
	if c.Request.ContentLength > limit {
		writeError(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", limit))
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}

// MaxUploadBytes bounds file uploads, which are larger than API bodies.
const MaxUploadBytes = 32 << 20

// isUploadRoute reports the routes that take files and get MaxUploadBytes
// instead of the body limit.
func isUploadRoute(path string) bool { return path == "/api/memories/ingest" }

// apiError is the one JSON error shape of the API.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(c *gin.Context, status int, code, message string) {
	var e apiError
	e.Error.Code = code
	e.Error.Message = message
	c.AbortWithStatusJSON(status, e)
}

// retryAfter is the Retry-After (seconds) of a 503: a database restart
// usually takes a few seconds.
const retryAfter = "2"

// fail maps a domain error to its status, logging internal errors once.
func (s *Server) fail(c *gin.Context, err error, what string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(c, http.StatusNotFound, "not_found", what+" not found")
	case errors.Is(err, store.ErrConflict):
		writeError(c, http.StatusConflict, "conflict", what+" already exists or is in a conflicting state")
	case errors.As(err, &tooLarge):
		writeError(c, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit))
	case errors.Is(err, context.Canceled):
		writeError(c, 499, "client_closed", "the request was cancelled")
	case errors.Is(err, store.ErrUnavailable):
		s.deps.Logger.Warn("store unavailable", "path", c.Request.URL.Path, "request_id", c.GetString("request_id"), "err", err)
		c.Header("Retry-After", retryAfter)
		writeError(c, http.StatusServiceUnavailable, "store_unavailable", "the database is unavailable; retry shortly")
	case errors.Is(err, context.DeadlineExceeded):
		c.Header("Retry-After", retryAfter)
		writeError(c, http.StatusServiceUnavailable, "timeout", "the operation timed out; retry")
	default:
		s.deps.Logger.Error("request failed", "path", c.Request.URL.Path, "request_id", c.GetString("request_id"), "err", err)
		writeError(c, http.StatusInternalServerError, "internal", "internal error (request "+c.GetString("request_id")+")")
	}
}
