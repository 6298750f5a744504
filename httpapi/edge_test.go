package httpapi

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"testing"
)

// A web page the user opens must not drive the local daemon: browsers send
// text/plain and form bodies cross-site without a preflight, and DNS
// rebinding makes a foreign page same-origin with a foreign Host.
func TestCrossSiteRequestsAreRefused(t *testing.T) {
	h := newHarness(t, "sqlite", func(d *Deps) { d.AllowedHosts = []string{"intern.example"} })
	run := `{"input":"hello"}`
	const q = "/api/runs?org_id=o1&user_id=u1"
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"x-org-id": "", "x-user-id": ""}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	// The exact request of the issue: text/plain from a foreign origin.
	h.wantError(http.StatusForbidden, "cross_origin", request{method: "POST", path: q, body: run,
		header: with(map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example"})})
	// Modern browsers also say so in Sec-Fetch-Site.
	h.wantError(http.StatusForbidden, "cross_origin", request{method: "POST", path: q, body: run,
		header: with(map[string]string{"Sec-Fetch-Site": "cross-site"})})
	// A body-less state change (pause) from a foreign origin.
	h.wantError(http.StatusForbidden, "cross_origin", request{method: "POST", path: "/api/agents/main/pause",
		header: map[string]string{"Origin": "http://evil.example"}})
	// Not JSON, with no Origin (curl, or an old browser): 415.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		h.wantError(http.StatusUnsupportedMediaType, "unsupported_media_type", request{method: "POST", path: q, body: run,
			header: with(map[string]string{"Content-Type": ct})})
	}
	// A file upload is a form, and a form from another site is refused too.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "notes.md")
	_, _ = fw.Write([]byte("remember this"))
	_ = mw.Close()
	h.wantError(http.StatusForbidden, "cross_origin", request{method: "POST", path: "/api/memories/ingest", body: form.String(),
		header: map[string]string{"Content-Type": mw.FormDataContentType(), "Origin": "https://evil.example"}})
	h.wantError(http.StatusUnsupportedMediaType, "unsupported_media_type", request{method: "POST", path: "/api/memories/ingest", body: `{}`})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/memories/ingest", body: form.String(),
		header: map[string]string{"Content-Type": mw.FormDataContentType()}})

	// Same-origin console calls and plain clients still work.
	h.must(http.StatusCreated, request{method: "POST", path: q, body: run, header: with(map[string]string{"Content-Type": "application/json; charset=utf-8"})})
	h.must(http.StatusCreated, request{method: "POST", path: "/api/runs", body: run,
		header: map[string]string{"Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"}})
	h.must(http.StatusOK, request{method: "GET", path: "/api/agents", header: map[string]string{"Origin": "https://evil.example"}})
}

func TestForeignHostIsRefused(t *testing.T) {
	h := newHarness(t, "sqlite", func(d *Deps) { d.AllowedHosts = []string{"intern.example"} })
	for host, want := range map[string]int{
		"attacker.example":      http.StatusMisdirectedRequest,
		"attacker.example:3000": http.StatusMisdirectedRequest,
		"127.0.0.1.evil.com":    http.StatusMisdirectedRequest,
		"localhost:3000":        http.StatusOK,
		"app.localhost":         http.StatusOK,
		"127.0.0.2:80":          http.StatusOK,
		"[::1]:3000":            http.StatusOK,
		"intern.example":        http.StatusOK,
		"INTERN.example:8080":   http.StatusOK,
	} {
		for _, path := range []string{"/api/agents", "/healthz", "/api/nope"} {
			r := h.do(request{method: "GET", path: path, header: map[string]string{"Host": host}})
			if want == http.StatusOK {
				if r.status == http.StatusMisdirectedRequest {
					t.Errorf("Host %s %s: refused: %s", host, path, r.body)
				}
				continue
			}
			if r.status != want {
				t.Errorf("Host %s %s: status %d, want %d", host, path, r.status, want)
			} else if code := r.errorCode(t); code != "unknown_host" {
				t.Errorf("Host %s: code %q", host, code)
			}
		}
	}
}
