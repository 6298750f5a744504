package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// TestSessionsAPIAndCLI: GET /api/sessions lists the scope's sessions, the
// most recently active first, paginated; GET /api/sessions/:key counts its
// runs by status; another scope's session is 404; and the CLI shows both.
func TestSessionsAPIAndCLI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			d := startDaemon(t, newConfig(t, kind), llm.NewOffline())
			c := d.client("org-sessions", "u1")
			c.waitRun(c.createRun("main", "older", "hello"), 30*time.Second)
			c.waitRun(c.createRun("main", "newer", "one"), 30*time.Second)
			c.waitRun(c.createRun("main", "newer", "two"), 30*time.Second)

			var list struct {
				Sessions []store.Session `json:"sessions"`
				Total    int             `json:"total"`
				Page     int             `json:"page"`
				Limit    int             `json:"limit"`
			}
			c.must(http.StatusOK, "GET", "/api/sessions", nil, &list)
			if list.Total != 2 || len(list.Sessions) != 2 || list.Sessions[0].Key != "newer" || list.Sessions[1].Key != "older" {
				t.Fatalf("sessions = %+v", list)
			}
			c.must(http.StatusOK, "GET", "/api/sessions?page=2&limit=1", nil, &list)
			if list.Total != 2 || len(list.Sessions) != 1 || list.Sessions[0].Key != "older" || list.Page != 2 || list.Limit != 1 {
				t.Fatalf("page 2 of 1 = %+v", list)
			}
			var s store.Session
			c.must(http.StatusOK, "GET", "/api/sessions/newer", nil, &s)
			if s.Key != "newer" || s.Runs != 2 || s.RunsByStatus[store.RunCompleted] != 2 || len(s.AgentIDs) != 1 ||
				s.AgentIDs[0] != "main" || s.LastActivityAt.Before(s.CreatedAt) {
				t.Fatalf("session newer = %+v", s)
			}
			for _, bad := range []string{"/api/sessions?page=0", "/api/sessions?limit=500"} {
				if status, body := c.req("GET", bad, nil); status != http.StatusBadRequest {
					t.Fatalf("GET %s: %d %s, want 400", bad, status, body)
				}
			}
			other := d.client("org-other", "u1")
			if status, body := other.req("GET", "/api/sessions/newer", nil); status != http.StatusNotFound || !strings.Contains(string(body), `"not_found"`) {
				t.Fatalf("another scope's session: %d %s, want 404", status, body)
			}
			other.must(http.StatusOK, "GET", "/api/sessions", nil, &list)
			if list.Total != 0 || len(list.Sessions) != 0 {
				t.Fatalf("another scope's sessions = %+v", list)
			}
			if status, _ := c.req("GET", "/api/sessions/missing", nil); status != http.StatusNotFound {
				t.Fatalf("a missing session: %d, want 404", status)
			}

			if kind != "sqlite" {
				return
			}
			env := cliEnv(d, "org-sessions", "u1")
			res := runCLI(t, env, "sessions", "list")
			if res.code != 0 || !strings.Contains(res.stdout, "SESSION") || strings.Index(res.stdout, "newer") > strings.Index(res.stdout, "older") ||
				!strings.Contains(res.stdout, "completed 2") {
				t.Fatalf("sessions list: %+v", res)
			}
			res = runCLI(t, env, "sessions", "show", "newer", "--json")
			var shown store.Session
			if res.code != 0 || json.Unmarshal([]byte(res.stdout), &shown) != nil || shown.Runs != 2 {
				t.Fatalf("sessions show --json: %+v", res)
			}
			assertOneLineError(t, runCLI(t, env, "sessions", "show", "newer", "--org", "other"), "session newer not found")
		})
	}
}
