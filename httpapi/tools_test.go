package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// An agent or role naming a tool the daemon does not have is refused with
// the tool's name and the valid ones, on create and on every update route.
func TestUnknownToolNamesAreRefused(t *testing.T) {
	h := newHarness(t, "sqlite")
	h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A","tools":["read_file"]}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R","allowed_tools":["read_file"]}`})
	for _, rq := range []request{
		{method: "POST", path: "/api/agents", body: `{"agent_id":"a2","name":"A","tools":["no_such_tool"]}`},
		{method: "PATCH", path: "/api/agents/a1", body: `{"tools":["read_file","no_such_tool"]}`},
		{method: "POST", path: "/api/roles", body: `{"role_id":"r2","name":"R","allowed_tools":["no_such_tool"]}`},
		{method: "PUT", path: "/api/roles/r1", body: `{"allowed_tools":["no_such_tool"]}`},
	} {
		r := h.wantError(http.StatusBadRequest, "unknown_tool", rq)
		if msg := string(r.body); !strings.Contains(msg, "no_such_tool") || !strings.Contains(msg, "memory_search, read_file, send_message") {
			t.Errorf("%s %s: the message names neither the tool nor the valid ones: %s", rq.method, rq.path, msg)
		}
	}
	// Nothing was changed by the refused updates.
	if got := h.must(http.StatusOK, request{method: "GET", path: "/api/agents/a1"}).json(t)["tools"]; len(got.([]any)) != 1 {
		t.Errorf("agent tools after refused PATCH: %v", got)
	}
	h.must(http.StatusNotFound, request{method: "GET", path: "/api/agents/a2"})
	// Known names and a cleared list still work.
	h.must(http.StatusOK, request{method: "PATCH", path: "/api/agents/a1", body: `{"tools":["memory_search","send_message"]}`})
	h.must(http.StatusOK, request{method: "PUT", path: "/api/roles/r1", body: `{"allowed_tools":null}`})
}
