package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
)

// `openintern cluster` prints the nodes and the scope's leases; a daemon
// on PostgreSQL stopped with SIGTERM drains, exits 0 and leaves the cluster
// at once (its node row and leases gone, not left to age).
func TestCLIClusterAndSIGTERMDrain(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	p := startProcess(t, []string{"DATABASE_URL=" + dbURL, "DATA_DIR=" + t.TempDir(), "OPENINTERN_NODE_ID=ops-n1",
		"OPENINTERN_LEASE_TTL=3s", "OPENINTERN_ADVERTISE_ADDR=http://ops-n1.internal:3000", "REDIS_URL=", "AUTH=off", "LLM_PROVIDER=offline"})
	env := append(os.Environ(), "NO_COLOR=1", "OPENINTERN_URL="+p.url, "AGENT_ORG_ID=o1", "AGENT_USER_ID=u1", "AGENT_PROJECT_ID=", "OPENINTERN_TOKEN=")

	// An agent that ran holds a lease on this node.
	if res := runCLI(t, env, "run", "--wait", "hello"); res.code != 0 {
		t.Fatalf("run: exit %d: %s %s", res.code, res.stdout, res.stderr)
	}
	res := runCLI(t, env, "cluster", "--json")
	var st httpapi.ClusterStatus
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &st) != nil {
		t.Fatalf("cluster --json: exit %d: %s %s", res.code, res.stdout, res.stderr)
	}
	if st.NodeID != "ops-n1" || len(st.Nodes) != 1 || st.Nodes[0].Addr != "http://ops-n1.internal:3000" || !st.Nodes[0].Live {
		t.Fatalf("cluster: %+v", st)
	}
	res = runCLI(t, env, "cluster")
	for _, want := range []string{"NODE", "ops-n1 *", "http://ops-n1.internal:3000", "live", "KIND"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("cluster does not show %q:\n%s", want, res.stdout)
		}
	}
	if len(st.Leases) > 0 && !strings.Contains(res.stdout, "agent") {
		t.Errorf("a lease is not shown:\n%s", res.stdout)
	}
	if res := runCLI(t, env, "cluster", "extra"); res.code == 0 {
		t.Fatal("cluster takes no arguments")
	}

	// The probe of images without a shell.
	if res := runCLI(t, env, "health", "--url", p.url); res.code != 0 || strings.TrimSpace(res.stdout) != "ok" {
		t.Fatalf("health: exit %d: %s %s", res.code, res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "health", "--live"); res.code != 0 {
		t.Fatalf("health --live (OPENINTERN_URL): exit %d: %s", res.code, res.stderr)
	}
	if res := runCLI(t, env, "health", "--url", "http://127.0.0.1:1"); res.code != 1 || !strings.Contains(res.stderr, "health:") {
		t.Fatalf("health of nothing: exit %d: %s", res.code, res.stderr)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("no exit 60 s after SIGTERM")
	}
	p.mu.Lock()
	logs := p.logs.String()
	p.mu.Unlock()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(logs, "node=ops-n1") || !strings.Contains(logs, "draining") || !strings.Contains(logs, "stopped cleanly") {
		t.Fatalf("exit %d, log:\n%s", code, logs)
	}
	pg, err := postgres.Open(context.Background(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pg.Close() }()
	nodes, err := pg.ListNodes(t.Context(), time.Hour)
	if err != nil || len(nodes) != 0 {
		t.Fatalf("after a clean exit the store lists %+v (%v)", nodes, err)
	}
	leases, err := pg.ListScopeLeases(t.Context(), store.Scope{OrgID: "o1", UserID: "u1"})
	if err != nil || len(leases) != 0 {
		t.Fatalf("after a clean exit the scope has live leases %+v (%v)", leases, err)
	}
	if resp, err := http.Get(p.url + "/healthz"); err == nil {
		_ = resp.Body.Close()
		t.Fatal("still serving after exit")
	}
}
