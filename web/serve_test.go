package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestServing checks the console's routes, content types and caching, and
// that the API keeps its own routes and JSON errors.
func TestServing(t *testing.T) {
	c := startConsole(t)

	var version string
	for _, p := range []string{"/", "/agents", "/runs", "/trace/run_x", "/orchestrator", "/blackboard/g1", "/memory", "/skills", "/signin"} {
		resp, body := get(t, c.url+p, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("GET %s: headers %v", p, resp.Header)
		}
		m := regexp.MustCompile(`/static/([0-9a-f]{12})/js/app\.js`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("GET %s: no versioned app.js in %s", p, body)
		}
		version = m[1]
	}

	for file, ct := range map[string]string{
		"js/app.js": "text/javascript; charset=utf-8", "js/pages/trace.js": "text/javascript; charset=utf-8",
		"app.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
	} {
		resp, body := get(t, c.url+"/static/"+version+"/"+file, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || body == "" {
			t.Fatalf("%s: %d %q", file, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Fatalf("%s: versioned asset cached as %q", file, cc)
		}
		etag := resp.Header.Get("ETag")
		resp, _ = get(t, c.url+"/static/"+file, map[string]string{"If-None-Match": etag})
		if resp.StatusCode != http.StatusNotModified || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s unversioned with its ETag: %d %q", file, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
	// Missing assets, and paths that differ from a route by a slash, are JSON 404s.
	for _, p := range []string{"/static/" + version + "/nope.js", "/static/index.html", "/static/nope", "/api/agents/%2F", "/api/agents/", "/agents/"} {
		resp, body := get(t, c.url+p, map[string]string{"x-org-id": "o", "x-user-id": "u"})
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || !strings.Contains(body, `"not_found"`) {
			t.Fatalf("%s: %d %q %s", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	// A known /api path with the wrong method is a JSON 405.
	req, _ := http.NewRequest("PUT", c.url+"/api/agents", nil)
	req.Header.Set("x-org-id", "o")
	req.Header.Set("x-user-id", "u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(string(body), `"method_not_allowed"`) {
		t.Fatalf("PUT /api/agents: %d %s", resp.StatusCode, body)
	}

	// The API is not shadowed and unknown /api paths stay JSON 404s, even for
	// a browser asking for HTML.
	if resp, body := get(t, c.url+"/healthz", nil); resp.StatusCode != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c.url+"/readyz", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz: %d", resp.StatusCode)
	}
	if resp, body := get(t, c.url+"/api/agents", map[string]string{"x-org-id": "o", "x-user-id": "u"}); resp.StatusCode != 200 || !strings.Contains(body, `"agents"`) {
		t.Fatalf("api: %d %s", resp.StatusCode, body)
	}
	for _, h := range []map[string]string{nil, {"Accept": "text/html"}} {
		resp, body := get(t, c.url+"/api/nope", h)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if resp.StatusCode != 404 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "not_found" {
			t.Fatalf("/api/nope: %d %s", resp.StatusCode, body)
		}
	}
	// Other unknown paths: the console (which says "no page") for browsers, JSON otherwise.
	if resp, body := get(t, c.url+"/no/such", map[string]string{"Accept": "text/html"}); resp.StatusCode != 404 || !strings.Contains(body, "<main") {
		t.Fatalf("/no/such as a page: %d", resp.StatusCode)
	}
	if resp, body := get(t, c.url+"/no/such", nil); resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("/no/such: %d %s", resp.StatusCode, body)
	}
}
