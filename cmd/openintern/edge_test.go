package main

import (
	"net/http"
	"strings"
	"testing"
)

// On a loopback HOST the daemon answers only to loopback names and the
// configured ones, so a page that rebinds its own name to 127.0.0.1 is refused.
func TestDaemonRefusesForeignHostOnLoopback(t *testing.T) {
	cfg := newConfig(t, "sqlite")
	cfg.AllowedHosts = []string{"Intern.Example."}
	d := startDaemon(t, cfg, nil)
	for host, want := range map[string]int{
		"attacker.example": http.StatusMisdirectedRequest,
		"localhost":        http.StatusOK,
		"intern.example":   http.StatusOK,
	} {
		req, _ := http.NewRequest("GET", d.URL()+"/api/agents", nil)
		req.Host = host
		req.Header.Set("x-org-id", "o")
		req.Header.Set("x-user-id", "u")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: status %d, want %d", host, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("POST", d.URL()+"/api/runs?org_id=o&user_id=u", strings.NewReader(`{"input":"hi"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site text/plain run: status %d", resp.StatusCode)
	}
}
