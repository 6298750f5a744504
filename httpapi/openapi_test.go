package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
)

// servedDocument fetches /api/openapi.json from h without a token or scope.
func servedDocument(t *testing.T, h *harness) []byte {
	t.Helper()
	r := h.must(http.StatusOK, request{method: http.MethodGet, path: OpenAPIPath, header: map[string]string{"x-org-id": "", "x-user-id": ""}})
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON", ct)
	}
	return r.body
}

// loadDocument parses and validates an API document with kin-openapi, which
// checks OpenAPI 3.1 documents (and their schemas as JSON Schema 2020-12).
func loadDocument(t *testing.T, raw []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("the API document does not load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi is %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the API document is not valid OpenAPI 3.1: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	h := newHarness(t, "sqlite")
	raw := servedDocument(t, h)
	doc := loadDocument(t, raw)
	if n := len(doc.Paths.Map()); n < 30 {
		t.Fatalf("the document has %d paths; the API has more", n)
	}
	for _, name := range []string{"bearerAuth", "sessionCookie"} {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("no security scheme %s", name)
		}
	}
	if c := doc.Components.SecuritySchemes["sessionCookie"].Value; c.In != "cookie" || c.Name != SessionCookie {
		t.Errorf("sessionCookie is %s %q, want cookie %q", c.In, c.Name, SessionCookie)
	}
	for _, name := range []string{"x-org-id", "x-user-id", "x-project-id"} {
		found := false
		for _, p := range doc.Components.Parameters {
			found = found || (p.Value.In == "header" && p.Value.Name == name)
		}
		if !found {
			t.Errorf("scope header %s is not documented", name)
		}
	}
	t.Logf("%d paths, %d schemas, %d bytes", len(doc.Paths.Map()), len(doc.Components.Schemas), len(raw))
}

// routerMismatches compares the router with the document: every gin route
// under /api, and every public route, must be an operation of the document
// with the same method, and every operation a gin route.
func routerMismatches(engine *gin.Engine, ops []Operation) []string {
	documented := map[string]bool{}
	for _, o := range ops {
		documented[o.Method+" "+o.Path] = true
	}
	public := map[string]bool{}
	for _, pr := range publicRoutes() {
		public[pr.Method+" "+pr.Path] = true
	}
	var problems []string
	routed := map[string]bool{}
	for _, r := range engine.Routes() {
		key := r.Method + " " + openAPIPath(r.Path)
		routed[key] = true
		if (strings.HasPrefix(r.Path, "/api/") || public[r.Method+" "+r.Path]) && !documented[key] {
			problems = append(problems, "routed but not documented: "+key)
		}
	}
	for key := range documented {
		if !routed[key] {
			problems = append(problems, "documented but not routed: "+key)
		}
	}
	slices.Sort(problems)
	return problems
}

func TestOpenAPIMatchesRouter(t *testing.T) {
	h := newHarness(t, "sqlite")
	ops, err := Operations(servedDocument(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if problems := routerMismatches(h.api.Engine(), ops); len(problems) > 0 {
		t.Fatalf("the document does not match the router:\n%s", strings.Join(problems, "\n"))
	}
	if len(ops) != len(h.api.Routes())+3 { // + /healthz, /readyz, /api/openapi.json
		t.Fatalf("%d operations for %d registered routes", len(ops), len(h.api.Routes()))
	}
	t.Logf("%d operations match the router", len(ops))

	// A route added around register is caught, and so is a spec whose route
	// went away.
	h.api.Engine().GET("/api/rogue", func(c *gin.Context) {})
	ops = append(ops, Operation{Method: http.MethodDelete, Path: "/api/ghost/{ghost_id}"})
	got := routerMismatches(h.api.Engine(), ops)
	want := []string{"documented but not routed: DELETE /api/ghost/{ghost_id}", "routed but not documented: GET /api/rogue"}
	if !slices.Equal(got, want) {
		t.Fatalf("mismatches %q, want %q", got, want)
	}
}

func TestOpenAPIOperationsAreDescribed(t *testing.T) {
	h := newHarness(t, "sqlite")
	raw := servedDocument(t, h)
	doc := loadDocument(t, raw)
	ops, err := Operations(raw)
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]routeSpec{}
	for _, spec := range h.api.Routes() {
		specs[spec.Method+" "+openAPIPath(spec.FullPath())] = spec
	}
	ids := map[string]bool{}
	for _, o := range ops {
		op := doc.Paths.Find(o.Path).GetOperation(o.Method)
		name := o.Method + " " + o.Path
		if strings.TrimSpace(op.Summary) == "" {
			t.Errorf("%s has no summary", name)
		}
		if ids[op.OperationID] {
			t.Errorf("%s: operationId %q is not unique", name, op.OperationID)
		}
		ids[op.OperationID] = true
		if o.Success == "" {
			t.Errorf("%s documents no success answer", name)
		}
		spec, registered := specs[name]
		// The authorization matrix walks Routes(): what it expects of a
		// route is what the document says of it.
		switch {
		case registered && (spec.Role != o.Role || spec.Public != o.Public):
			t.Errorf("%s: the document says role %q public %v, the spec %q %v", name, o.Role, o.Public, spec.Role, spec.Public)
		case !registered && !slices.ContainsFunc(publicRoutes(), func(pr publicRoute) bool { return pr.Method+" "+pr.Path == name }):
			t.Errorf("%s is documented but neither a registered route nor a public one", name)
		}
		// The idempotency middleware runs on every POST but the public ones
		// and those whose answer holds a secret (see register).
		if wantIdem := o.Method == http.MethodPost && !spec.Public && !spec.Secret; o.Idempotent != wantIdem || hasParameter(op, "header", IdempotencyKeyHeader) != wantIdem {
			t.Errorf("%s: %s %v, %s documented %v; want %v", name, IdempotentExtension, o.Idempotent, IdempotencyKeyHeader, hasParameter(op, "header", IdempotencyKeyHeader), wantIdem)
		}
		if o.Public {
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s is public but its security is not empty", name)
			}
			if op.Extensions[RoleExtension] != nil {
				t.Errorf("%s is public but has %s", name, RoleExtension)
			}
			continue
		}
		if !o.Role.Valid() {
			t.Errorf("%s: %s %q", name, RoleExtension, o.Role)
		}
		want := []int{400, 401, 403, 429, 503}
		if len(o.PathParams) > 0 {
			want = append(want, 404)
		}
		if o.Body != "" || o.Mutating() {
			want = append(want, 413, 415)
		}
		if o.Idempotent {
			want = append(want, 409, 422)
		}
		for _, st := range want {
			resp := op.Responses.Status(st)
			if resp == nil {
				t.Errorf("%s does not document %d", name, st)
				continue
			}
			if mt := resp.Value.Content.Get("application/json"); mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
				t.Errorf("%s: %d is not the error schema", name, st)
			}
		}
		for _, hdr := range []string{"x-org-id", "x-user-id", "x-project-id"} {
			if !hasParameter(op, "header", hdr) {
				t.Errorf("%s does not document the scope header %s", name, hdr)
			}
		}
		for _, p := range o.PathParams {
			if !strings.Contains(o.Path, "{"+p+"}") {
				t.Errorf("%s: path parameter %s is not in the path", name, p)
			}
		}
	}
}

func hasParameter(op *openapi3.Operation, in, name string) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == in && strings.EqualFold(p.Value.Name, name) {
			return true
		}
	}
	return false
}

func TestOpenAPIServedWithoutScope(t *testing.T) {
	// With auth required the document still needs no token: a client reads
	// it before it has one.
	h := newHarness(t, "sqlite", func(d *Deps) { d.AuthRequired = true })
	h.wantError(http.StatusUnauthorized, "", request{method: http.MethodGet, path: "/api/agents"})
	// No scope headers, an unknown query: the document is not tenant data.
	r := h.must(http.StatusOK, request{method: http.MethodGet, path: OpenAPIPath + "?x=1", header: map[string]string{"x-org-id": "", "x-user-id": ""}})
	var v struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q (%v)", v.OpenAPI, err)
	}
	// A POST to it is not a route.
	if r := h.do(request{method: http.MethodPost, path: OpenAPIPath, body: "{}"}); r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Fatalf("POST %s: %d", OpenAPIPath, r.status)
	}
}

func TestOperationURL(t *testing.T) {
	o := Operation{Method: http.MethodPut, Path: "/api/groups/{group_id}/members/{member_id}", PathParams: []string{"group_id", "member_id"}}
	got, err := o.URL(map[string]string{"group_id": "g 1", "member_id": "a/1"})
	if err != nil || got != "/api/groups/g%201/members/a%2F1" {
		t.Fatalf("URL = %q, %v", got, err)
	}
	if _, err := o.URL(map[string]string{"group_id": "g1"}); err == nil {
		t.Fatal("a missing parameter is not an error")
	}
	if !o.Mutating() {
		t.Fatal("PUT is not mutating")
	}
}

// BenchmarkOpenAPIDocument measures building and encoding the document,
// which GET /api/openapi.json does on every request.
func BenchmarkOpenAPIDocument(b *testing.B) {
	s := New(Deps{Logger: slog.New(slog.DiscardHandler)})
	s.MountMemory(nil)
	var size int
	for b.Loop() {
		raw, err := json.Marshal(s.OpenAPI())
		if err != nil {
			b.Fatal(err)
		}
		size = len(raw)
	}
	b.ReportMetric(float64(size), "bytes/doc")
}

// The served document is kept between requests, but not past a new route.
func TestOpenAPIFollowsNewRoutes(t *testing.T) {
	h := newHarness(t, "sqlite")
	before := servedDocument(t, h)
	if again := servedDocument(t, h); !bytes.Equal(before, again) {
		t.Fatal("the document changed with no new route")
	}
	h.api.register(h.api.apiGroup(), routeSpec{Method: http.MethodGet, Path: "/late", Role: auth.RoleViewer, Summary: "Added late"}, func(c *gin.Context) {})
	// The daemon mounts /metrics on the engine when metrics are on.
	h.api.Engine().GET("/metrics", func(c *gin.Context) { c.String(http.StatusOK, "up 1\n") })
	raw := servedDocument(t, h)
	loadDocument(t, raw)
	ops, err := Operations(raw)
	if err != nil {
		t.Fatal(err)
	}
	if problems := routerMismatches(h.api.Engine(), ops); len(problems) > 0 {
		t.Fatalf("the document does not match the router:\n%s", strings.Join(problems, "\n"))
	}
	if !slices.ContainsFunc(ops, func(o Operation) bool { return o.Path == "/metrics" && o.Public }) {
		t.Fatal("/metrics is routed but not documented as public")
	}
	if !slices.ContainsFunc(ops, func(o Operation) bool {
		return o.Method == http.MethodGet && o.Path == "/api/late" && o.Role == auth.RoleViewer
	}) {
		t.Fatal("a route registered after the document was served is not in it")
	}
}
