package httpapi

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// noBodyRoutes take no body: they act on the path alone.
var noBodyRoutes = []string{
	"POST /api/agents/:agent_id/pause", "POST /api/agents/:agent_id/resume", "POST /api/runs/:run_id/cancel",
	"POST /api/auth/logout", "POST /api/jobs/:job_id/cancel",
}

// TestBadInputIsA4xxJSONError sends every /api route malformed JSON, unknown
// fields, non-object and oversize bodies, a wrong content type, NUL, bad
// ids, another tenant's ids and no scope: each must be a 4xx JSON error,
// never a 500 or a success.
func TestBadInputIsA4xxJSONError(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			testBadInput(t, kind)
		})
	}
}

func testBadInput(t *testing.T, kind string) {
	const maxBody = 4096
	h := newHarness(t, kind, func(d *Deps) { d.MaxBodyBytes = maxBody })
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g1","name":"G","members":[{"agent_id":"a1","role_id":"r1"}]}`})
	runID := h.must(http.StatusCreated, request{method: "POST", path: "/api/runs", body: `{"input":"hi","agent_id":"a1","session_key":"s1"}`}).json(t)["run_id"].(string)
	memID := h.must(http.StatusCreated, request{method: "POST", path: "/api/memories", body: `{"type":"episodic","text":"a fact"}`}).json(t)["id"].(string)
	entryID := h.must(http.StatusCreated, request{method: "POST", path: "/api/groups/g1/blackboard", body: `{"text":"a note"}`}).json(t)["memory_id"].(string)
	skillBody, skillCT := skillUpload("sk-1")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/skills", body: skillBody, header: map[string]string{"Content-Type": skillCT}})
	tokenID := h.must(http.StatusCreated, request{method: "POST", path: "/api/tokens", body: `{"name":"t","role":"viewer"}`}).json(t)["id"].(string)
	job, err := h.store.(store.JobStore).CreateJob(t.Context(), store.NewJob{Scope: store.Scope{OrgID: "o1", UserID: "u1"}, ID: "job1", Kind: "local_files"})
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]string{
		"agent_id": "a1", "role_id": "r1", "group_id": "g1", "member_id": "a1", "run_id": runID,
		"memory_id": memID, "session_key": "s1", "token_id": tokenID, "skill_id": "sk-1", "job_id": job.ID,
		"approval_id": h.waitingApproval(store.Scope{OrgID: "o1", UserID: "u1"}, "w1", time.Now().Add(time.Hour)).ID,
	}
	public := map[string]bool{}
	for _, spec := range h.api.Routes() {
		public[spec.Method+" "+spec.FullPath()] = spec.Public
	}
	fill := func(path string, bad map[string]string) string {
		segs := strings.Split(path, "/")
		for i, s := range segs {
			if name, ok := strings.CutPrefix(s, ":"); ok {
				v := good[name]
				if name == "memory_id" && strings.Contains(path, "/blackboard/") {
					v = entryID
				}
				if b, ok := bad[name]; ok {
					v = b
				}
				segs[i] = v
			}
		}
		return strings.Join(segs, "/")
	}
	otherTenant := map[string]string{"x-org-id": "o2", "x-user-id": "u2"}
	noScope := map[string]string{"x-org-id": "", "x-user-id": ""}
	big := `{"name":"` + strings.Repeat("x", maxBody) + `"}`

	routes := 0
	for _, r := range h.api.Engine().Routes() {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		if r.Path == OpenAPIPath {
			continue // public: it reads no scope and no input (TestOpenAPIServedWithoutScope)
		}
		routes++
		route := r.Method + " " + r.Path
		hasID := strings.Contains(r.Path, ":")
		takesBody := (r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH") && !slices.Contains(noBodyRoutes, route)
		upload := isUploadRoute(r.Path) && takesBody
		path := fill(r.Path, nil)
		type tc struct {
			name   string
			rq     request
			status int // 0: any 4xx
		}
		var cases []tc
		add := func(name string, status int, rq request) {
			rq.method = r.Method
			if rq.path == "" {
				rq.path = path
			}
			cases = append(cases, tc{name, rq, status})
		}
		if !public[route] { // signing in and out needs no scope
			add("no scope", http.StatusBadRequest, request{header: noScope})
			add("bad scope", http.StatusBadRequest, request{header: map[string]string{"x-org-id": "o 1"}})
		}
		add("NUL in query", http.StatusBadRequest, request{path: path + "?x=%00"})
		if strings.Contains(r.Path, ":session_key") {
			// A session's runs are a filter (any key is a, maybe empty, list);
			// the session itself is a resource, which another tenant lacks.
			add("long session_key", http.StatusBadRequest, request{path: fill(r.Path, map[string]string{"session_key": strings.Repeat("s", 129)})})
			if strings.HasSuffix(r.Path, ":session_key") {
				add("another tenant's session", http.StatusNotFound, request{header: otherTenant})
			}
		} else if hasID {
			add("another tenant's ids", http.StatusNotFound, request{header: otherTenant})
			for _, bad := range []string{"BAD", "%2F", "..", strings.Repeat("a", 300), "%00", "run_00000000-0000-0000-0000-000000000000"} {
				for name := range good {
					if strings.Contains(r.Path, ":"+name) {
						add("bad "+name+" "+bad[:min(len(bad), 8)], 0, request{path: fill(r.Path, map[string]string{name: bad})})
					}
				}
			}
		}
		switch {
		case upload:
			add("JSON to an upload", http.StatusUnsupportedMediaType, request{body: `{}`})
			add("form without file", http.StatusBadRequest, request{body: "--x--\r\n", header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}})
		case takesBody:
			add("no body", http.StatusBadRequest, request{})
			add("malformed JSON", http.StatusBadRequest, request{body: `{"name":`})
			add("unknown field", http.StatusBadRequest, request{body: `{"no_such_field":1}`})
			add("null", http.StatusBadRequest, request{body: `null`})
			add("list", http.StatusBadRequest, request{body: `[{}]`})
			add("trailing data", http.StatusBadRequest, request{body: `{} {}`})
			add("wrong type", http.StatusBadRequest, request{body: `{"name":1,"text":1,"content":1,"input":1,"blocks":1,"role_ids":1,"group_ids":1,"agent_id":1,"role_id":1}`})
			add("NUL", http.StatusBadRequest, request{body: `{"name":"\u0000"}`})
			add("text/plain", http.StatusUnsupportedMediaType, request{body: `{}`, header: map[string]string{"Content-Type": "text/plain"}})
			add("form", http.StatusUnsupportedMediaType, request{body: `a=b`, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
			add("oversize", http.StatusRequestEntityTooLarge, request{body: big})
		}
		for _, c := range cases {
			res := h.do(c.rq)
			bad := res.status < 400 || res.status >= 500 || (c.status != 0 && res.status != c.status)
			if bad {
				t.Errorf("%s, %s (%s %s): status %d, want %d (4xx): %.300s", route, c.name, c.rq.method, c.rq.path, res.status, c.status, res.body)
				continue
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s, %s: content type %q", route, c.name, ct)
				continue
			}
			res.errorCode(t)
		}
	}
	if routes < 40 {
		t.Fatalf("only %d /api routes found; is MountMemory wired?", routes)
	}
	// Nothing a refused request touched changed.
	if a := h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1"}).json(t); a["name"] != "A" {
		t.Errorf("agent after the bad requests: %v", a)
	}
}
