package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// auditBodies are valid bodies for the mutating routes that take one; the
// others get none.
var auditBodies = map[string]string{
	"POST /api/agents":                                `{"agent_id":"a2","name":"A2"}`,
	"PATCH /api/agents/:agent_id":                     `{"name":"A1b"}`,
	"POST /api/agents/:agent_id/messages":             `{"content":"hello"}`,
	"POST /api/runs":                                  `{"input":"hi","agent_id":"a1"}`,
	"POST /api/approvals/:approval_id/resolve":        `{"decision":"deny"}`,
	"POST /api/roles":                                 `{"role_id":"r2","name":"R2"}`,
	"POST /api/roles/batch-delete":                    `{"role_ids":["r9"]}`,
	"PUT /api/roles/:role_id":                         `{"name":"R1b"}`,
	"POST /api/groups":                                `{"group_id":"g2","name":"G2","members":[{"agent_id":"a1","role_id":"r1"}]}`,
	"POST /api/groups/batch-delete":                   `{"group_ids":["g9"]}`,
	"PUT /api/groups/:group_id":                       `{"name":"G1b"}`,
	"POST /api/groups/:group_id/runs":                 `{"input":"plan"}`,
	"POST /api/groups/:group_id/members":              `{"agent_id":"a2","role_id":"r2"}`,
	"PUT /api/groups/:group_id/members/:member_id":    `{"role_id":"r1"}`,
	"POST /api/groups/:group_id/messages":             `{"content":"all hands"}`,
	"POST /api/groups/:group_id/blackboard":           `{"text":"a note"}`,
	"POST /api/memories":                              `{"type":"episodic","text":"a fact"}`,
	"PUT /api/agents/:agent_id/core-memory":           `{"blocks":[{"label":"notes","value":"x"}]}`,
	"DELETE /api/groups/:group_id/members/:member_id": ``,
}

// auditRecords lists the scope's records of one action, newest first.
func auditRecords(t *testing.T, h *harness, action string) []store.AuditRecord {
	t.Helper()
	recs, err := h.api.deps.Audit.ListAudit(t.Context(), store.Scope{OrgID: "o1", UserID: "u1"}, store.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestAuditEveryMutatingRoute calls every mutating route of s.Routes() once
// and finds exactly one new audit record for each call, with the route as
// its action, the path's ids (or the id a create made) as its target, the
// status as its outcome, the digest of the body sent and the request id.
func TestAuditEveryMutatingRoute(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testAuditEveryMutatingRoute(t, kind) })
	}
}

func testAuditEveryMutatingRoute(t *testing.T, kind string) {
	h := newHarness(t, kind)
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a3","name":"C"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R","is_lead":true}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"rw","name":"Worker"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g1","name":"G","members":[{"agent_id":"a1","role_id":"r1"},{"agent_id":"a3","role_id":"rw"}]}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r9","name":"R9"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g9","name":"G9"}`})
	runID := h.must(http.StatusCreated, request{method: "POST", path: "/api/runs", body: `{"input":"hi","agent_id":"a1","session_key":"s1"}`}).json(t)["run_id"].(string)
	memID := h.must(http.StatusCreated, request{method: "POST", path: "/api/memories", body: `{"type":"episodic","text":"a fact"}`}).json(t)["id"].(string)
	tok := h.must(http.StatusCreated, request{method: "POST", path: "/api/tokens", body: `{"name":"spare","role":"viewer"}`}).json(t)
	skillBody, skillCT := skillUpload("kept")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/skills", body: skillBody, header: map[string]string{"Content-Type": skillCT}})
	job, err := h.store.(store.JobStore).CreateJob(t.Context(), store.NewJob{Scope: store.Scope{OrgID: "o1", UserID: "u1"}, ID: "job1", Kind: "local_files"})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"agent_id": "a1", "role_id": "r1", "group_id": "g1", "member_id": "a1", "run_id": runID, "memory_id": memID,
		"token_id": tok["id"].(string), "skill_id": "kept", "job_id": job.ID,
		"approval_id": h.waitingApproval(store.Scope{OrgID: "o1", UserID: "u1"}, "w1", time.Now().Add(time.Hour)).ID}
	bodies := maps.Clone(auditBodies)
	bodies["POST /api/tokens"] = `{"name":"t2","role":"viewer"}`
	bodies["POST /api/auth/login"] = `{"token":"` + tok["secret"].(string) + `"}`

	var routes []routeSpec
	for _, r := range h.api.Routes() {
		if r.mutating() {
			routes = append(routes, r)
		}
	}
	// Deletes last, the innermost first, so that the calls before them find
	// what they act on.
	slices.SortStableFunc(routes, func(a, b routeSpec) int {
		return boolInt(a.Method == http.MethodDelete) - boolInt(b.Method == http.MethodDelete)
	})
	var deletes []routeSpec
	for i, r := range routes {
		if r.Method == http.MethodDelete {
			deletes = routes[i:]
			routes = routes[:i]
			break
		}
	}
	slices.Reverse(deletes)
	routes = append(routes, deletes...)
	if len(routes) < 20 {
		t.Fatalf("only %d mutating routes: is MountMemory wired?", len(routes))
	}

	ok := 0
	for _, r := range routes {
		action := r.Method + " " + r.FullPath()
		var pathIDs []string
		segs := strings.Split(r.FullPath(), "/")
		for i, seg := range segs {
			if name, isParam := strings.CutPrefix(seg, ":"); isParam {
				v, known := ids[name]
				if !known {
					t.Fatalf("%s: no id for %s", action, name)
				}
				segs[i] = v
				pathIDs = append(pathIDs, v)
			}
		}
		rq := request{method: r.Method, path: strings.Join(segs, "/"), body: bodies[action],
			header: map[string]string{"X-Request-Id": "req-" + strconv.Itoa(ok) + "-" + r.Method}}
		if r.FullPath() == "/api/skills" {
			rq.body, rq.header["Content-Type"] = skillUpload("audited")
		} else if isUploadRoute(r.FullPath()) {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			fw, err := mw.CreateFormFile("file", "notes.txt")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = fw.Write([]byte("uploaded text"))
			_ = mw.Close()
			rq.body, rq.header["Content-Type"] = buf.String(), mw.FormDataContentType()
		}
		before := len(auditRecords(t, h, action))
		res := h.do(rq)
		recs := auditRecords(t, h, action)
		if len(recs) != before+1 {
			t.Errorf("%s (status %d): %d new audit records, want 1", action, res.status, len(recs)-before)
			continue
		}
		rec := recs[0]
		wantTarget := strings.Join(pathIDs, "/")
		if len(pathIDs) == 0 && res.status < 300 && len(res.body) > 0 {
			// A create names what it made, a batch delete what it deleted;
			// the answer has those ids.
			var body map[string]any
			_ = json.Unmarshal(res.body, &body)
			found := false
			for k, v := range body {
				found = found || (strings.HasSuffix(k, "id") && v == rec.Target)
			}
			if deleted, isList := body["deleted"].([]any); isList && len(deleted) == 1 {
				found = found || deleted[0] == rec.Target
			}
			if rec.Target == "" || !found {
				t.Errorf("%s: target %q is not an id of the answer %.200s", action, rec.Target, res.body)
			}
			wantTarget = rec.Target
		}
		wantHash := ""
		if rq.body != "" {
			wantHash = store.HashArgs([]byte(rq.body))
		}
		want := store.AuditRecord{ID: rec.ID, Time: rec.Time, Scope: store.Scope{OrgID: "o1", UserID: "u1"},
			Actor: store.AuditAnonymous, Via: auth.ViaNone, Action: action, Target: wantTarget, ArgsHash: wantHash,
			Outcome: strconv.Itoa(res.status), RequestID: rq.header["X-Request-Id"], Detail: rec.Detail}
		if res.status >= 400 {
			want.Detail = res.errorCode(t)
		}
		if action == "POST /api/auth/login" { // a sign-in acts as the token it signs in
			want.Actor, want.ActorName, want.Via = "token:"+ids["token_id"], "spare", auth.ViaCookie
		}
		if rec != want {
			t.Errorf("%s: record\n got  %+v\n want %+v", action, rec, want)
			continue
		}
		if res.status < 400 {
			ok++
		} else {
			t.Logf("%s: %d %s (recorded as such)", action, res.status, want.Detail)
		}
	}
	t.Logf("%s: %d mutating routes called, %d answered 2xx, one audit record each", kind, len(routes), ok)
	if ok < len(routes)*3/4 {
		t.Errorf("only %d of %d calls succeeded: the bodies above no longer fit their routes", ok, len(routes))
	}
	// Reads are not recorded.
	h.must(http.StatusOK, request{method: "GET", path: "/api/agents"})
	if n := len(auditRecords(t, h, "GET /api/agents")); n != 0 {
		t.Errorf("GET /api/agents left %d audit records", n)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAuditReplayAndRefusals: an idempotent replay is recorded once more,
// marked as a replay; a refusal by authorize (403) and one before the route
// (auditRefusal, as authenticate calls it) are recorded once each with the
// token, also on a read route; a bad body is recorded with its error code.
func TestAuditReplayAndRefusals(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	send := request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"once"}`, header: map[string]string{IdempotencyKeyHeader: "k1"}}
	first := h.must(http.StatusAccepted, send)
	again := h.must(http.StatusAccepted, send)
	if again.header.Get(IdempotentReplayedHeader) != "true" || !bytes.Equal(first.body, again.body) {
		t.Fatalf("second send was not a replay: %v %s", again.header, again.body)
	}
	recs := auditRecords(t, h, "POST /api/agents/:agent_id/messages")
	if len(recs) != 2 || recs[0].Detail != DetailIdempotentReplay || recs[1].Detail != "" ||
		recs[0].Outcome != "202" || recs[0].ArgsHash != recs[1].ArgsHash || recs[0].Target != "a1" {
		t.Fatalf("records of a send and its replay: %+v", recs)
	}
	h.wantError(http.StatusBadRequest, "", request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":""}`})
	recs = auditRecords(t, h, "POST /api/agents/:agent_id/messages")
	if len(recs) != 3 || recs[0].Outcome != "400" || recs[0].Detail == "" {
		t.Fatalf("record of a refused send: %+v", recs[0])
	}

	// A server whose requests come with a viewer's token, or with one
	// authenticate refuses: the lead's authenticate sets the principal or
	// calls auditRefusal the same way.
	scope := store.Scope{OrgID: "o1", UserID: "u1"}
	viewer := auth.Principal{TokenID: "t-view", TokenName: "dashboard", Role: auth.RoleViewer, Scope: scope, Via: auth.ViaToken}
	s := New(Deps{Store: h.store, Logger: h.api.deps.Logger, Runtime: h.api.deps.Runtime})
	engine := gin.New()
	engine.Use(s.requestID, s.recoverPanics)
	api := engine.Group("/api", func(c *gin.Context) {
		if c.GetHeader("Authorization") == "Bearer oit_revoked" {
			s.auditRefusal(c, http.StatusUnauthorized, "token_revoked")
			writeError(c, http.StatusUnauthorized, "token_revoked", "the token was revoked")
			return
		}
		c.Set(scopeKey, scope)
		c.Set(principalKey, viewer)
		c.Next()
	})
	handled := 0
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/things/:thing_id", Role: auth.RoleAdmin}, func(c *gin.Context) { handled++ })
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/things", Role: auth.RoleViewer}, func(c *gin.Context) { c.Status(http.StatusOK) })
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/things/:thing_id/boom", Role: auth.RoleViewer}, func(c *gin.Context) { panic("boom") })
	do := func(method, path, token string) int {
		rq := httptest.NewRequest(method, path, nil)
		if token != "" {
			rq.Header.Set("Authorization", "Bearer "+token)
		}
		rq.Header.Set("x-org-id", "o1")
		rq.Header.Set("x-user-id", "u1")
		w := httptest.NewRecorder()
		engine.ServeHTTP(w, rq)
		return w.Code
	}
	if code := do("DELETE", "/api/things/x1", "oit_viewer"); code != http.StatusForbidden || handled != 0 {
		t.Fatalf("a viewer's delete: %d, handled %d times", code, handled)
	}
	recs = auditRecords(t, h, "DELETE /api/things/:thing_id")
	if len(recs) == 0 || recs[0].RequestID == "" {
		t.Fatalf("records of a refused delete: %+v", recs)
	}
	want := store.AuditRecord{ID: recs[0].ID, Time: recs[0].Time, RequestID: recs[0].RequestID, Scope: scope, Actor: "token:t-view", ActorName: "dashboard",
		Via: auth.ViaToken, Action: "DELETE /api/things/:thing_id", Target: "x1", Outcome: "403", Detail: "forbidden"}
	if len(recs) != 1 || recs[0] != want {
		t.Fatalf("record of a refused delete:\n got  %+v\n want %+v", recs, want)
	}
	if code := do("GET", "/api/things", "oit_viewer"); code != http.StatusOK {
		t.Fatalf("a viewer's read: %d", code)
	}
	if code := do("GET", "/api/things", "oit_revoked"); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token's read: %d", code)
	}
	recs = auditRecords(t, h, "GET /api/things")
	if len(recs) != 1 || recs[0].Outcome != "401" || recs[0].Detail != "token_revoked" || recs[0].Via != auth.ViaToken ||
		recs[0].Actor != "secret:"+auth.HashSecret("oit_revoked")[:12] || recs[0].Scope != scope {
		t.Fatalf("records of reads (only the refused one): %+v", recs)
	}
	if code := do("POST", "/api/things/x2/boom", "oit_viewer"); code != http.StatusInternalServerError {
		t.Fatalf("a panicking handler: %d", code)
	}
	recs = auditRecords(t, h, "POST /api/things/:thing_id/boom")
	if len(recs) != 1 || recs[0].Outcome != "500" || recs[0].Target != "x2" || recs[0].Actor != "token:t-view" || recs[0].RequestID == "" {
		t.Fatalf("record of a panicking handler: %+v", recs)
	}
	if s.AuditFailures() != 0 || h.api.AuditFailures() != 0 {
		t.Fatalf("audit failures: %d, %d", s.AuditFailures(), h.api.AuditFailures())
	}
}

// TestAuditList: GET /api/audit lists the scope's records newest first,
// filters them, pages them with next_cursor, refuses bad values with a 400,
// and shows another tenant nothing.
func TestAuditList(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			for _, id := range []string{"a1", "a2", "a3"} {
				h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"` + id + `","name":"A"}`})
			}
			h.must(http.StatusAccepted, request{method: "POST", path: "/api/agents/a2/messages", body: `{"content":"hi"}`})
			type page struct {
				Records    []store.AuditRecord `json:"records"`
				NextCursor *string             `json:"next_cursor"`
			}
			get := func(query string, header map[string]string) page {
				t.Helper()
				res := h.must(http.StatusOK, request{method: "GET", path: "/api/audit" + query, header: header})
				var p page
				if err := json.Unmarshal(res.body, &p); err != nil {
					t.Fatal(err)
				}
				return p
			}
			all := get("", nil)
			if len(all.Records) != 4 || all.Records[0].Action != "POST /api/agents/:agent_id/messages" || all.Records[3].Target != "a1" || all.NextCursor != nil {
				t.Fatalf("all records: %+v", all)
			}
			if p := get("?action=POST+/api/agents&target=a3", nil); len(p.Records) != 1 || p.Records[0].Target != "a3" {
				t.Fatalf("by action and target: %+v", p.Records)
			}
			if p := get("?actor=anonymous&since="+all.Records[3].Time.Format(time.RFC3339Nano)+"&until="+all.Records[0].Time.Format(time.RFC3339Nano), nil); len(p.Records) != 3 {
				t.Fatalf("since the first until the last (exclusive): %d records", len(p.Records))
			}
			var targets []string
			cursor := ""
			for range 5 {
				p := get("?limit=3"+cursor, nil)
				for _, r := range p.Records {
					targets = append(targets, r.Target)
				}
				if p.NextCursor == nil {
					break
				}
				cursor = "&cursor=" + *p.NextCursor
			}
			if strings.Join(targets, ",") != "a2,a3,a2,a1" {
				t.Fatalf("paged targets: %v", targets)
			}
			if p := get("", map[string]string{"x-org-id": "o2"}); len(p.Records) != 0 {
				t.Fatalf("another tenant sees %d records", len(p.Records))
			}
			for _, q := range []string{"?since=yesterday", "?until=2026-13-01T00:00:00Z", "?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
				"?cursor=x", "?cursor=0", "?limit=0", "?limit=1001", "?actor=" + strings.Repeat("x", 600)} {
				h.wantError(http.StatusBadRequest, "", request{method: "GET", path: "/api/audit" + q})
			}
		})
	}
}

// TestAuditRetention: a request after the sweep interval deletes the records
// older than the retention, and only those.
func TestAuditRetention(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	h := newHarness(t, "sqlite", func(d *Deps) { d.Now = clock; d.AuditRetention = 48 * time.Hour })
	old := []store.AuditRecord{{Time: now.Add(-72 * time.Hour), Scope: store.Scope{OrgID: "o1", UserID: "u1"}, Actor: "anonymous", Action: "POST /api/old", Outcome: "201"}}
	if err := h.api.deps.Audit.AppendAudit(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	if n := len(auditRecords(t, h, "POST /api/old")); n != 0 {
		t.Fatalf("%d records older than the retention left", n)
	}
	if n := len(auditRecords(t, h, "POST /api/agents")); n != 1 {
		t.Fatalf("%d records of the request that swept, want 1", n)
	}
}

// TestAuditConcurrentRequests: concurrent mutating requests, whose records
// share transactions, each leave exactly one record.
func TestAuditConcurrentRequests(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
			const n = 40
			statuses := make(chan int, n)
			for i := range n {
				go func() {
					rq, _ := http.NewRequest("POST", h.srv.URL+"/api/agents/a1/messages", strings.NewReader(`{"content":"m`+strconv.Itoa(i)+`"}`))
					rq.Header.Set("Content-Type", "application/json")
					rq.Header.Set("x-org-id", "o1")
					rq.Header.Set("x-user-id", "u1")
					rq.Header.Set("X-Request-Id", "conc-"+strconv.Itoa(i))
					res, err := h.srv.Client().Do(rq)
					if err != nil {
						statuses <- 0
						return
					}
					_ = res.Body.Close()
					statuses <- res.StatusCode
				}()
			}
			for range n {
				if code := <-statuses; code != http.StatusAccepted {
					t.Fatalf("a concurrent send: status %d", code)
				}
			}
			recs := auditRecords(t, h, "POST /api/agents/:agent_id/messages")
			seen := map[string]bool{}
			for _, r := range recs {
				seen[r.RequestID] = true
			}
			if len(recs) != n || len(seen) != n {
				t.Fatalf("%d records with %d request ids for %d sends", len(recs), len(seen), n)
			}
			if h.api.AuditFailures() != 0 {
				t.Fatalf("%d audit failures", h.api.AuditFailures())
			}
		})
	}
}

// appendRefused is a store whose audit log refuses AppendAudit: only
// records written by the store's own writes get in.
type appendRefused struct {
	Store
	store.AuditStore
}

func (appendRefused) AppendAudit(context.Context, []store.AuditRecord) error {
	return errors.New("audit log unavailable")
}

// TestRunRecordStoredWithTheRun: the record of a created run is stored by
// CreateRun with the run (the request waits for one commit, not two), while
// a refused create is recorded after its handler as every other request.
func TestRunRecordStoredWithTheRun(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind, func(d *Deps) { d.Store = appendRefused{d.Store, d.Store.(store.AuditStore)} })
			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
			failures := h.api.AuditFailures()
			if failures != 1 {
				t.Fatalf("%d audit failures after creating an agent, want 1 (its record goes through AppendAudit)", failures)
			}
			runID := h.must(http.StatusCreated, request{method: "POST", path: "/api/runs", body: `{"input":"hi","agent_id":"a1"}`,
				header: map[string]string{"X-Request-Id": "req-run"}}).json(t)["run_id"].(string)
			if got := h.api.AuditFailures(); got != failures {
				t.Fatalf("creating a run went through AppendAudit (%d failures, was %d)", got, failures)
			}
			recs := auditRecords(t, h, "POST /api/runs")
			if len(recs) != 1 {
				t.Fatalf("%d records of POST /api/runs, want the run's one", len(recs))
			}
			r := recs[0]
			if r.Target != runID || r.Outcome != "201" || r.RequestID != "req-run" || r.Actor == "" ||
				r.ArgsHash != store.HashArgs([]byte(`{"input":"hi","agent_id":"a1"}`)) {
				t.Fatalf("the run's record = %+v", r)
			}

			h.must(http.StatusNotFound, request{method: "POST", path: "/api/runs", body: `{"input":"hi","agent_id":"ghost"}`})
			if got := h.api.AuditFailures(); got != failures+1 {
				t.Fatalf("a refused run was not recorded after its handler (%d failures, want %d)", got, failures+1)
			}
			if n := len(auditRecords(t, h, "POST /api/runs")); n != 1 {
				t.Fatalf("%d records of POST /api/runs after a refused one whose AppendAudit failed, want 1", n)
			}
		})
	}
}
