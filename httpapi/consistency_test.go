package httpapi

import (
	"fmt"
	"net/http"
	"testing"
)

// Small API inconsistencies of issue 12, item 19.
func TestNullAndNonObjectBodiesAreRefused(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g1","name":"G"}`})
	before := h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1"}).json(t)["updated_at"]
	for _, body := range []string{"null", " null ", "[]", `"x"`, "1", "true"} {
		for _, rq := range []request{
			{method: "PATCH", path: "/api/agents/a1"},
			{method: "PUT", path: "/api/roles/r1"},
			{method: "PUT", path: "/api/groups/g1"},
			{method: "PUT", path: "/api/agents/a1/core-memory"},
			{method: "POST", path: "/api/agents"},
		} {
			rq.body = body
			h.wantError(http.StatusBadRequest, "invalid_json", rq)
		}
	}
	if after := h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1"}).json(t)["updated_at"]; after != before {
		t.Errorf("a refused PATCH bumped updated_at: %v -> %v", before, after)
	}
	// An empty object is still a valid (empty) update.
	h.must(http.StatusOK, request{method: "PATCH", path: "/api/agents/a1", body: `{}`})
}

func TestEscapedSlashInPathIsJSON404(t *testing.T) {
	h := newHarness(t, "sqlite")
	for _, p := range []string{"/api/agents/%2F", "/api/agents/a%2Fb", "/api/agents/", "/api/runs/%2F/events", "/api/groups/%2F"} {
		h.wantError(http.StatusNotFound, "not_found", request{method: "GET", path: p})
	}
}

func TestGroupMembersArePaged(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r","name":"R"}`})
	members := ""
	for i := range 5 {
		h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: fmt.Sprintf(`{"agent_id":"a%d","name":"A"}`, i)})
		if i > 0 {
			members += ","
		}
		members += fmt.Sprintf(`{"agent_id":"a%d","role_id":"r"}`, i)
	}
	h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g","name":"G","members":[` + members + `]}`})
	seen := map[any]bool{}
	for page := 1; page <= 3; page++ {
		got := h.must(http.StatusOK, request{method: "GET", path: fmt.Sprintf("/api/groups/g/members?limit=2&page=%d", page)}).json(t)
		list := got["members"].([]any)
		if want := min(2, 5-2*(page-1)); len(list) != want || got["total"] != float64(5) || got["limit"] != float64(2) || got["page"] != float64(page) {
			t.Fatalf("page %d: %d members, want %d: %v", page, len(list), want, got)
		}
		for _, m := range list {
			seen[m.(map[string]any)["agent_id"]] = true
		}
	}
	if len(seen) != 5 {
		t.Errorf("pages covered %d distinct members, want 5", len(seen))
	}
	if got := h.must(http.StatusOK, request{method: "GET", path: "/api/groups/g/members?page=9"}).json(t); len(got["members"].([]any)) != 0 {
		t.Errorf("page past the end: %v", got)
	}
	h.wantError(http.StatusBadRequest, "invalid_limit", request{method: "GET", path: "/api/groups/g/members?limit=0"})
	h.wantError(http.StatusBadRequest, "invalid_page", request{method: "GET", path: "/api/groups/g/members?page=x"})
}

func TestMemorySearchRefusesUnknownType(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.wantError(http.StatusBadRequest, "invalid_type", request{method: "GET", path: "/api/memories/search?q=x&type=bogus"})
	h.wantError(http.StatusBadRequest, "invalid_type", request{method: "GET", path: "/api/memories/search?q=x&type=episodic,"})
	h.must(http.StatusOK, request{method: "GET", path: "/api/memories/search?q=x&type=episodic,archival"})
}
