package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openintern/openintern/llm"
)

// TestDaemonServesConsole checks the daemon mounts the web console next to the
// API on its one port (the browser tests live in web/).
func TestDaemonServesConsole(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), llm.NewOffline())
	for path, want := range map[string]string{
		"/":            "text/html; charset=utf-8",
		"/trace/run_x": "text/html; charset=utf-8",
		"/api/nope":    "application/json; charset=utf-8",
	} {
		resp, err := http.Get(d.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); got != want {
			t.Fatalf("GET %s: content type %q, want %q (%d %s)", path, got, want, resp.StatusCode, body)
		}
		if want == "text/html; charset=utf-8" && (resp.StatusCode != 200 || !strings.Contains(string(body), "OpenIntern")) {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
	}
}
