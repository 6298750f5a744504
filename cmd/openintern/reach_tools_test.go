package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// TestReachToolsEndToEnd: a daemon with the shell on; runs of the offline
// model call write_file, edit_file, list_files, shell and http_fetch, and
// each tool.result in the trace shows what happened, escapes and blocked
// addresses included.
func TestReachToolsEndToEnd(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<html><body><h1>Release notes</h1><script>x()</script><p>Version 7 ships.</p></body></html>`)
	}))
	t.Cleanup(page.Close)
	var victimAccepts atomic.Int64
	victimLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	victim := httptest.NewUnstartedServer(http.NotFoundHandler())
	victim.Listener = victimLn
	victim.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			victimAccepts.Add(1)
		}
	}
	victim.Start()
	t.Cleanup(victim.Close)

	cfg := newConfig(t, "sqlite")
	// The tools themselves are under test: the policy's defaults would make
	// these calls wait for an approval (policy and httpapi test those).
	cfg.Policy.Defaults = false
	cfg.Shell.Enabled = true
	cfg.Fetch.Allow = []string{page.Listener.Addr().String()}
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "tess")
	ws := cfg.Workspace()

	call := func(tool string, args map[string]any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(args)
		runID := c.createRun("main", "", "/tool "+tool+" "+string(raw))
		run := c.waitRun(runID, 30*time.Second)
		if run.Status != store.RunCompleted {
			t.Fatalf("%s run: %+v", tool, run)
		}
		for _, e := range c.events(runID) {
			if e.Type == "tool.result" {
				p := payloadOf(t, e)
				if p["name"] != tool {
					t.Fatalf("tool.result of %v, want %s", p["name"], tool)
				}
				return p
			}
		}
		t.Fatalf("%s: no tool.result in the trace", tool)
		return nil
	}
	ok := func(p map[string]any, want string) {
		t.Helper()
		if p["is_error"] != false || !strings.Contains(p["content"].(string), want) {
			t.Fatalf("%s: %v, want success containing %q", p["name"], p["content"], want)
		}
	}
	refused := func(p map[string]any, want string) {
		t.Helper()
		if p["is_error"] != true || !strings.Contains(p["content"].(string), want) {
			t.Fatalf("%s: %v, want an error containing %q", p["name"], p["content"], want)
		}
	}

	ok(call("write_file", map[string]any{"path": "notes/plan.md", "content": "ship version 6\n"}), "created notes/plan.md")
	ok(call("edit_file", map[string]any{"path": "notes/plan.md", "old_string": "version 6", "new_string": "version 7"}), "replaced 1 occurrence")
	if data, err := os.ReadFile(filepath.Join(ws, "notes/plan.md")); err != nil || string(data) != "ship version 7\n" {
		t.Fatalf("notes/plan.md: %q, %v", data, err)
	}
	ok(call("list_files", map[string]any{"pattern": "*.md"}), "notes/plan.md  (15 bytes)")
	ok(call("shell", map[string]any{"command": "tr a-z A-Z < notes/plan.md | tee notes/loud.md"}), "SHIP VERSION 7")
	if data, err := os.ReadFile(filepath.Join(ws, "notes/loud.md")); err != nil || string(data) != "SHIP VERSION 7\n" {
		t.Fatalf("notes/loud.md: %q, %v", data, err)
	}
	ok(call("http_fetch", map[string]any{"url": page.URL + "/notes"}), "Release notes\nVersion 7 ships.")

	refused(call("write_file", map[string]any{"path": "../escape.txt", "content": "x"}), "leads outside the workspace")
	if _, err := os.Stat(filepath.Join(filepath.Dir(ws), "escape.txt")); err == nil {
		t.Fatal("write_file escaped the workspace")
	}
	refused(call("http_fetch", map[string]any{"url": victim.URL}), "loopback")
	refused(call("http_fetch", map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}), "link-local")
	host, port, _ := net.SplitHostPort(victimLn.Addr().String())
	refused(call("shell", map[string]any{"command": "echo > /dev/tcp/" + host + "/" + port}), "Connection refused")
	if n := victimAccepts.Load(); n != 0 {
		t.Fatalf("the victim server was reached %d times", n)
	}
}
