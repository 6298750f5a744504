package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openintern/openintern/store"
)

// waitingApproval makes a run of agentID (no agent row, so no actor works
// on it) wait for an approval, through the store, and returns its id.
func (h *harness) waitingApproval(scope store.Scope, agentID string, expires time.Time) store.Approval {
	h.t.Helper()
	ctx := context.Background()
	if _, err := h.store.EnqueueMessages(ctx, []store.NewMessage{{Scope: scope, ID: "msg_" + agentID + time.Now().Format("150405.000000"),
		AgentID: agentID, SessionKey: "s", SenderType: store.SenderUser, SenderID: scope.UserID, Content: "go"}}); err != nil {
		h.t.Fatal(err)
	}
	c, err := h.store.ClaimNextRun(ctx, scope, agentID, "run_"+agentID+"-"+time.Now().Format("150405.000000"))
	if err != nil {
		h.t.Fatal(err)
	}
	key := c.Run.ID + "/1/0/call_1"
	a, _, err := h.store.(store.ApprovalStore).WaitForApproval(ctx, scope, store.Approval{
		ID: "appr_" + agentID + "_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""), RunID: c.Run.ID, Step: 1, CallID: "call_1", CallKey: key,
		Tool: "shell", Arguments: `{"cmd":"<b>rm</b> -rf /"}`, ArgsHash: "h", Reason: "shell asks", ExpiresAt: expires,
	}, nil, []store.Event{{Type: "tool.requires_approval", Payload: json.RawMessage(`{"call_id":"call_1"}`)}})
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

type recordingRules struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingRules) AllowAlways(_ context.Context, scope store.Scope, tool, agentID, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, scope.OrgID+"/"+tool+"/"+agentID+"/"+by)
	return nil
}

func TestApprovalsAPI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testApprovalsAPI(t, kind) })
	}
}

func testApprovalsAPI(t *testing.T, kind string) {
	rules := &recordingRules{}
	h := newHarness(t, kind, func(d *Deps) { d.Rules = rules })
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	a := h.waitingApproval(o1, "w1", time.Now().Add(time.Hour))

	list := h.must(http.StatusOK, request{method: "GET", path: "/api/approvals?status=pending"}).json(t)
	items := list["approvals"].([]any)
	if len(items) != 1 || list["total"].(float64) != 1 {
		t.Fatalf("pending = %v", list)
	}
	first := items[0].(map[string]any)
	if first["approval_id"] != a.ID || first["tool"] != "shell" || first["arguments"].(map[string]any)["cmd"] != "<b>rm</b> -rf /" || first["status"] != "pending" {
		t.Fatalf("item = %v", first)
	}
	h.must(http.StatusOK, request{method: "GET", path: "/api/approvals/" + a.ID})
	// Bad input and other tenants.
	h.wantError(http.StatusBadRequest, "invalid_status", request{method: "GET", path: "/api/approvals?status=maybe"})
	h.wantError(http.StatusNotFound, "not_found", request{method: "GET", path: "/api/approvals/" + a.ID, header: map[string]string{"x-org-id": "o2"}})
	h.wantError(http.StatusNotFound, "not_found", request{method: "GET", path: "/api/approvals/..%2f"})
	h.wantError(http.StatusNotFound, "not_found", request{method: "POST", path: "/api/approvals/" + a.ID + "/resolve", body: `{"decision":"approve"}`, header: map[string]string{"x-org-id": "o2"}})
	h.wantError(http.StatusBadRequest, "invalid_decision", request{method: "POST", path: "/api/approvals/" + a.ID + "/resolve", body: `{"decision":"yes"}`})
	h.wantError(http.StatusBadRequest, "invalid_decision", request{method: "POST", path: "/api/approvals/" + a.ID + "/resolve", body: `{"decision":"deny","always":true}`})
	h.wantError(http.StatusBadRequest, "", request{method: "POST", path: "/api/approvals/" + a.ID + "/resolve", body: `{"decision":"approve","reason":"a\u0000b"}`})
	other := h.must(http.StatusOK, request{method: "GET", path: "/api/approvals", header: map[string]string{"x-org-id": "o2"}}).json(t)
	if other["total"].(float64) != 0 {
		t.Fatalf("another org lists %v", other)
	}

	// Two concurrent resolves: one 200, one 409.
	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i, d := range []string{"approve", "deny"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = h.do(request{method: "POST", path: "/api/approvals/" + a.ID + "/resolve", body: `{"decision":"` + d + `","reason":"ok"}`}).status
		}()
	}
	wg.Wait()
	if !(statuses[0] == 200 && statuses[1] == 409 || statuses[0] == 409 && statuses[1] == 200) {
		t.Fatalf("concurrent resolves = %v, want one 200 and one 409", statuses)
	}
	got := h.must(http.StatusOK, request{method: "GET", path: "/api/approvals/" + a.ID}).json(t)
	if got["decided_by"] != "user:u1" || got["decision_reason"] != "ok" {
		t.Fatalf("decided = %v", got)
	}
	run, err := h.store.GetRun(context.Background(), o1, a.RunID)
	if err != nil || run.Status == store.RunWaitingApproval {
		t.Fatalf("run after resolve = %+v, %v", run.Status, err)
	}

	// Expired: 409, and it is expired.
	e := h.waitingApproval(o1, "w2", time.Now().Add(-time.Second))
	h.wantError(http.StatusConflict, "approval_expired", request{method: "POST", path: "/api/approvals/" + e.ID + "/resolve", body: `{"decision":"approve"}`})
	if got := h.must(http.StatusOK, request{method: "GET", path: "/api/approvals/" + e.ID}).json(t); got["status"] != "expired" {
		t.Fatalf("expired one = %v", got)
	}

	// Approve always writes the rule, then approves.
	w := h.waitingApproval(o1, "w3", time.Now().Add(time.Hour))
	h.must(http.StatusOK, request{method: "POST", path: "/api/approvals/" + w.ID + "/resolve", body: `{"decision":"approve","always":true}`})
	if len(rules.calls) != 1 || rules.calls[0] != "o1/shell/w3/user:u1" {
		t.Fatalf("rules written: %v", rules.calls)
	}
}

// "Approve always" is an admin's, and needs a policy engine.
func TestApproveAlwaysRefusals(t *testing.T) {
	h := newHarness(t, "sqlite", withAuth)
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	_, member := h.issue(o1, "member", nil)
	_, admin := h.issue(o1, "admin", nil)
	a := h.waitingApproval(o1, "w1", time.Now().Add(time.Hour))
	path := "/api/approvals/" + a.ID + "/resolve"
	h.wantError(http.StatusForbidden, "forbidden", request{method: "POST", path: path, body: `{"decision":"approve","always":true}`, header: bearer(member)})
	h.wantError(http.StatusNotImplemented, "policy_unavailable", request{method: "POST", path: path, body: `{"decision":"approve","always":true}`, header: bearer(admin)})
	h.must(http.StatusOK, request{method: "POST", path: path, body: `{"decision":"approve"}`, header: bearer(member)})
}

// The approvals stream carries a new approval as it is stored.
func TestApprovalsStream(t *testing.T) {
	h := newHarness(t, "sqlite")
	o1 := store.Scope{OrgID: "o1", UserID: "u1"}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/approvals/stream?from=now", nil)
	req.Header.Set("x-org-id", "o1")
	req.Header.Set("x-user-id", "u1")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	a := h.waitingApproval(o1, "w1", time.Now().Add(time.Hour))
	// The store does not publish: the runtime's path does. Resolving goes
	// through it and publishes approval.resolved; the stream's heartbeat
	// read catches the stored tool.requires_approval too.
	h.must(http.StatusOK, request{method: "POST", path: "/api/approvals/" + a.ID + "/resolve", body: `{"decision":"deny"}`})
	r := bufio.NewReader(resp.Body)
	seen := map[string]bool{}
	for !seen["tool.requires_approval"] || !seen["approval.resolved"] {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v (seen %v)", err, seen)
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			var e store.Event
			if json.Unmarshal([]byte(data), &e) == nil && e.Type != "" {
				seen[e.Type] = true
			}
		}
	}
}
