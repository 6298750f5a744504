// Package httpapi is OpenIntern's REST API and SSE streams on gin. Handlers are
// thin: they bind and validate input, take the scope from the request, call the
// store, mailbox or runtime, and map domain errors to HTTP statuses in one place.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
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
	// ToolNames lists the tools agents can be given, so an agent or role
	// naming another tool is refused instead of silently never getting it.
	// nil accepts any well-formed name.
	ToolNames func() []string
	// Models checks an agent's or role's model when it is saved, so an
	// unknown provider or model, or a provider without a key, is a 400 then
	// rather than a failed run later. nil accepts any model.
	Models ModelChecker
	// RestrictHosts answers 421 to a Host header that is neither a loopback
	// name nor in AllowedHosts. The daemon sets it when it listens on loopback
	// only: a web page can then reach it only through DNS rebinding, which
	// shows as a foreign Host. A non-empty AllowedHosts also turns it on.
	RestrictHosts bool
	// AllowedHosts are the host names (no port) accepted besides loopback.
	AllowedHosts []string
	// RequestTimeout bounds an API request's work (default
	// DefaultRequestTimeout), so a database that hangs gets a 503 rather than
	// holding the request; streams and uploads are not bounded.
	RequestTimeout time.Duration
	// Idempotency keeps the answers of POSTs sent with an Idempotency-Key
	// (default: Store, when it implements IdempotencyStore).
	Idempotency IdempotencyStore
	// IdempotencyTTL is how long a key's answer is replayed (default
	// store.IdempotencyTTL).
	IdempotencyTTL time.Duration
	// Now is the API's clock (nil: the wall clock); it dates idempotency keys.
	Now func() time.Time
	// AuthRequired makes every /api request present an API token or a web
	// session; without it a request that presents none acts as the admin of
	// the scope it names (for a daemon on loopback only).
	AuthRequired bool
	// Tokens keeps API tokens and web sessions (default: Store, when it
	// implements TokenStore).
	Tokens TokenStore
	// SecureCookies marks the session cookie Secure even on plain HTTP (for a
	// daemon behind a TLS-terminating proxy); over TLS it always is.
	SecureCookies bool
	// Metrics, when set, is served at GET /metrics (outside /api: Prometheus
	// scrapes it; with auth on it takes an admin token).
	Metrics http.Handler
	// SSEClients, when set, counts the open SSE streams.
	SSEClients Gauge
	// Audit keeps the audit log (default: Store, when it implements
	// store.AuditStore); nil records nothing.
	Audit store.AuditStore
	// AuditRetention is how long audit records are kept (0: forever).
	AuditRetention time.Duration
	// RateLimit bounds each caller's request rate (zero: no limit).
	RateLimit RateLimit
	// MaxStreams and MaxStreamsPerScope bound the SSE streams open at once,
	// in all and per scope (0: no bound).
	MaxStreams         int
	MaxStreamsPerScope int
	// Rules writes the policy rule of "approve always" (nil: refused with 501).
	Rules RuleWriter
}

// Gauge is a value that goes up and down (a prometheus.Gauge is one).
type Gauge interface {
	Inc()
	Dec()
}

// DefaultRequestTimeout is Deps.RequestTimeout's default.
const DefaultRequestTimeout = 30 * time.Second

// Server holds the routes.
type Server struct {
	deps Deps
	// mcpGrants are the "<server>__*" grants of a scope's MCP servers (set
	// by MountMCP): an agent may be granted a tenant server's tools.
	mcpGrants func(ctx context.Context, scope store.Scope) []string
	engine    *gin.Engine
	csrf      *http.CrossOriginProtection
	// idemSweep is when (Unix ns) expired idempotency keys are next deleted.
	idemSweep atomic.Int64
	// specs are the registered /api routes (see register).
	specs []routeSpec
	// sessionSweep is when (Unix ns) expired web sessions are next deleted.
	sessionSweep atomic.Int64
	// auditLog batches audit records; auditSweep is when (Unix ns) expired
	// ones are next deleted; auditFailures counts records not written.
	auditLog      auditBatcher
	auditSweep    atomic.Int64
	auditFailures atomic.Int64
	// auditInStore: the audit log is the Store's own, so a create can store
	// its request's record in its own transaction (recordInWrite).
	auditInStore bool
	// limiter is nil when requests are not rate limited.
	limiter *rateLimiter
	// guesses limits each address's failed credentials (see checkGuesses).
	guesses *rateLimiter
	streams *streamCaps
	// skills is set by MountSkills; nil: grants of skills are not checked.
	skills SkillCatalog
	// jobs is nil until MountJobs: uploads of several files then answer 501.
	jobs *JobsConfig
	// cluster is nil until MountCluster: /readyz then never drains.
	cluster Cluster
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
	if deps.RequestTimeout <= 0 {
		deps.RequestTimeout = DefaultRequestTimeout
	}
	if deps.Tokens == nil {
		if ts, ok := deps.Store.(TokenStore); ok {
			deps.Tokens = ts
		}
	}
	if deps.Idempotency == nil {
		if is, ok := deps.Store.(IdempotencyStore); ok {
			deps.Idempotency = is
		}
	}
	auditInStore := false
	if deps.Audit == nil {
		if as, ok := deps.Store.(store.AuditStore); ok {
			deps.Audit, auditInStore = as, true
		}
	}
	s := &Server{deps: deps, engine: gin.New(), csrf: http.NewCrossOriginProtection(), auditInStore: auditInStore}
	if deps.RateLimit.RPS > 0 {
		s.limiter = newRateLimiter(deps.RateLimit, s.now)
	}
	s.guesses = newRateLimiter(RateLimit{RPS: 1 / failedCredentialRefill.Seconds(), Burst: failedCredentialBurst, Loopback: deps.RateLimit.Loopback}, s.now)
	s.streams = newStreamCaps(deps.MaxStreams, deps.MaxStreamsPerScope)
	s.engine.HandleMethodNotAllowed = true
	// A path that only differs by a slash (say /api/agents/%2F) is not found,
	// in JSON, rather than redirected with an HTML body; escaped slashes stay
	// inside their path segment.
	s.engine.RedirectTrailingSlash = false
	s.engine.RedirectFixedPath = false
	s.engine.UseRawPath = true
	s.engine.UnescapePathValues = true
	s.engine.Use(s.requestID, s.recoverPanics, s.accessLog, s.checkHost, s.checkOrigin, s.limitBody)
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
	if s.deps.Metrics != nil {
		r.GET("/metrics", s.authenticate, requireAdmin, gin.WrapH(s.deps.Metrics))
	}
	r.GET(OpenAPIPath, s.serveOpenAPI())

	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/agents", Role: auth.RoleAdmin,
		Summary: "Create an agent",
		Body:    agentBody{}, Response: store.Agent{}, Status: http.StatusCreated, Errors: []int{http.StatusConflict}}, s.createAgent)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/agents", Role: auth.RoleViewer,
		Summary:  "List the scope's agents (the main agent is created on first use)",
		Response: listOf{"agents", store.Agent{}}, Query: pageQuery()}, s.listAgents)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/agents/:agent_id", Role: auth.RoleViewer,
		Summary: "Get an agent", Response: store.Agent{}}, s.getAgent)
	s.register(api, routeSpec{Method: http.MethodPatch, Path: "/agents/:agent_id", Role: auth.RoleAdmin,
		Summary: "Change an agent's name, prompt, model or tools (the fields given)",
		Body:    agentBody{}, Response: store.Agent{}}, s.patchAgent)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/agents/:agent_id", Role: auth.RoleAdmin,
		Summary: "Delete an agent (not the main agent)",
		Status:  http.StatusNoContent, Query: cascadeQuery(), Errors: []int{http.StatusConflict}}, s.deleteAgent)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/agents/:agent_id/messages", Role: auth.RoleMember,
		Summary: "Send a message to an agent's inbox; 202 once it is stored",
		Body:    messageBody{}, Response: messageQueued{}, Status: http.StatusAccepted}, s.postMessage)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/agents/:agent_id/messages", Role: auth.RoleViewer,
		Summary:  "List an agent's inbox messages",
		Response: listOf{"messages", store.Message{}}, Query: pageQuery(messageStatusQuery())}, s.listMessages)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/agents/:agent_id/pause", Role: auth.RoleMember,
		Summary: "Pause an agent at its next step boundary", Response: agentStateAnswer{}}, s.pauseAgent)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/agents/:agent_id/resume", Role: auth.RoleMember,
		Summary: "Resume a paused agent", Response: agentStateAnswer{}}, s.resumeAgent)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/agents/:agent_id/stream", Role: auth.RoleViewer,
		Summary: "Stream an agent's events (SSE)", Stream: true, Query: streamQuery()}, s.streamAgent)

	s.register(api, routeSpec{Method: http.MethodPost, Path: "/runs", Role: auth.RoleMember,
		Summary: "Start a run of an agent (default: the main agent) with an input",
		Body:    runBody{}, Response: runCreated{}, Status: http.StatusCreated}, s.createRun)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/runs", Role: auth.RoleViewer,
		Summary: "List runs, newest first", Response: listOf{"runs", store.Run{}}, Query: pageQuery(runFilterQuery()...)}, s.listRuns)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/runs/:run_id", Role: auth.RoleViewer,
		Summary: "Get a run: status, output or error, usage", Response: store.Run{}}, s.getRun)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/runs/:run_id/events", Role: auth.RoleViewer,
		Summary: "List a run's stored events in order, by cursor", Response: runEventsPage{}, Query: runEventsQuery()}, s.listRunEvents)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/runs/:run_id/stream", Role: auth.RoleViewer,
		Summary: "Stream a run's events (SSE), from its first or after Last-Event-ID", Stream: true, Query: streamQuery()}, s.streamRun)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/runs/:run_id/cancel", Role: auth.RoleMember,
		Summary: "Cancel a run (at once if running)", Response: runCancelAnswer{}, Status: http.StatusAccepted}, s.cancelRun)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/sessions", Role: auth.RoleViewer,
		Summary:  "List the scope's sessions, the most recently active first",
		Response: listOf{"sessions", store.Session{}}, Query: pageQuery()}, s.listSessions)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/sessions/:session_key", Role: auth.RoleViewer,
		Summary: "Get a session: its run counts by status, agents and last activity", Response: store.Session{}}, s.getSession)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/sessions/:session_key/runs", Role: auth.RoleViewer,
		Summary:  "List a session's runs",
		Response: listOf{"runs", store.Run{}}, Query: pageQuery(queryParam{Name: "agent_id", Type: "string"})}, s.listSessionRuns)

	s.teamRoutes(api)
	s.approvalRoutes(api)
	s.tokenRoutes(api)
	s.auditRoutes(api)
}

// apiGroup is /api with the checks every API route has.
func (s *Server) apiGroup() *gin.RouterGroup {
	return s.engine.Group("/api", s.requestDeadline, checkText, s.checkContentType, s.authenticate, s.scope, s.rateLimit)
}

// requestDeadline gives the request's context the API's deadline; what times
// out answers 503 with Retry-After (see fail). A stream lasts as long as its
// client, and an upload as long as its embedding takes.
func (s *Server) requestDeadline(c *gin.Context) {
	if p := c.FullPath(); strings.HasSuffix(p, "/stream") || p == "/api/memories/ingest" {
		c.Next()
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.deps.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

func (s *Server) ready(c *gin.Context) {
	// First, and without touching the store: a draining node must leave its
	// load balancer's rotation at once, even if the database is slow.
	if s.draining() {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
		return
	}
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

// checkHost refuses a Host header the daemon does not answer to (see
// Deps.RestrictHosts).
func (s *Server) checkHost(c *gin.Context) {
	if !s.deps.RestrictHosts && len(s.deps.AllowedHosts) == 0 {
		c.Next()
		return
	}
	host := c.Request.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if !IsLoopbackHost(host) && !slices.Contains(s.deps.AllowedHosts, host) {
		writeError(c, http.StatusMisdirectedRequest, "unknown_host",
			"this daemon does not answer to host "+strconv.Quote(c.Request.Host)+"; add it to OPENINTERN_ALLOWED_HOSTS to allow it")
		return
	}
	c.Next()
}

// IsLoopbackHost reports whether host (no port, no brackets) names only this
// machine: localhost, a *.localhost name (browsers resolve those to loopback
// themselves, so DNS cannot rebind them) or a loopback IP.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkOrigin refuses state-changing requests that a browser sends from
// another site (Sec-Fetch-Site, else Origin against Host): with no auth, any
// page the user opens could otherwise drive the agents.
func (s *Server) checkOrigin(c *gin.Context) {
	if err := s.csrf.Check(c.Request); err != nil {
		writeError(c, http.StatusForbidden, "cross_origin", "cross-origin "+c.Request.Method+" requests are refused; call the API from its own origin or without a browser")
		return
	}
	c.Next()
}

// checkContentType requires a request body to be JSON (a file upload to be a
// multipart form): browsers send text/plain and form bodies to any site
// without asking it first, JSON only after a CORS preflight this API never
// grants.
func (s *Server) checkContentType(c *gin.Context) {
	r := c.Request
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
	if safe || r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		c.Next()
		return
	}
	want := "application/json"
	if isUploadRoute(c.FullPath()) {
		want = "multipart/form-data"
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && archiveBody(c.FullPath(), mt) {
		c.Next()
		return
	}
	if err != nil || mt != want {
		writeError(c, http.StatusUnsupportedMediaType, "unsupported_media_type", "the request body must be "+want)
		return
	}
	c.Next()
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
func isUploadRoute(path string) bool { return path == "/api/memories/ingest" || path == "/api/skills" }

// checkTools returns a message naming the first tool in list the daemon does
// not have, with the valid names, or "" when all exist.
func (s *Server) checkTools(list []string, extra ...string) string {
	if s.deps.ToolNames == nil {
		return ""
	}
	valid := slices.Concat(s.deps.ToolNames(), extra)
	for _, t := range list {
		if !slices.Contains(valid, t) && !grantedByGroup(valid, t) {
			return fmt.Sprintf("unknown tool %q; valid tools: %s", t, strings.Join(valid, ", "))
		}
	}
	return ""
}

// grantedByGroup reports whether name is a tool of a group that valid
// offers as a whole ("<group>__*", an MCP server): its tools may not be
// listed yet (the server is starting or down) when an agent is granted one.
func grantedByGroup(valid []string, name string) bool {
	group, tool, ok := strings.Cut(name, tools.GroupSeparator)
	return ok && tool != "" && tools.ValidToolName(name) && slices.Contains(valid, group+tools.GroupSeparator+"*")
}

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
	c.Set(errorCodeKey, code)
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
	case errors.Is(err, store.ErrQuotaExceeded):
		writeError(c, http.StatusConflict, "quota_exceeded", quotaMessage(err))
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
