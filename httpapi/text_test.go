package httpapi

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// A NUL character in any text input is a 400 naming the field on both
// stores (PostgreSQL cannot store it: it was a 500 there).
func TestNULInInputIsRefused(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			h.must(http.StatusCreated, request{method: "POST", path: "/api/agents", body: `{"agent_id":"a1","name":"A"}`})
			h.must(http.StatusCreated, request{method: "POST", path: "/api/roles", body: `{"role_id":"r1","name":"R"}`})
			h.must(http.StatusCreated, request{method: "POST", path: "/api/groups", body: `{"group_id":"g1","name":"G","members":[{"agent_id":"a1","role_id":"r1"}]}`})
			const nul = `\u0000`
			for _, tc := range []struct {
				rq    request
				field string
			}{
				{request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"hi` + nul + `"}`}, "content"},
				{request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"hi","session_key":"s` + nul + `"}`}, "session_key"},
				{request{method: "POST", path: "/api/agents", body: `{"name":"x` + nul + `y"}`}, "name"},
				{request{method: "PATCH", path: "/api/agents/a1", body: `{"system_prompt":"` + nul + `"}`}, "system_prompt"},
				{request{method: "POST", path: "/api/runs", body: `{"input":"go","session_key":"` + nul + `"}`}, "session_key"},
				{request{method: "POST", path: "/api/memories", body: `{"type":"episodic","text":"a` + nul + `b"}`}, "text"},
				{request{method: "POST", path: "/api/memories", body: `{"type":"episodic","text":"ab","metadata":{"k` + nul + `":"v"}}`}, "metadata"},
				{request{method: "PUT", path: "/api/agents/a1/core-memory", body: `{"blocks":[{"label":"notes","value":"` + nul + `"}]}`}, "value"},
				{request{method: "POST", path: "/api/groups/g1/blackboard", body: `{"text":"t` + nul + `"}`}, "text"},
				{request{method: "POST", path: "/api/groups/g1/messages", body: `{"content":"x","to":"` + nul + `"}`}, "to"},
				{request{method: "PUT", path: "/api/roles/r1", body: `{"allowed_tools":["a` + nul + `"]}`}, "allowed_tools"},
				{request{method: "GET", path: "/api/runs?session_key=%00"}, "session_key"},
				{request{method: "GET", path: "/api/memories/search?q=a%00b"}, "q"},
				{request{method: "GET", path: "/api/sessions/s%00/runs"}, "path"},
				{request{method: "GET", path: "/api/agents?org_id=o%00&user_id=u", header: map[string]string{"x-org-id": ""}}, "org_id"},
			} {
				r := h.wantError(http.StatusBadRequest, "invalid_text", tc.rq)
				if !strings.Contains(string(r.body), strings.ReplaceAll(tc.field, "\x00", `\\u0000`)) {
					t.Errorf("%s %s: the message does not name %q: %s", tc.rq.method, tc.rq.path, tc.field, r.body)
				}
			}
			var form bytes.Buffer
			mw := multipart.NewWriter(&form)
			fw, _ := mw.CreateFormFile("file", "notes.md")
			_, _ = fw.Write([]byte("bad\x00file"))
			_ = mw.Close()
			h.wantError(http.StatusBadRequest, "invalid_text", request{method: "POST", path: "/api/memories/ingest", body: form.String(),
				header: map[string]string{"Content-Type": mw.FormDataContentType()}})
			// An escaped backslash followed by u0000 is text, not a NUL.
			h.must(http.StatusAccepted, request{method: "POST", path: "/api/agents/a1/messages", body: `{"content":"C:\\u0000"}`})
		})
	}
}
