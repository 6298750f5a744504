package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// matrixFixture is a fresh set of o1's resources for one call that may change
// them: an agent (paused, so its run stays cancellable), a spare agent, a lead
// role, a spare role, a group of the agent, a run, a memory, a blackboard
// entry and a token.
type matrixFixture map[string]string

// matrixBodies are the request bodies of the routes that take one; {n} is
// the fixture's number, {k} a number unique to the call. A mutating route
// missing here fails the test: every route is in the matrix.
var matrixBodies = map[string]string{
	"POST /api/agents":                                `{"agent_id":"new{k}","name":"N"}`,
	"PATCH /api/agents/:agent_id":                     `{"name":"renamed"}`,
	"DELETE /api/agents/:agent_id":                    ``,
	"POST /api/agents/:agent_id/messages":             `{"content":"hi"}`,
	"POST /api/agents/:agent_id/pause":                ``,
	"POST /api/agents/:agent_id/resume":               ``,
	"PUT /api/agents/:agent_id/core-memory":           `{"blocks":[{"label":"persona","value":"kind"}]}`,
	"POST /api/runs":                                  `{"input":"hi","agent_id":"a{n}"}`,
	"POST /api/runs/:run_id/cancel":                   ``,
	"POST /api/approvals/:approval_id/resolve":        `{"decision":"approve"}`,
	"POST /api/roles":                                 `{"role_id":"new{k}","name":"R"}`,
	"POST /api/roles/batch-delete":                    `{"role_ids":["rx{n}"]}`,
	"PUT /api/roles/:role_id":                         `{"name":"R2"}`,
	"DELETE /api/roles/:role_id":                      ``,
	"POST /api/groups":                                `{"group_id":"new{k}","name":"G"}`,
	"POST /api/groups/batch-delete":                   `{"group_ids":["g{n}"]}`,
	"PUT /api/groups/:group_id":                       `{"name":"G2"}`,
	"DELETE /api/groups/:group_id":                    ``,
	"POST /api/groups/:group_id/runs":                 `{"input":"go"}`,
	"POST /api/groups/:group_id/members":              `{"agent_id":"c{n}","role_id":"rx{n}"}`,
	"PUT /api/groups/:group_id/members/:member_id":    `{"role_id":"rx{n}"}`,
	"DELETE /api/groups/:group_id/members/:member_id": ``,
	"POST /api/groups/:group_id/messages":             `{"content":"hi"}`,
	"POST /api/groups/:group_id/blackboard":           `{"text":"a note"}`,
	"POST /api/memories":                              `{"type":"episodic","text":"a fact"}`,
	"POST /api/memories/ingest":                       `multipart`,
	"DELETE /api/memories/:memory_id":                 ``,
	"POST /api/tokens":                                `{"name":"t{k}","role":"viewer"}`,
	"DELETE /api/tokens/:token_id":                    ``,
	"POST /api/auth/login":                            `{"token":"{admin}"}`,
	"POST /api/auth/logout":                           ``,
	"PUT /api/policy":                                 `{"rules":[{"tool":"shell","effect":"deny"}]}`,
	"POST /api/policy/check":                          `{"tool":"shell","agent_id":"a{n}"}`,
	"POST /api/skills":                                `skill`,
	"DELETE /api/skills/:skill_id":                    ``,
	"POST /api/mcp/servers":                           `{"name":"k{k}","url":"https://mcp.example.com/mcp"}`,
	"DELETE /api/mcp/servers/:name":                   ``,
	"POST /api/mcp/servers/:name/tools/:tool/approve": ``,
	"POST /api/jobs/:job_id/cancel":                   ``,
}

// matrixQueries are the query strings routes need to succeed.
var matrixQueries = map[string]string{
	"DELETE /api/agents/:agent_id": "?cascade=true",
	"DELETE /api/roles/:role_id":   "?cascade=true",
	"GET /api/memories/search":     "?q=fact",
}

// matrixBodyRefs are routes whose body names o1's resources, so another
// org's token gets 404 from them even though their path has no id.
var matrixBodyRefs = map[string]bool{"POST /api/runs": true}

// matrixOtherOrg are the routes whose answer to another org's token with
// o1's ids is not 404: a session's runs are a filter (an empty list).
var matrixOtherOrg = map[string]int{"GET /api/sessions/:session_key/runs": http.StatusOK}

// TestAuthorizationMatrix sends every /api route as every kind of caller and
// expects exactly 401, 403, 404 or 2xx, from the route's role and scope.
func TestAuthorizationMatrix(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testAuthorizationMatrix(t, kind) })
	}
}

func testAuthorizationMatrix(t *testing.T, kind string) {
	h := newHarness(t, kind, withAuth)
	mountMatrixMCP(t, h)
	o1, o2 := store.Scope{OrgID: "o1", UserID: "u1"}, store.Scope{OrgID: "o2", UserID: "u2"}
	_, admin := h.issue(o1, auth.RoleAdmin, nil)
	_, member := h.issue(o1, auth.RoleMember, nil)
	_, viewer := h.issue(o1, auth.RoleViewer, nil)
	past := time.Now().Add(-time.Hour)
	_, expired := h.issue(o1, auth.RoleAdmin, &past)
	revokedTok, revoked := h.issue(o1, auth.RoleAdmin, nil)
	if _, err := h.store.(store.TokenStore).RevokeToken(t.Context(), "o1", "u1", revokedTok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, otherMember := h.issue(o2, auth.RoleMember, nil)

	fixtures := 0
	newFixture := func() matrixFixture {
		fixtures++
		n := fmt.Sprint(fixtures)
		fx := matrixFixture{"n": n, "agent_id": "a" + n, "member_id": "b" + n, "role_id": "rx" + n, "group_id": "g" + n, "session_key": "s" + n}
		as := bearer(admin)
		h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a` + n + `","name":"A"}`, header: as})
		h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"b` + n + `","name":"B"}`, header: as})
		h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"c` + n + `","name":"C"}`, header: as})
		h.must(http.StatusOK, request{method: "POST", path: "/api/agents/a" + n + "/pause", header: as})
		h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r` + n + `","name":"Lead","is_lead":true}`, header: as})
		h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"rx` + n + `","name":"Spare"}`, header: as})
		h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g` + n + `","name":"G","members":[{"agent_id":"a` + n + `","role_id":"r` + n + `"},{"agent_id":"b` + n + `","role_id":"rx` + n + `"}]}`, header: as})
		fx["run_id"] = h.must(http.StatusCreated, request{method: "POST", path: "/api/runs", body: `{"input":"hi","agent_id":"a` + n + `","session_key":"s` + n + `"}`, header: as}).json(t)["run_id"].(string)
		fx["memory_id"] = h.must(http.StatusCreated, request{method: "POST", path: "/api/memories", body: `{"type":"episodic","text":"a fact"}`, header: as}).json(t)["id"].(string)
		fx["entry_id"] = h.must(http.StatusCreated, request{method: "POST", path: "/api/groups/g" + n + "/blackboard", body: `{"text":"a note"}`, header: as}).json(t)["memory_id"].(string)
		body, ct := skillUpload("sk-" + n)
		h.must(http.StatusCreated, request{method: "POST", path: "/api/skills", body: body, header: bearer(admin, "Content-Type", ct)})
		fx["skill_id"] = "sk-" + n
		// A queued job (the harness runs none, so it stays cancellable).
		job, err := h.store.(store.JobStore).CreateJob(t.Context(), store.NewJob{Scope: o1, ID: "job" + n, Kind: "local_files", Total: 0})
		if err != nil {
			t.Fatal(err)
		}
		fx["job_id"] = job.ID
		fx["approval_id"] = h.waitingApproval(o1, "w"+n, time.Now().Add(time.Hour)).ID
		fx["token_id"] = h.must(http.StatusCreated, request{method: "POST", path: "/api/tokens", body: `{"name":"spare","role":"viewer"}`, header: as}).json(t)["id"].(string)
		matrixMCPFixture(t, h, fx, admin)
		return fx
	}
	shared := newFixture()

	type caller struct {
		name   string
		header map[string]string
		role   auth.Role // "" for no role: every route is 401
		other  bool      // another org's token, calling with o1's ids
	}
	callers := []caller{
		{"no token", map[string]string{"x-org-id": "", "x-user-id": ""}, "", false},
		{"expired token", bearer(expired), "", false},
		{"revoked token", bearer(revoked), "", false},
		{"viewer", bearer(viewer), auth.RoleViewer, false},
		{"member", bearer(member), auth.RoleMember, false},
		{"admin", bearer(admin), auth.RoleAdmin, false},
		{"other org's member", bearer(otherMember), auth.RoleMember, true},
		{"member naming another org", bearer(member, "x-org-id", "o2", "x-user-id", "u2"), auth.RoleMember, false},
	}

	// The operations come from the served API document, so a route that is
	// not documented fails the document's own test, and one that is cannot
	// skip this one.
	ops, err := Operations(servedDocument(t, h))
	if err != nil {
		t.Fatal(err)
	}
	calls, k := 0, 0
	counts := map[int]int{}
	for _, op := range ops {
		spec := matrixSpec{Method: op.Method, Path: ginPath(op.Path), Role: op.Role, Public: op.Public}
		route := spec.Method + " " + spec.Path
		body, hasBody := matrixBodies[route]
		if spec.mutating() && !hasBody {
			t.Errorf("%s is not in the authorization matrix: add its body to matrixBodies", route)
			continue
		}
		for _, c := range callers {
			want := expectedStatus(spec, route, c.role, c.other, c.name == "member naming another org")
			fx := shared
			if spec.mutating() && want/100 == 2 {
				fx = newFixture()
			}
			k++
			rq := matrixRequest(spec, fx, body, k, admin)
			for name, v := range c.header {
				if _, set := rq.header[name]; !set || name == "Authorization" {
					rq.header[name] = v
				}
			}
			got := h.status(rq)
			calls++
			counts[got]++
			if got != want && (want != http.StatusOK || got/100 != 2) {
				t.Errorf("%s as %s: %d, want %d", route, c.name, got, want)
			}
		}
	}
	if len(ops) < len(h.api.Routes()) {
		t.Errorf("the document has %d operations, the router %d /api routes", len(ops), len(h.api.Routes()))
	}
	t.Logf("authorization matrix (%s): %d operations x %d callers = %d calls; answers by status: %v", kind, len(ops), len(callers), calls, counts)
}

// matrixSpec is an operation of the document, with gin's path syntax.
type matrixSpec struct {
	Method, Path string
	Role         auth.Role
	Public       bool
}

func (m matrixSpec) mutating() bool { return m.Method != http.MethodGet && m.Method != http.MethodHead }

// ginPath turns the document's /api/agents/{agent_id} into /api/agents/:agent_id.
func ginPath(docPath string) string {
	segs := strings.Split(docPath, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(segs, "/")
}

// expectedStatus is the matrix's rule. want 200 stands for any 2xx.
func expectedStatus(spec matrixSpec, route string, role auth.Role, otherOrg, namesOtherOrg bool) int {
	switch {
	case spec.Public:
		return http.StatusOK
	case role == "":
		return http.StatusUnauthorized
	case namesOtherOrg:
		return http.StatusForbidden // scope_mismatch, before the role
	case !role.Allows(spec.Role):
		return http.StatusForbidden
	case otherOrg:
		if s, ok := matrixOtherOrg[route]; ok {
			return s
		}
		if strings.Contains(spec.Path, ":") || matrixBodyRefs[route] {
			return http.StatusNotFound
		}
	}
	return http.StatusOK
}

// matrixRequest fills the route's path and body from a fixture.
func matrixRequest(spec matrixSpec, fx matrixFixture, body string, k int, adminSecret string) request {
	segs := strings.Split(spec.Path, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			v := fx[name]
			if name == "memory_id" && strings.Contains(spec.Path, "/blackboard/") {
				v = fx["entry_id"]
			}
			segs[i] = v
		}
	}
	rq := request{method: spec.Method, path: strings.Join(segs, "/") + matrixQueries[spec.Method+" "+spec.Path], header: map[string]string{}}
	r := strings.NewReplacer("{n}", fx["n"], "{k}", fmt.Sprint(k), "{admin}", adminSecret)
	switch body {
	case "":
	case "skill":
		var ct string
		rq.body, ct = skillUpload("new-" + fmt.Sprint(k))
		rq.header["Content-Type"] = ct
	case "multipart":
		rq.body = "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"n.md\"\r\nContent-Type: text/markdown\r\n\r\n# Notes\nThe launch is on Tuesday.\r\n--x--\r\n"
		rq.header["Content-Type"] = "multipart/form-data; boundary=x"
	default:
		rq.body = r.Replace(body)
	}
	return rq
}

// status sends rq and returns the status; a stream is closed once its
// headers arrive.
func (h *harness) status(rq request) int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 20*time.Second)
	defer cancel()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, h.srv.URL+rq.path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if rq.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	cancel()
	_ = resp.Body.Close()
	return resp.StatusCode
}
