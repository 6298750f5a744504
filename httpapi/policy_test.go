package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

type policyAnswer struct {
	Rules []struct {
		ID        string `json:"id"`
		Tool      string `json:"tool"`
		Effect    string `json:"effect"`
		CreatedBy string `json:"created_by"`
	} `json:"rules"`
	Version     int64             `json:"version"`
	ConfigRules []json.RawMessage `json:"config_rules"`
	Defaults    []string          `json:"defaults"`
}

func decodePolicy(t *testing.T, r response) policyAnswer {
	t.Helper()
	var p policyAnswer
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("policy answer: %v: %s", err, r.body)
	}
	return p
}

// TestPolicyAPI: GET, PUT with version and If-Match, 409 on a stale
// version, 400 naming the bad rule, and the dry run, on both stores.
func TestPolicyAPI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testPolicyAPI(t, kind) })
	}
}

func testPolicyAPI(t *testing.T, kind string) {
	h := newHarness(t, kind)
	r := h.must(http.StatusOK, request{method: "GET", path: "/api/policy"})
	p := decodePolicy(t, r)
	if p.Version != 0 || len(p.Rules) != 0 || p.ConfigRules == nil || len(p.Defaults) != 5 || r.header.Get("ETag") != `"0"` {
		t.Fatalf("empty policy: %+v etag %q", p, r.header.Get("ETag"))
	}

	put := `{"rules":[{"id":"no-shell","tool":"shell","effect":"deny","reason":"no shell here"},{"tool":"github__*","agent":"writer","effect":"ask"}],"version":0}`
	p = decodePolicy(t, h.must(http.StatusOK, request{method: "PUT", path: "/api/policy", body: put}))
	if p.Version != 1 || len(p.Rules) != 2 || p.Rules[0].ID != "no-shell" || p.Rules[1].ID == "" || p.Rules[1].CreatedBy != "anonymous" {
		t.Fatalf("put: %+v", p)
	}
	// The same version again: someone else wrote in between.
	h.wantError(http.StatusConflict, "version_conflict", request{method: "PUT", path: "/api/policy", body: put})
	h.wantError(http.StatusConflict, "version_conflict", request{method: "PUT", path: "/api/policy", body: `{"rules":[]}`, header: map[string]string{"If-Match": `"0"`}})
	h.wantError(http.StatusBadRequest, "invalid_version", request{method: "PUT", path: "/api/policy", body: `{"rules":[]}`, header: map[string]string{"If-Match": `"x"`}})
	h.wantError(http.StatusBadRequest, "invalid_version", request{method: "PUT", path: "/api/policy", body: `{"rules":[],"version":1}`, header: map[string]string{"If-Match": `"2"`}})

	// Bad rules: 400 naming the rule; nothing changes.
	for body, want := range map[string]string{
		`{"rules":[{"tool":"a","effect":"deny"},{"tool":"b","effect":"perhaps"}]}`: "rule 1: effect",
		`{"rules":[{"tool":"re:(","effect":"deny"}]}`:                              "rule 0: tool",
		`{"rules":[{"tool":"x","effect":"deny","args":{"path":"a\u0000b"}}]}`:      "",
		`{"rules":[{"tool":"x","effect":"deny","colour":"red"}]}`:                  "colour",
		`{"rules":null}`: "rules is required",
		`{"rules":[{"tool":"x","effect":"deny","args":{"path":"re:` + strings.Repeat("a", 600) + `"}}]}`: "rule 0: args.path",
	} {
		r := h.do(request{method: "PUT", path: "/api/policy", body: body})
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), want) {
			t.Errorf("%.60s: %d %s, want 400 with %q", body, r.status, r.body, want)
		}
		r.errorCode(t)
	}

	r = h.must(http.StatusOK, request{method: "PUT", path: "/api/policy", body: `{"rules":[{"id":"no-shell","tool":"shell","effect":"deny","reason":"no shell here"}]}`, header: map[string]string{"If-Match": `"1"`}})
	if p = decodePolicy(t, r); p.Version != 2 || len(p.Rules) != 1 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("put with If-Match: %+v", p)
	}

	// Dry run: the stored rule decides shell, a default the rest.
	var d struct {
		Effect  string          `json:"effect"`
		Rule    string          `json:"rule"`
		Reason  string          `json:"reason"`
		Source  string          `json:"source"`
		Matched json.RawMessage `json:"matched"`
	}
	check := func(body string) {
		t.Helper()
		d.Matched = nil
		if err := json.Unmarshal(h.must(http.StatusOK, request{method: "POST", path: "/api/policy/check", body: body}).body, &d); err != nil {
			t.Fatal(err)
		}
	}
	check(`{"tool":"shell","args":{"command":"ls"}}`)
	if d.Effect != "deny" || d.Rule != "no-shell" || d.Reason != "no shell here" || d.Source != "scope" || len(d.Matched) == 0 {
		t.Fatalf("check shell: %+v", d)
	}
	check(`{"tool":"write_file","args":{"path":"notes.md","content":"x"}}`)
	if d.Effect != "ask" || d.Rule != "default:write_outside_scratch" || d.Source != "default" {
		t.Fatalf("check write_file: %+v", d)
	}
	check(`{"tool":"read_file","agent_id":"nobody"}`)
	if d.Effect != "allow" || d.Source != "none" {
		t.Fatalf("check read_file: %+v", d)
	}
	h.wantError(http.StatusBadRequest, "invalid_tool", request{method: "POST", path: "/api/policy/check", body: `{"tool":"no such/tool"}`})
	h.wantError(http.StatusBadRequest, "", request{method: "POST", path: "/api/policy/check", body: `{"tool":"shell","args":`})

	// Another user's and another org's policy are their own.
	for _, hdr := range []map[string]string{{"x-user-id": "u2"}, {"x-org-id": "o2"}, {"x-project-id": "p1"}} {
		p := decodePolicy(t, h.must(http.StatusOK, request{method: "GET", path: "/api/policy", header: hdr}))
		if p.Version != 0 || len(p.Rules) != 0 {
			t.Fatalf("%v sees %+v", hdr, p)
		}
	}
	// A project's call falls back to the rules of its scope without project.
	check(`{"tool":"shell","project_id":"p1"}`)
	if d.Effect != "deny" || d.Rule != "no-shell" {
		t.Fatalf("project check: %+v", d)
	}
}

// TestPolicyAPIRoles: only admins read and write the policy; a member's dry
// run does not show the rule's content.
func TestPolicyAPIRoles(t *testing.T) {
	h := newHarness(t, "sqlite", withAuth)
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	_, admin := h.issue(o1, auth.RoleAdmin, nil)
	_, member := h.issue(o1, auth.RoleMember, nil)
	h.must(http.StatusOK, request{method: "PUT", path: "/api/policy", body: `{"rules":[{"tool":"shell","effect":"deny"}]}`, header: bearer(admin)})
	h.wantError(http.StatusForbidden, "", request{method: "GET", path: "/api/policy", header: bearer(member)})
	h.wantError(http.StatusForbidden, "", request{method: "PUT", path: "/api/policy", body: `{"rules":[]}`, header: bearer(member)})
	r := h.must(http.StatusOK, request{method: "POST", path: "/api/policy/check", body: `{"tool":"shell"}`, header: bearer(member)})
	if m := r.json(t); m["effect"] != "deny" || m["matched"] != nil {
		t.Fatalf("member's check: %v", m)
	}
	r = h.must(http.StatusOK, request{method: "POST", path: "/api/policy/check", body: `{"tool":"shell"}`, header: bearer(admin)})
	if m := r.json(t); m["matched"] == nil {
		t.Fatalf("admin's check: %v", m)
	}
	p := decodePolicy(t, h.must(http.StatusOK, request{method: "GET", path: "/api/policy", header: bearer(admin)}))
	if len(p.Rules) != 1 || !strings.HasPrefix(p.Rules[0].CreatedBy, "token:") {
		t.Fatalf("stamped by the token: %+v", p)
	}
}
