package httpapi

import (
	"net/http"
	"testing"
)

// The README shows author on entries: a client may set it, to itself or to
// a member agent, and to nobody else.
func TestBlackboardAuthor(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"ann","name":"Ann"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"out","name":"Outsider"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r","name":"R"}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g","name":"G","members":[{"agent_id":"ann","role_id":"r"}]}`})
	const path = "/api/groups/g/blackboard"
	for body, want := range map[string]string{
		`{"text":"a"}`:                                 "user:u1",
		`{"text":"b","author":"user:u1"}`:              "user:u1",
		`{"text":"c","author":"ann"}`:                  "ann",
		`{"text":"d","author":"ann","agent_id":"ann"}`: "ann",
		`{"text":"e","agent_id":"ann"}`:                "ann",
	} {
		e := h.must(http.StatusCreated, request{method: "POST", path: path, body: body}).json(t)
		if e["author"] != want {
			t.Errorf("%s: author %v, want %s", body, e["author"], want)
		}
	}
	h.wantError(http.StatusForbidden, "author_not_allowed", request{method: "POST", path: path, body: `{"text":"x","author":"user:mallory"}`})
	h.wantError(http.StatusUnprocessableEntity, "not_member", request{method: "POST", path: path, body: `{"text":"x","author":"out"}`})
	h.wantError(http.StatusBadRequest, "invalid_agent_id", request{method: "POST", path: path, body: `{"text":"x","author":"Not An Id"}`})
	h.wantError(http.StatusBadRequest, "invalid_author", request{method: "POST", path: path, body: `{"text":"x","author":"user:u1","agent_id":"ann"}`})
	got := h.must(http.StatusOK, request{method: "GET", path: path + "?author=ann"}).json(t)
	if got["total"] != float64(3) {
		t.Errorf("entries by ann: %v", got["total"])
	}
}
