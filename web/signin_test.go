package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/store"
)

// issueToken stores a token the way `openintern tokens create` does and
// returns its secret.
func issueToken(t *testing.T, st store.Store, scope store.Scope, role auth.Role, name string) string {
	t.Helper()
	_, secret := issueTokenID(t, st, scope, role, name)
	return secret
}

func issueTokenID(t *testing.T, st store.Store, scope store.Scope, role auth.Role, name string) (id, secret string) {
	t.Helper()
	tok, secret, err := auth.Issue(auth.TokenRequest{Scope: scope, Name: name, Role: string(role), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	tokens, ok := st.(store.TokenStore)
	if !ok {
		t.Fatalf("the daemon's store %T keeps no tokens", st)
	}
	if err := tokens.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	return tok.ID, secret
}

// bearerCall is a JSON request to the API with a token and no scope headers.
func (c *console) bearerCall(t *testing.T, secret, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// goTo loads a path without waiting for a page to render (it may leave for
// the sign-in page).
func (p *page) goTo(path string) {
	p.t.Helper()
	p.run(chromedp.Navigate(p.c.url + path))
}

// signIn fills in the sign-in form and waits to arrive at wantPath.
func (p *page) signIn(secret, wantPath string) {
	p.t.Helper()
	p.waitJS(`location.pathname === '/signin' && document.querySelector('#signin-token')`, "the sign-in form")
	p.js(`document.querySelector('#signin-token').value = ''`)
	p.run(chromedp.SendKeys(chromedp.CSS("#signin-token"), secret), chromedp.Click(chromedp.CSS("#signin-submit")))
	p.waitJS(`location.pathname === `+jsString(wantPath)+` && !document.querySelector('#who').hidden`, "the signed-in console at "+wantPath)
}

// TestSignInInBrowser runs the console against a daemon with AUTH=token: a
// page without a session goes to sign in; signed in, the console shows and
// streams what the token's scope holds, and nothing of another org's; signing
// out ends the session.
func TestSignInInBrowser(t *testing.T) {
	start := time.Now()
	c, d := startDaemon(t, 35*time.Millisecond, func(cfg *config.Config) { cfg.Auth.Mode = config.AuthToken })
	acme := store.Scope{OrgID: "acme", UserID: "alice"}
	admin := issueToken(t, d.Store, acme, auth.RoleAdmin, "alice laptop")
	viewer := issueToken(t, d.Store, acme, auth.RoleViewer, "alice dashboard")
	bound := issueToken(t, d.Store, store.Scope{OrgID: "acme", UserID: "alice", ProjectID: "apollo"}, auth.RoleMember, "apollo ci")
	rival := issueToken(t, d.Store, store.Scope{OrgID: "globex", UserID: "bob"}, auth.RoleAdmin, "bob laptop")

	// Without a credential the API refuses; with the token it answers.
	if code := c.call(t, "acme", "alice", "GET", "/api/agents", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/agents without a token: %d, want 401", code)
	}
	for _, a := range []struct{ secret, id, name string }{{admin, "scout", "Scout 侦察"}, {rival, "rival", "Rival"}} {
		if code := c.bearerCall(t, a.secret, "POST", "/api/agents", map[string]string{"agent_id": a.id, "name": a.name}, nil); code != http.StatusCreated {
			t.Fatalf("create agent %s: %d", a.id, code)
		}
	}

	b := startBrowser(t)

	t.Run("a page without a session goes to sign in, and back after it", func(t *testing.T) {
		p := b.page(t, c)
		p.goTo("/agents?page=1")
		p.waitJS(`location.pathname === '/signin' && new URLSearchParams(location.search).get('next') === '/agents?page=1' && document.querySelector('#signin-token')`, "the sign-in page with the way back")
		if p.str(`document.querySelector('#signin-token').type`) != "password" {
			t.Fatal("the token field is not a password field")
		}
		if p.str(`String(document.querySelector('#signin-auth-off') === null && document.querySelector('.nav').offsetParent === null)`) != "true" {
			t.Fatal("the sign-in page shows the navigation or says auth is off")
		}

		// A wrong token is refused in words, and the page stays.
		p.run(chromedp.SendKeys(chromedp.CSS("#signin-token"), "oit_not-a-real-token"), chromedp.Click(chromedp.CSS("#signin-submit")))
		p.waitJS(`document.querySelector('#signin-message .error-box .error-message')?.textContent === 'the API token is not known'`, "the refusal")
		p.screenshot("signin-refused")

		p.signIn(admin, "/agents")
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=scout] .agent-name')?.textContent === 'Scout 侦察'`, "acme's agent")
		if n := p.str(`String(document.querySelectorAll('.agent-row[data-agent-id=rival]').length)`); n != "0" {
			t.Fatal("acme's console shows globex's agent")
		}
		if who := p.str(`document.querySelector('#who-text').textContent`); who != "alice laptop · admin" {
			t.Fatalf("signed in as %q", who)
		}
		if scope := p.str(`document.querySelector('#scope-text').textContent`); scope != "acme / alice" {
			t.Fatalf("scope shown %q", scope)
		}
		// The session cookie is out of the page's reach, and the scope is
		// the token's business, not the address bar's.
		if ck := p.str(`document.cookie`); strings.Contains(ck, "openintern_session") {
			t.Fatalf("the session cookie is readable by scripts: %q", ck)
		}
		if q := p.str(`location.search`); strings.Contains(q, "org_id") || strings.Contains(q, "user_id") {
			t.Fatalf("the address names the scope: %q", q)
		}
		p.screenshot("signin-agents")
	})

	t.Run("the scope picker shows what the token allows", func(t *testing.T) {
		p := b.page(t, c)
		// A link naming another org does not change the token's scope.
		p.goTo("/agents?org_id=globex&user_id=bob")
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=scout]') && document.querySelector('#scope-text').textContent === 'acme / alice'`, "acme's agents despite the link")
		p.run(chromedp.Click(chromedp.CSS("#scope-button")))
		p.waitJS(`!document.querySelector('#scope-panel').hidden`, "the scope panel")
		got := p.str(`['org_id','user_id','project_id'].map(f => { const i = document.querySelector('#scope-panel input[name=' + f + ']'); return f + '=' + i.value + (i.readOnly ? ':fixed' : ':free'); }).join(' ')`)
		if got != "org_id=acme:fixed user_id=alice:fixed project_id=:free" {
			t.Fatalf("scope picker %s", got)
		}
		p.screenshot("signin-scope-picker")
		// Choosing a project narrows the token: nothing of acme's unscoped
		// agents is in project "apollo" but its main agent.
		p.run(chromedp.SetValue(chromedp.CSS(`#scope-panel input[name=project_id]`), "apollo"),
			chromedp.Click(chromedp.CSS(`#scope-panel button[type=submit]`)))
		p.waitJS(`document.querySelector('#scope-text').textContent === 'acme / alice / apollo' && location.search.includes('project_id=apollo') && document.querySelector('.agent-row[data-agent-id=main]') && !document.querySelector('.agent-row[data-agent-id=scout]')`, "the apollo project's agents")
		p.run(chromedp.Click(chromedp.CSS("#scope-button")))
		p.waitJS(`!document.querySelector('#scope-panel').hidden`, "the scope panel")
		p.js(`document.querySelector('#scope-panel input[name=project_id]').value = ''`)
		p.run(chromedp.Click(chromedp.CSS(`#scope-panel button[type=submit]`)))
		p.waitJS(`document.querySelector('#scope-text').textContent === 'acme / alice' && document.querySelector('.agent-row[data-agent-id=scout]')`, "acme's agents again")
	})

	t.Run("a run streams into the chat with the session cookie", func(t *testing.T) {
		p := b.page(t, c)
		p.goTo("/")
		p.waitJS(`document.querySelector('#chat-agent option[value=scout]') && document.querySelector('#chat-empty')`, "the chat")
		p.selectValue("#chat-agent", "scout")
		msg := "hello over a signed-in stream, 你好, with enough words in it that the answer streams for a while"
		p.run(chromedp.SendKeys(chromedp.CSS("#chat-input"), msg), chromedp.Click(chromedp.CSS("#chat-send")))
		// Seen part way: the live tokens come only through the EventSource.
		p.waitJS(`(() => { const a = document.querySelector('.turn .answer.streaming'); return a && a.textContent.length > 0 && a.textContent.length < 40; })()`,
			"a partly streamed answer")
		p.waitJS(`document.querySelector('.turn[data-status=completed] .answer')?.textContent.includes('你好')`, "the completed answer")
		runID := p.str(`document.querySelector('.turn').dataset.runId`)
		var run struct {
			AgentID string `json:"agent_id"`
			Status  string `json:"status"`
		}
		if code := c.bearerCall(t, admin, "GET", "/api/runs/"+runID, nil, &run); code != http.StatusOK || run.AgentID != "scout" || run.Status != "completed" {
			t.Fatalf("the run in acme's API: %d %+v", code, run)
		}
		if code := c.bearerCall(t, rival, "GET", "/api/runs/"+runID, nil, nil); code != http.StatusNotFound {
			t.Fatalf("the run in globex's API: %d, want 404", code)
		}
		p.screenshot("signin-chat")
		// Its trace reads the stored events by cookie too.
		p.run(chromedp.Click(chromedp.CSS(`.turn a[href^="/trace/` + runID + `"]`)))
		p.waitJS(`location.pathname === '/trace/`+runID+`' && document.querySelector('[data-type="run.completed"]') && document.querySelector('#trace-status .badge')?.textContent === 'completed'`, "the run's trace")
	})

	t.Run("sign out ends the session", func(t *testing.T) {
		p := b.page(t, c)
		p.goTo("/agents")
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=scout]')`, "the signed-in agents page")
		p.run(chromedp.Click(chromedp.CSS("#signout")))
		p.waitJS(`location.pathname === '/signin' && document.querySelector('#signin-token')`, "the sign-in page after signing out")
		p.goTo("/agents")
		p.waitJS(`location.pathname === '/signin' && new URLSearchParams(location.search).get('next') === '/agents'`, "sign-in again for /agents")
		// The server ended it too: the browser's own request is refused.
		p.js(`fetch('/api/agents').then(r => { window.agentsStatus = String(r.status); })`)
		p.waitJS(`window.agentsStatus === '401'`, "GET /api/agents refused after sign-out")
	})

	t.Run("another org's token sees its own agents only", func(t *testing.T) {
		p := b.page(t, c)
		p.goTo("/agents")
		p.signIn(rival, "/agents")
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=rival]') && document.querySelector('#scope-text').textContent === 'globex / bob'`, "globex's agent")
		if n := p.str(`String(document.querySelectorAll('.agent-row[data-agent-id=scout]').length)`); n != "0" {
			t.Fatal("globex's console shows acme's agent")
		}
		p.run(chromedp.Click(chromedp.CSS("#signout")))
		p.waitJS(`location.pathname === '/signin'`, "signed out")
	})

	t.Run("a project-bound token fixes the project", func(t *testing.T) {
		p := b.page(t, c)
		p.goTo("/agents")
		p.signIn(bound, "/agents")
		p.waitJS(`document.querySelector('#scope-text').textContent === 'acme / alice / apollo' && document.querySelector('.agent-row[data-agent-id=main]') && !document.querySelector('.agent-row[data-agent-id=scout]')`, "the apollo project's agents")
		p.run(chromedp.Click(chromedp.CSS("#scope-button")))
		p.waitJS(`!document.querySelector('#scope-panel').hidden`, "the scope panel")
		if got := p.str(`[...document.querySelectorAll('#scope-panel input')].map(i => i.value + (i.readOnly ? ':fixed' : ':free')).join(' ') + (document.querySelector('#scope-panel button[type=submit]').hidden ? ' no-submit' : ' submit')`); got != "acme:fixed alice:fixed apollo:fixed no-submit" {
			t.Fatalf("scope picker of a bound token: %s", got)
		}
		p.run(chromedp.Click(chromedp.CSS("#scope-cancel")), chromedp.Click(chromedp.CSS("#signout")))
		p.waitJS(`location.pathname === '/signin'`, "signed out")
	})

	t.Run("a viewer sees the agents and is told it may not write", func(t *testing.T) {
		p := b.page(t, c)
		p.goTo("/agents")
		p.signIn(viewer, "/agents")
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=scout]') && document.querySelector('#who-text').textContent === 'alice dashboard · viewer'`, "the viewer's agents")
		// Controls it may not use are hidden or disabled...
		if got := p.str(`String(document.querySelector('#agent-new').hidden)`); got != "true" {
			t.Fatal("a viewer is offered New agent")
		}
		// ...and the server's refusal of the others is shown in words.
		messages := func() int {
			var list struct {
				Total int `json:"total"`
			}
			if code := c.bearerCall(t, admin, "GET", "/api/agents/scout/messages", nil, &list); code != http.StatusOK {
				t.Fatalf("list scout's messages: %d", code)
			}
			return list.Total
		}
		before := messages()
		row := `.agent-row[data-agent-id=scout]`
		p.run(chromedp.Click(chromedp.CSS(row+" .agent-message-toggle")),
			chromedp.SendKeys(chromedp.CSS(row+" textarea"), "a viewer may not send this"),
			chromedp.Click(chromedp.CSS(row+" .agent-message button[type=submit]")))
		p.waitJS(`document.querySelector('`+row+` .agent-message .error-box .error-title')?.textContent === 'Not allowed' && document.querySelector('`+row+` .agent-message .error-box').textContent.includes('member role')`, "the refusal in words")
		p.screenshot("signin-viewer-refused")
		if after := messages(); after != before {
			t.Fatalf("the viewer's message was stored: scout has %d messages, had %d", after, before)
		}
		p.goTo("/")
		p.waitJS(`document.querySelector('#chat-agent option[value=scout]') && document.querySelector('#chat-input').disabled && document.querySelector('#chat-send').disabled`, "a read-only chat")
		p.run(chromedp.Click(chromedp.CSS("#signout")))
		p.waitJS(`location.pathname === '/signin'`, "signed out")
	})

	t.Run("a session whose token is revoked goes back to sign in", func(t *testing.T) {
		id, temp := issueTokenID(t, d.Store, acme, auth.RoleMember, "alice temp")
		p := b.page(t, c)
		p.goTo("/agents")
		p.signIn(temp, "/agents")
		p.waitJS(`document.querySelector('.agent-row[data-agent-id=scout]')`, "the agents page")
		if code := c.bearerCall(t, admin, "DELETE", "/api/tokens/"+id, nil, nil); code != http.StatusOK {
			t.Fatalf("revoke: %d", code)
		}
		// The page's next refresh of the agents is refused (401).
		p.waitJS(`location.pathname === '/signin' && new URLSearchParams(location.search).get('next') === '/agents' && document.querySelector('#signin-token')`, "the sign-in page after the revoke")
	})

	t.Logf("sign-in browser tests took %s", time.Since(start).Round(time.Millisecond))
}
