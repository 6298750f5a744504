package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

func mountFeishu(h *harness, configured bool) *int {
	woken := 0
	h.api.MountFeishu(FeishuConfig{Store: h.store.(FeishuConnectors), Configured: configured, Wake: func() { woken++ },
		NewJob: func(scope store.Scope, id string) store.NewJob {
			return store.NewJob{Scope: scope, ID: "job_" + id + "_" + strings.ReplaceAll(h.t.Name(), "/", "_"), Kind: store.KindFeishuSync,
				Params: json.RawMessage(`{"connector_id":"` + id + `"}`)}
		}})
	return &woken
}

// TestFeishuConnectorRoutes: connectors are created, read, listed, patched
// and synced (202 with the job, listed under the connector; 409 while one is
// queued) in the caller's scope; another scope gets 404; bad input is a 400
// JSON error; every route is in the OpenAPI document.
func TestFeishuConnectorRoutes(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			woken := mountFeishu(h, true)
			c := h.must(http.StatusCreated, request{method: "POST", path: "/api/feishu/connectors",
				body: `{"connector_id":"wiki1","name":"Team wiki","sources":[{"type":"wiki","token":"7034","root_node":"wikcnA"},{"type":"docx","token":"doxcnB"}]}`}).json(t)
			if c["connector_id"] != "wiki1" || c["enabled"] != true || len(c["sources"].([]any)) != 2 {
				t.Fatalf("created: %v", c)
			}
			gen := h.must(http.StatusCreated, request{method: "POST", path: "/api/feishu/connectors", body: `{"name":"Drive"}`}).json(t)
			if id, _ := gen["connector_id"].(string); !strings.HasPrefix(id, "fc_") {
				t.Fatalf("generated id: %v", gen)
			}
			h.wantError(http.StatusConflict, "conflict", request{method: "POST", path: "/api/feishu/connectors", body: `{"connector_id":"wiki1","name":"again"}`})
			for _, bad := range []string{`{"sources":[]}`, `{"name":""}`, `{"name":"x","sources":[{"type":"sheet","token":"a"}]}`,
				`{"name":"x","sources":[{"type":"docx","token":"../etc"}]}`, `{"name":"x","connector_id":"Bad Id"}`, `{"name":"x","secret":1}`, `[]`} {
				r := h.do(request{method: "POST", path: "/api/feishu/connectors", body: bad})
				if r.status != http.StatusBadRequest {
					t.Fatalf("%s: status %d %s", bad, r.status, r.body)
				}
				r.errorCode(t)
			}
			list := h.must(http.StatusOK, request{method: "GET", path: "/api/feishu/connectors"}).json(t)
			if list["total"] != float64(2) {
				t.Fatalf("list: %v", list)
			}
			up := h.must(http.StatusOK, request{method: "PATCH", path: "/api/feishu/connectors/wiki1", body: `{"enabled":false,"name":"Wiki"}`}).json(t)
			if up["enabled"] != false || up["name"] != "Wiki" || len(up["sources"].([]any)) != 2 {
				t.Fatalf("patched: %v", up)
			}
			h.wantError(http.StatusBadRequest, "invalid_connector", request{method: "PATCH", path: "/api/feishu/connectors/wiki1", body: `{"sources":[{"type":"drive","token":""}]}`})

			j := h.must(http.StatusAccepted, request{method: "POST", path: "/api/feishu/connectors/wiki1/sync"}).json(t)
			if j["kind"] != store.KindFeishuSync || j["status"] != store.JobQueued || *woken != 1 {
				t.Fatalf("sync: %v (woken %d)", j, *woken)
			}
			h.wantError(http.StatusConflict, "sync_in_progress", request{method: "POST", path: "/api/feishu/connectors/wiki1/sync"})
			jobs := h.must(http.StatusOK, request{method: "GET", path: "/api/feishu/connectors/wiki1/jobs"}).json(t)
			if jobs["total"] != float64(1) || jobs["jobs"].([]any)[0].(map[string]any)["id"] != j["id"] {
				t.Fatalf("jobs: %v", jobs)
			}
			// The job is the scope's like any other.
			h.must(http.StatusOK, request{method: "GET", path: "/api/jobs/" + j["id"].(string)})

			other := map[string]string{"x-org-id": "o2"}
			for _, rq := range []request{
				{method: "GET", path: "/api/feishu/connectors/wiki1"},
				{method: "PATCH", path: "/api/feishu/connectors/wiki1", body: `{"name":"mine"}`},
				{method: "POST", path: "/api/feishu/connectors/wiki1/sync"},
				{method: "GET", path: "/api/feishu/connectors/wiki1/jobs"},
				{method: "GET", path: "/api/feishu/connectors/NOT%20AN%20ID"},
			} {
				if rq.path != "/api/feishu/connectors/NOT%20AN%20ID" {
					rq.header = other
				}
				h.wantError(http.StatusNotFound, "not_found", rq)
			}
			if n := h.must(http.StatusOK, request{method: "GET", path: "/api/feishu/connectors", header: other}).json(t)["total"]; n != float64(0) {
				t.Fatalf("another org lists %v connectors", n)
			}

			doc := h.must(http.StatusOK, request{method: "GET", path: "/api/openapi.json"}).json(t)
			paths := doc["paths"].(map[string]any)
			for _, p := range []string{"/api/feishu/connectors", "/api/feishu/connectors/{connector_id}", "/api/feishu/connectors/{connector_id}/sync",
				"/api/feishu/connectors/{connector_id}/jobs"} {
				if paths[p] == nil {
					t.Fatalf("%s is not in the OpenAPI document", p)
				}
			}
		})
	}
}

// TestFeishuNotConfigured: without a Feishu app a sync is 503 with a clear
// code, while connectors can still be set up.
func TestFeishuNotConfigured(t *testing.T) {
	h := newHarness(t, "sqlite")
	mountFeishu(h, false)
	h.must(http.StatusCreated, request{method: "POST", path: "/api/feishu/connectors", body: `{"connector_id":"c1","name":"C"}`})
	h.wantError(http.StatusServiceUnavailable, "feishu_not_configured", request{method: "POST", path: "/api/feishu/connectors/c1/sync"})
	h.wantError(http.StatusNotFound, "not_found", request{method: "POST", path: "/api/feishu/connectors/nope/sync"})
}

// TestFeishuRoles: members read connectors; only admins create, patch and sync.
func TestFeishuRoles(t *testing.T) {
	h := newHarness(t, "sqlite", withAuth)
	mountFeishu(h, true)
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	_, admin := h.issue(o1, auth.RoleAdmin, nil)
	_, member := h.issue(o1, auth.RoleMember, nil)
	h.must(http.StatusCreated, request{method: "POST", path: "/api/feishu/connectors", body: `{"connector_id":"c1","name":"C"}`, header: bearer(admin)})
	h.must(http.StatusOK, request{method: "GET", path: "/api/feishu/connectors/c1", header: bearer(member)})
	h.must(http.StatusOK, request{method: "GET", path: "/api/feishu/connectors/c1/jobs", header: bearer(member)})
	for _, rq := range []request{
		{method: "POST", path: "/api/feishu/connectors", body: `{"connector_id":"c2","name":"C"}`},
		{method: "PATCH", path: "/api/feishu/connectors/c1", body: `{"name":"x"}`},
		{method: "POST", path: "/api/feishu/connectors/c1/sync"},
	} {
		rq.header = bearer(member)
		if r := h.do(rq); r.status != http.StatusForbidden {
			t.Fatalf("%s %s as a member: %d %s", rq.method, rq.path, r.status, r.body)
		}
	}
}
