package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// OpenAPIPath is where the API document is served.
const OpenAPIPath = "/api/openapi.json"

// Extensions of the document's operations.
const (
	// RoleExtension is the least role an operation needs (viewer, member, admin).
	RoleExtension = "x-openintern-role"
	// PublicExtension marks an operation that needs no token and no scope.
	PublicExtension = "x-openintern-public"
	// IdempotentExtension marks an operation that honours Idempotency-Key.
	IdempotentExtension = "x-openintern-idempotent"
)

// publicRoute is a route outside /api's checks: no token, no scope.
type publicRoute struct {
	Method, Path, Summary string
	Response              any
	ContentType           string // of the answer, when not JSON
}

// publicRoutes are described when the router has them; /metrics is mounted
// by the daemon only when metrics are on.
func publicRoutes() []publicRoute {
	return []publicRoute{
		{Method: http.MethodGet, Path: "/healthz", Summary: "Liveness: the process answers", Response: healthAnswer{}},
		{Method: http.MethodGet, Path: "/readyz", Summary: "Readiness: the store is reachable, the agents' runtime answers and the node is not draining; 503 otherwise", Response: readyAnswer{}},
		{Method: http.MethodGet, Path: OpenAPIPath, Summary: "This document: the API in OpenAPI 3.1, built from the routes the daemon serves"},
		{Method: http.MethodPost, Path: MCPServerPath, Summary: "MCP (streamable HTTP): OpenIntern's tools for MCP clients; authenticated like /api (Authorization: Bearer with auth on)"},
		{Method: http.MethodGet, Path: MCPServerPath, Summary: "MCP (streamable HTTP): the server-to-client stream"},
		{Method: http.MethodDelete, Path: MCPServerPath, Summary: "MCP (streamable HTTP): end a session"},
		{Method: http.MethodGet, Path: "/metrics", Summary: "Prometheus metrics of the whole daemon (no tenant ids); with AUTH=token it needs an admin token (Authorization: Bearer)", ContentType: "text/plain"},
	}
}

// serveOpenAPI answers the API document. It is served outside /api's checks
// (no token, no scope): it describes routes, not any tenant's data, and a
// client needs it before it has a token. The encoded document is kept until
// a route is added, since building it takes milliseconds.
func (s *Server) serveOpenAPI() gin.HandlerFunc {
	var (
		mu      sync.Mutex
		builtAt int // routes when doc was built
		doc     []byte
	)
	return func(c *gin.Context) {
		mu.Lock()
		defer mu.Unlock()
		if n := len(s.engine.Routes()); doc == nil || n != builtAt {
			raw, err := json.Marshal(s.OpenAPI())
			if err != nil {
				s.fail(c, err, "API document")
				return
			}
			doc, builtAt = raw, n
		}
		c.Data(http.StatusOK, "application/json", doc)
	}
}

// OpenAPI is the API document (OpenAPI 3.1) of the routes registered so far:
// every /api route from its spec, and the public routes the router has.
func (s *Server) OpenAPI() map[string]any {
	schemas := newSchemaSet()
	paths := map[string]map[string]any{}
	add := func(method, path string, op map[string]any) {
		p := openAPIPath(path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(method)] = op
	}
	served := map[string]bool{}
	for _, r := range s.engine.Routes() {
		served[r.Method+" "+r.Path] = true
	}
	for _, pr := range publicRoutes() {
		if served[pr.Method+" "+pr.Path] {
			add(pr.Method, pr.Path, publicOperation(pr, schemas))
		}
	}
	for _, spec := range s.specs {
		add(spec.Method, spec.FullPath(), operation(spec, schemas))
	}
	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
		"info": map[string]any{
			"title":   "OpenIntern API",
			"version": "1",
			"description": "Persistent LLM agents: agents, runs, sessions, teams, memory, and SSE streams of their events.\n\n" +
				"Auth: with auth on (`auth.mode: token`), every /api operation needs an API token " +
				"(`Authorization: Bearer <token>`, or the web console's `" + SessionCookie + "` cookie) whose role " +
				"allows the operation's `" + RoleExtension + "` (viewer < member < admin). With auth off (the default on a " +
				"loopback address) there is no token and every caller is an admin of the scope it names.\n\n" +
				"Scope: the tenant is (org, user, optional project). With a token it is the token's; headers or body fields " +
				"naming another org or user are 403 `scope_mismatch`, and `x-project-id` only narrows a token bound to no " +
				"project. With auth off it is taken from the x-org-id / x-user-id / x-project-id headers, else the JSON " +
				"body's org_id / user_id / project_id, else the query's. Another scope's resources are 404.\n\n" +
				"Errors are `{\"error\":{\"code\",\"message\"}}`. A POST with an `Idempotency-Key` is done once: a retry " +
				"with the same key and request replays the first answer (`Idempotent-Replayed: true`) for 24 h.",
		},
		"servers":  []any{map[string]any{"url": "/"}},
		"security": []any{map[string]any{"bearerAuth": []string{}}, map[string]any{"sessionCookie": []string{}}},
		"tags":     tagList(s.specs),
		"paths":    paths,
		"components": map[string]any{
			"schemas": schemas.defs,
			"securitySchemes": map[string]any{
				"bearerAuth": map[string]any{"type": "http", "scheme": "bearer", "description": "An API token (oit_...), made by `openintern tokens create` or POST /api/tokens."},
				"sessionCookie": map[string]any{"type": "apiKey", "in": "cookie", "name": SessionCookie,
					"description": "The web console's session, set by signing in; state-changing requests with it must come from the console's origin."},
			},
			"parameters": scopeParameters(),
			"responses":  errorResponses(),
		},
	}
}

// openAPIPath turns gin's /agents/:agent_id into /agents/{agent_id}.
func openAPIPath(ginPath string) string {
	segs := strings.Split(ginPath, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
			segs[i] = "{" + seg[1:] + "}"
		}
	}
	return strings.Join(segs, "/")
}

// pathParams are the names of a gin path's parameters, in order.
func pathParams(ginPath string) []string {
	var names []string
	for seg := range strings.SplitSeq(ginPath, "/") {
		if strings.HasPrefix(seg, ":") || strings.HasPrefix(seg, "*") {
			names = append(names, seg[1:])
		}
	}
	return names
}

// operationID is a stable name of an operation: getAgentsAgentIdMessages.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == ':' || r == '*' || r == '_' || r == '-' || r == '.' }) {
		if part == "api" {
			continue
		}
		b.WriteString(exportedName(part))
	}
	return b.String()
}

func tagOf(spec routeSpec) string {
	if spec.Tag != "" {
		return spec.Tag
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(spec.Path, "/"), "/")
	return first
}

func tagList(specs []routeSpec) []any {
	var names []string
	for _, spec := range specs {
		if t := tagOf(spec); !slices.Contains(names, t) {
			names = append(names, t)
		}
	}
	tags := make([]any, len(names))
	for i, n := range names {
		tags[i] = map[string]any{"name": n}
	}
	return tags
}

// errorStatuses are the error answers an /api route can give: the ones every
// route has (bad scope or query 400, no or bad token 401, role or scope 403,
// rate limit 429, store down or timeout 503), the ones of its shape (a path
// id 404; a body 408; a body on a state-changing route 413/415; a POST's
// Idempotency-Key 409/422), and its own.
func errorStatuses(spec routeSpec) []int {
	st := []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable}
	if spec.Public {
		// No credential, no scope: only the route's own refusals (Errors) and
		// the store's.
		st = []int{http.StatusBadRequest, http.StatusTooManyRequests, http.StatusServiceUnavailable}
		if spec.mutating() {
			st = append(st, http.StatusForbidden) // a cross-origin browser write
		}
	}
	if len(pathParams(spec.Path)) > 0 {
		st = append(st, http.StatusNotFound)
	}
	if spec.Body != nil {
		st = append(st, http.StatusRequestTimeout)
	}
	// Any body sent to a state-changing route is checked, documented or not.
	if spec.Body != nil || spec.mutating() {
		st = append(st, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	if spec.idempotent() {
		st = append(st, http.StatusConflict, http.StatusUnprocessableEntity)
	}
	st = append(st, spec.Errors...)
	slices.Sort(st)
	return slices.Compact(st)
}

// errorDescriptions say when each error status is answered.
func errorDescriptions() map[int]string {
	return map[int]string{
		http.StatusBadRequest:            "Bad input: missing or malformed scope, query, path or JSON body (unknown fields are refused), or NUL in text.",
		http.StatusUnauthorized:          "Auth is on and the request has no valid token or session (missing, unknown, expired or revoked).",
		http.StatusForbidden:             "The token's role does not allow the operation, the request names another org or user (scope_mismatch), or a cross-origin browser write.",
		http.StatusNotFound:              "No such resource in the request's scope (another scope's resources are not found either).",
		http.StatusRequestTimeout:        "The request body did not arrive in time.",
		http.StatusConflict:              "The resource exists or is in a conflicting state, or a request with this Idempotency-Key is still running (retry after Retry-After).",
		http.StatusRequestEntityTooLarge: "The request body is over the limit.",
		http.StatusUnsupportedMediaType:  "The request body is not JSON (not a multipart form, for uploads).",
		http.StatusUnprocessableEntity:   "The Idempotency-Key was used for another request, or the request names things that cannot be used (say, an unknown agent as a member).",
		http.StatusTooManyRequests:       "Over a rate limit, quota or stream cap; Retry-After says when to retry.",
		http.StatusNotImplemented:        "This daemon runs without the feature (say, memory for the blackboard).",
		http.StatusServiceUnavailable:    "The store is unavailable or the operation timed out; retry after Retry-After.",
	}
}

func errorResponses() map[string]any {
	out := map[string]any{}
	for status, desc := range errorDescriptions() {
		resp := map[string]any{
			"description": desc,
			"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusConflict {
			resp["headers"] = map[string]any{"Retry-After": map[string]any{
				"description": "Seconds to wait before retrying.", "schema": map[string]any{"type": "integer"},
			}}
		}
		out[strconv.Itoa(status)] = resp
	}
	return out
}

// scopeParameters are the scope's headers and query parameters, which every
// /api operation takes (see the document's description).
func scopeParameters() map[string]any {
	param := func(in, name, desc string) map[string]any {
		return map[string]any{"in": in, "name": name, "required": false, "description": desc,
			"schema": map[string]any{"type": "string", "pattern": scopeIDPattern.String()}}
	}
	return map[string]any{
		"OrgHeader":     param("header", "x-org-id", "The scope's org. With a token it must be the token's (else 403 scope_mismatch)."),
		"UserHeader":    param("header", "x-user-id", "The scope's user. With a token it must be the token's (else 403 scope_mismatch)."),
		"ProjectHeader": param("header", "x-project-id", "The scope's project; narrows a token bound to no project."),
		"OrgQuery":      param("query", "org_id", "The scope's org, when no header or body names it."),
		"UserQuery":     param("query", "user_id", "The scope's user, when no header or body names it."),
		"ProjectQuery":  param("query", "project_id", "The scope's project, when no header or body names it."),
		"IdempotencyKey": map[string]any{"in": "header", "name": IdempotencyKeyHeader, "required": false,
			"description": "Makes the POST happen once: the same key and request within 24 h replays the first answer " +
				"(Idempotent-Replayed: true); the same key with another request is 422, and 409 while the first is still running.",
			"schema": map[string]any{"type": "string", "minLength": 1, "maxLength": maxIdempotencyKeyLen}},
		"LastEventID": map[string]any{"in": "header", "name": "Last-Event-ID", "required": false,
			"description": "Resume the stream after this event id (also ?last_event_id= or ?cursor=).",
			"schema":      map[string]any{"type": "string"}},
	}
}

// pathParamDescriptions say what the path parameters are; an id that is not
// well-formed is simply not found (404).
func pathParamDescriptions() map[string]string {
	id := " ([a-z0-9][a-z0-9_-]{0,63})."
	return map[string]string{
		"agent_id":    "The agent's id" + id + " `main` exists in every scope.",
		"run_id":      "The run's id (run_<uuid>).",
		"session_key": "The session's key (at most 128 characters).",
		"role_id":     "The role's id" + id,
		"group_id":    "The group's id" + id,
		"member_id":   "The member's agent id" + id,
		"memory_id":   "The memory's (or blackboard entry's) id.",
		"token_id":    "The API token's id.",
	}
}

func paramRef(name string) map[string]any {
	return map[string]any{"$ref": "#/components/parameters/" + name}
}

func operation(spec routeSpec, schemas *schemaSet) map[string]any {
	op := map[string]any{
		"operationId": operationID(spec.Method, spec.FullPath()),
		"summary":     spec.Summary,
		"tags":        []string{tagOf(spec)},
	}
	if spec.Public {
		op["security"] = []any{}
		op[PublicExtension] = true
	} else {
		op[RoleExtension] = string(spec.Role)
	}
	var params []any
	for _, name := range pathParams(spec.Path) {
		p := map[string]any{"in": "path", "name": name, "required": true, "schema": map[string]any{"type": "string"}}
		if d := pathParamDescriptions()[name]; d != "" {
			p["description"] = d
		}
		params = append(params, p)
	}
	if !spec.Public { // a public route reads no scope
		for _, name := range []string{"OrgHeader", "UserHeader", "ProjectHeader", "OrgQuery", "UserQuery", "ProjectQuery"} {
			params = append(params, paramRef(name))
		}
	}
	for _, q := range spec.Query {
		schema := map[string]any{"type": q.Type}
		if len(q.Enum) > 0 {
			schema["enum"] = q.Enum
		}
		p := map[string]any{"in": "query", "name": q.Name, "required": false, "schema": schema}
		if q.Description != "" {
			p["description"] = q.Description
		}
		params = append(params, p)
	}
	if spec.idempotent() {
		op[IdempotentExtension] = true
		params = append(params, paramRef("IdempotencyKey"))
	}
	if spec.Stream {
		params = append(params, paramRef("LastEventID"))
	}
	if len(params) > 0 {
		op["parameters"] = params
	}

	switch body := spec.Body.(type) {
	case nil:
	case upload:
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"multipart/form-data": map[string]any{
			"schema": map[string]any{"type": "object", "properties": map[string]any{
				"file": map[string]any{"type": "string", "contentMediaType": "application/octet-stream", "description": "A UTF-8 text or markdown file (.txt, .md, .markdown), stored at once."},
				"files": map[string]any{"type": "array", "items": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"},
					"description": "Files (PDF, HTML, Markdown, text; each at most 16 MiB) ingested by a job; their names, paths included, are the sources citations name."},
				"agent_id": map[string]any{"type": "string"},
				"group_id": map[string]any{"type": "string"},
			}},
		}}}
	default:
		op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"application/json": map[string]any{"schema": schemas.ref(body, true)},
		}}
	}

	responses := map[string]any{}
	success := map[string]any{"description": http.StatusText(spec.successStatus())}
	switch {
	case spec.Stream:
		success["description"] = "Server-sent events. Each event is `id: <event id>` and `data: <the Event as JSON>` (see the Event schema; " +
			"live-only llm.token events have no id); comments keep the connection alive. A run's stream ends with `event: end` " +
			"after the run's terminal event; with ?from=now the stream starts with `event: ready` naming the id to resume from."
		success["content"] = map[string]any{"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}}}
	case spec.Response != nil:
		success["content"] = map[string]any{"application/json": map[string]any{"schema": responseSchema(spec.Response, schemas)}}
	}
	if spec.idempotent() {
		success["headers"] = map[string]any{IdempotentReplayedHeader: map[string]any{
			"description": "true when this is the stored answer of an earlier request with the same Idempotency-Key.",
			"schema":      map[string]any{"type": "string", "enum": []string{"true"}},
		}}
	}
	responses[strconv.Itoa(spec.successStatus())] = success
	for _, st := range errorStatuses(spec) {
		responses[strconv.Itoa(st)] = map[string]any{"$ref": "#/components/responses/" + strconv.Itoa(st)}
	}
	op["responses"] = responses
	return op
}

func publicOperation(pr publicRoute, schemas *schemaSet) map[string]any {
	success := map[string]any{"description": "OK"}
	switch {
	case pr.ContentType != "":
		success["content"] = map[string]any{pr.ContentType: map[string]any{"schema": map[string]any{"type": "string"}}}
	case pr.Response != nil:
		success["content"] = map[string]any{"application/json": map[string]any{"schema": responseSchema(pr.Response, schemas)}}
	default:
		success["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
	}
	responses := map[string]any{"200": success}
	if pr.Path == "/readyz" {
		responses["503"] = map[string]any{
			"description": "Not ready: the store or the agents' runtime does not answer (an error), or the node is draining (status draining) and takes no new work.",
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"oneOf": []any{
				map[string]any{"$ref": "#/components/schemas/Error"}, schemas.ref(drainingAnswer{}, false),
			}}}},
		}
	}
	return map[string]any{
		"operationId":   operationID(pr.Method, pr.Path),
		"summary":       pr.Summary,
		"tags":          []string{"daemon"},
		"security":      []any{},
		PublicExtension: true,
		"responses":     responses,
	}
}

// responseSchema is the schema of a success answer: a reflected type, a
// paged list, or one of several.
func responseSchema(v any, schemas *schemaSet) map[string]any {
	switch r := v.(type) {
	case listOf:
		return map[string]any{
			"type":     "object",
			"required": []string{r.Field, "total", "page", "limit"},
			"properties": map[string]any{
				r.Field: map[string]any{"type": "array", "items": schemas.ref(r.Item, false)},
				"total": map[string]any{"type": "integer", "description": "How many there are in all."},
				"page":  map[string]any{"type": "integer", "minimum": 1},
				"limit": map[string]any{"type": "integer", "minimum": 1},
			},
		}
	case eitherOf:
		alts := make([]any, len(r))
		for i, alt := range r {
			alts[i] = responseSchema(alt, schemas)
		}
		return map[string]any{"oneOf": alts}
	}
	return schemas.ref(v, false)
}
