package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// The cluster harness runs real daemon processes (`openintern serve`) over
// one PostgreSQL schema and one Redis database, as issue 16's acceptance
// asks: each node has its own data directory, port and OPENINTERN_NODE_ID,
// and all of them ask one wire-format model in the test process, which knows
// every call's node (its API key) and step, so the tests can tell which node
// did what and whether a step's model call was ever made again.

// clusterLeaseTTL is the lease TTL the nodes run with: short, so failover is
// quick, and long enough that a loaded 2-core machine renews in time.
const clusterLeaseTTL = 3 * time.Second

// clusterOpts tunes a cluster.
type clusterOpts struct {
	nodes int
	env   []string // added to every node's environment
}

// cluster is the daemons of one test.
type cluster struct {
	tb       testing.TB
	dbURL    string
	redisURL string
	model    *clusterModel
	scope    store.Scope
	env      []string
	nodes    []*clusterNode
	// thawed, when set, names the calls checkExactlyOnce lets a frozen
	// node make after a step's stored answer (see TestClusterPausePastLease).
	thawed func(clusterCall) bool
}

// clusterNode is one daemon of the cluster, across its restarts.
type clusterNode struct {
	c    *cluster
	id   string // OPENINTERN_NODE_ID
	port int
	url  string
	data string

	mu     sync.Mutex
	gen    int // how many times it was started, less one
	proc   *process
	paused bool
}

// newCluster starts o.nodes daemons (n1, n2, ...) and waits until each is
// ready.
func newCluster(tb testing.TB, o clusterOpts) *cluster {
	tb.Helper()
	c := &cluster{
		tb:       tb,
		dbURL:    testenv.PostgresURL(tb),
		redisURL: clusterRedisURL(tb),
		model:    newClusterModel(tb),
		scope:    store.Scope{OrgID: "cluster", UserID: "u1"},
	}
	c.env = append([]string{
		"DATABASE_URL=" + c.dbURL,
		"REDIS_URL=" + c.redisURL,
		"LLM_PROVIDER=", "LLM_MODEL=",
		"LLM_BASE_URL=" + c.model.srv.URL(),
		"OPENINTERN_LEASE_TTL=" + clusterLeaseTTL.String(),
		"OPENINTERN_MEMORY_RECALL=off",
		"OPENINTERN_MAX_STREAMS_PER_SCOPE=1000",
		"LOG_LEVEL=warn",
		"AUTH=off",
		"OPENINTERN_URL=", "OPENINTERN_TOKEN=",
	}, o.env...)
	for i := range o.nodes {
		port := testenv.FreePort(tb)
		n := &clusterNode{
			c:    c,
			id:   fmt.Sprintf("n%d", i+1),
			port: port,
			url:  fmt.Sprintf("http://127.0.0.1:%d", port),
			data: tb.TempDir(),
			gen:  -1,
		}
		c.nodes = append(c.nodes, n)
	}
	// The first node migrates the schema alone; the others then start together.
	c.nodes[0].start()
	var wg sync.WaitGroup
	for _, n := range c.nodes[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); n.start() }()
	}
	wg.Wait()
	for _, n := range c.nodes {
		n.waitReady(60 * time.Second)
	}
	return c
}

// clusterRedisURL is the test Redis with a database of its own: the daemons
// use the fixed key prefix "openintern:", and another test's dispatchers
// must not claim this cluster's controls. The database's "openintern:" keys
// are removed before and after.
func clusterRedisURL(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(testenv.RedisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = fmt.Sprintf("/%d", 9+rand.IntN(7)) // 9..15: databases the other tests leave alone
	clean := func() {
		opts, err := redis.ParseURL(u.String())
		if err != nil {
			tb.Fatal(err)
		}
		client := redis.NewClient(opts)
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, "openintern:*", 500).Iterator()
		for iter.Next(ctx) {
			_ = client.Unlink(ctx, iter.Val()).Err()
		}
	}
	clean()
	tb.Cleanup(clean)
	return u.String()
}

func (n *clusterNode) process() *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// start runs the node's next generation on its port.
func (n *clusterNode) start() {
	tb := n.c.tb
	tb.Helper()
	n.mu.Lock()
	n.gen++
	gen := n.gen
	n.mu.Unlock()
	env := append(slices.Clip(n.c.env),
		"OPENINTERN_NODE_ID="+n.id,
		"OPENINTERN_ADVERTISE_ADDR="+n.url,
		fmt.Sprintf("LLM_API_KEY=%s.%d", n.id, gen),
		"DATA_DIR="+n.data,
		fmt.Sprintf("PORT=%d", n.port),
	)
	p := spawnDaemon(tb, env, "serve", "--port", fmt.Sprint(n.port))
	if p.url != n.url {
		tb.Fatalf("node %s serves on %s, want %s", n.id, p.url, n.url)
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
}

// alive: the node's process has not exited and is not paused.
func (n *clusterNode) alive() bool {
	n.mu.Lock()
	p, paused := n.proc, n.paused
	n.mu.Unlock()
	if p == nil || paused {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitReady waits until /readyz answers 200.
func (n *clusterNode) waitReady(timeout time.Duration) {
	tb := n.c.tb
	tb.Helper()
	clusterWait(tb, timeout, "node "+n.id+" to be ready", func() bool {
		return n.readyz() == http.StatusOK
	})
}

// readyz is /readyz's status (0 when the node does not answer).
func (n *clusterNode) readyz() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// kill9 kills the node at once (SIGKILL) and waits for its exit.
func (n *clusterNode) kill9() time.Time {
	p := n.process()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return time.Now()
}

// pause stops the node (SIGSTOP): it keeps its sockets but runs nothing, as
// a node in a long GC pause or a frozen VM would.
func (n *clusterNode) pause() time.Time {
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	_ = n.process().cmd.Process.Signal(syscall.SIGSTOP)
	return time.Now()
}

// resume lets a paused node run again (SIGCONT).
func (n *clusterNode) resume() {
	_ = n.process().cmd.Process.Signal(syscall.SIGCONT)
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
}

// term sends SIGTERM and waits for a clean exit (code 0) within timeout.
func (n *clusterNode) term(timeout time.Duration) {
	tb := n.c.tb
	tb.Helper()
	p := n.process()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("node %s did not exit within %s of SIGTERM", n.id, timeout)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		tb.Fatalf("node %s exited with code %d after SIGTERM", n.id, code)
	}
}

// restart starts the node again after it exited, and waits until it is ready.
func (n *clusterNode) restart() {
	n.c.tb.Helper()
	n.start()
	n.waitReady(60 * time.Second)
}

// spawnDaemon runs the binary with args and env (on top of this process's)
// until the test ends, and returns once it printed the URL it serves on.
func spawnDaemon(tb testing.TB, env []string, args ...string) *process {
	tb.Helper()
	cmd := exec.Command(daemonBinary(tb), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = tb.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	cmd.Stderr = lockedWriter{p.mu, p.logs}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "OpenIntern is serving on "); ok {
				urlCh <- strings.TrimSpace(rest)
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill() // also ends a stopped process
		<-p.done
		if tb.Failed() {
			p.mu.Lock()
			logs := p.logs.String()
			p.mu.Unlock()
			if len(logs) > 20000 {
				logs = "…" + logs[len(logs)-20000:]
			}
			tb.Logf("daemon %v log:\n%s", envValue(env, "OPENINTERN_NODE_ID"), logs)
		}
	})
	select {
	case p.url = <-urlCh:
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		tb.Fatalf("daemon exited at start: %s", p.logs.String())
	case <-time.After(60 * time.Second):
		tb.Fatal("daemon did not start in 60s")
	}
	return p
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// live returns the nodes whose process runs.
func (c *cluster) live() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.alive() {
			out = append(out, n)
		}
	}
	return out
}

// node returns the node with id.
func (c *cluster) node(id string) *clusterNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.tb.Fatalf("no node %q", id)
	return nil
}

// do sends a request as the cluster's scope to node n and decodes a JSON
// answer into out when the status is want; another status fails the test.
func (c *cluster) do(n *clusterNode, want int, method, path, body string, out any) {
	c.tb.Helper()
	status, raw := rawRequest(n.url, c.scope, method, path, body)
	if status != want {
		c.tb.Fatalf("%s %s on %s: %d, want %d: %s", method, path, n.id, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.tb.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// createAgents creates agents ids on node n.
func (c *cluster) createAgents(n *clusterNode, ids []string) {
	c.tb.Helper()
	for _, id := range ids {
		c.do(n, http.StatusCreated, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":%q,"name":%q}`, id, id), nil)
	}
}

// send posts a message to agentID on node n and returns its id, or "" with
// the status when the node did not accept it.
func (c *cluster) send(n *clusterNode, agentID, content string) (string, int) {
	status, raw := rawRequest(n.url, c.scope, "POST", "/api/agents/"+agentID+"/messages",
		fmt.Sprintf(`{"content":%q,"session_key":"s"}`, content))
	if status != http.StatusAccepted {
		return "", status
	}
	var r struct {
		MessageID string `json:"message_id"`
	}
	_ = json.Unmarshal(raw, &r)
	return r.MessageID, status
}

// clusterView is GET /api/cluster: the nodes, and the scope's leases.
type clusterView struct {
	NodeID string        `json:"node_id"`
	Nodes  []store.Node  `json:"nodes"`
	Leases []store.Lease `json:"leases"`
}

// view reads /api/cluster on node n.
func (c *cluster) view(n *clusterNode) clusterView {
	c.tb.Helper()
	var v clusterView
	c.do(n, http.StatusOK, "GET", "/api/cluster", "", &v)
	return v
}

// owners maps each agent (or group, with kind) that has a live lease to its
// node, as node n sees it.
func (c *cluster) owners(n *clusterNode, kind string) map[string]string {
	c.tb.Helper()
	out := map[string]string{}
	for _, l := range c.view(n).Leases {
		if l.Kind == kind {
			out[l.Key] = l.NodeID
		}
	}
	return out
}

// busy says, through node n, what is still to do in the scope: a pending,
// running or waiting run, or an agent's unread messages ("" when nothing).
func (c *cluster) busy(n *clusterNode, agents int) string {
	for _, status := range []string{store.RunRunning, store.RunPending, store.RunWaitingApproval} {
		var runs struct {
			Runs  []store.Run `json:"runs"`
			Total int         `json:"total"`
		}
		code, body := rawRequest(n.url, c.scope, "GET", "/api/runs?limit=1&status="+status, "")
		if code != http.StatusOK || json.Unmarshal(body, &runs) != nil {
			return fmt.Sprintf("runs %s on %s: %d %s", status, n.id, code, body)
		}
		if runs.Total != 0 || len(runs.Runs) != 0 {
			// The count and the page are two reads: a run may change status
			// between them.
			return fmt.Sprintf("%d runs %s, e.g. %+v", runs.Total, status, runs.Runs)
		}
	}
	var list struct {
		Agents []store.Agent `json:"agents"`
	}
	code, body := rawRequest(n.url, c.scope, "GET", "/api/agents?limit=200", "")
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Agents) < agents {
		return fmt.Sprintf("agents on %s: %d %.200s", n.id, code, body)
	}
	unread := 0
	for _, a := range list.Agents {
		unread += a.Unread
	}
	if unread > 0 {
		return fmt.Sprintf("%d unread messages", unread)
	}
	return ""
}

// waitIdle waits until every message was worked off, asking any live node.
func (c *cluster) waitIdle(agents int, timeout time.Duration) {
	c.tb.Helper()
	last := ""
	deadline := time.Now().Add(timeout)
	for {
		if live := c.live(); len(live) > 0 {
			if last = c.busy(live[rand.IntN(len(live))], agents); last == "" {
				return
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("not worked off after %s: %s", timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openStore opens the cluster's database for the checks, as a daemon would.
func (c *cluster) openStore() store.Store {
	c.tb.Helper()
	st, _, err := daemon.OpenStore(context.Background(), c.dbURL, "", testLogger(c.tb))
	if err != nil {
		c.tb.Fatal(err)
	}
	c.tb.Cleanup(func() { _ = st.Close() })
	return st
}

// clusterWait polls cond every 100 ms until it holds or timeout passes.
func clusterWait(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterCall is one call of the model.
type clusterCall struct {
	node   string // the caller's node and generation, "n2.0"
	serial int    // 1, 2, ... over the test; the answer carries it
	at     time.Time
}

func (c clusterCall) String() string {
	return fmt.Sprintf("%s#%d@%s", c.node, c.serial, c.at.Format("15:04:05.000"))
}

// clusterModel is the wire-format model of the cluster. A run is known by
// its input (the tests make every input unique) and a step by the number of
// assistant messages since it, so calls[input#step] are the calls made for
// one step of one run, from whichever node. By default a run has two steps:
// a read_file call (id "call_<serial>"), then the text "ok <serial>"; the
// stored trace thus tells which call's answer was kept.
type clusterModel struct {
	srv *llmtest.Server

	mu    sync.Mutex
	calls map[string][]clusterCall
	total int
	// hook, when set, may answer a call instead of the default (ok false:
	// the default answers). It runs outside the lock and may block.
	hook func(req llmtest.ChatRequest, key string, call clusterCall) (llmtest.Reply, bool)
}

func newClusterModel(tb testing.TB) *clusterModel {
	m := &clusterModel{calls: map[string][]clusterCall{}}
	m.srv = llmtest.NewServer(tb, llmtest.WithDefault(m.answer))
	return m
}

func (m *clusterModel) setHook(h func(req llmtest.ChatRequest, key string, call clusterCall) (llmtest.Reply, bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = h
}

func (m *clusterModel) answer(req llmtest.ChatRequest) llmtest.Reply {
	input, step := req.LastUserMessage(), stepOf(req)
	key := fmt.Sprintf("%s#%d", input, step)
	m.mu.Lock()
	m.total++
	call := clusterCall{node: strings.TrimPrefix(req.Authorization, "Bearer "), serial: m.total, at: time.Now()}
	m.calls[key] = append(m.calls[key], call)
	hook := m.hook
	m.mu.Unlock()
	if hook != nil {
		if r, ok := hook(req, key, call); ok {
			return r
		}
	}
	if step == 1 {
		return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: fmt.Sprintf("call_%d", call.serial), Name: "read_file",
			Arguments: fmt.Sprintf(`{"path":"cluster-%d.txt"}`, call.serial)}}}
	}
	return llmtest.Reply{Text: fmt.Sprintf("ok %d", call.serial)}
}

// snapshot copies the calls made so far.
func (m *clusterModel) snapshot() (map[string][]clusterCall, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]clusterCall, len(m.calls))
	for k, v := range m.calls {
		out[k] = slices.Clone(v)
	}
	return out, m.total
}

// callsOf returns the calls made for key.
func (m *clusterModel) callsOf(key string) []clusterCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls[key])
}

// serialOfAnswer reads the serial an answer of the model carries back from
// its stored llm.called event (0 when it carries none).
func serialOfAnswer(payload json.RawMessage) int {
	var answer struct {
		Content   string         `json:"content"`
		ToolCalls []llm.ToolCall `json:"tool_calls"`
	}
	_ = json.Unmarshal(payload, &answer)
	var serial int
	if len(answer.ToolCalls) > 0 {
		_, _ = fmt.Sscanf(answer.ToolCalls[0].ID, "call_%d", &serial)
	} else {
		_, _ = fmt.Sscanf(answer.Content, "ok %d", &serial)
	}
	return serial
}

// clusterCheck is what checkExactlyOnce found.
type clusterCheck struct {
	runs     map[string]store.Run
	messages int
	repeats  int // model calls made again for a step whose answer was not stored
	calls    int
	thawed   int // calls cluster.thawed let pass
}

// checkExactlyOnce checks the store and the model's log after the cluster
// worked everything off: every run completed; every message read, in a
// completed run whose input holds it, and the input of exactly one run; no
// event of a step stored twice (a stale node's write would be a second
// copy); and no model call made for a step after its answer was stored
// (the stored answer is the step's last call).
func (c *cluster) checkExactlyOnce(st store.Store, agents []string) clusterCheck {
	tb := c.tb
	tb.Helper()
	ctx := context.Background()
	res := clusterCheck{runs: map[string]store.Run{}}
	inputs := map[string]int{}
	for off := 0; ; off += 1000 {
		page, n, err := st.ListRuns(ctx, c.scope, store.RunFilter{}, store.Page{Offset: off, Limit: 1000})
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range page {
			if r.Status != store.RunCompleted {
				tb.Errorf("run %s of %s is %s (%+v)", r.ID, r.AgentID, r.Status, r.Error)
			}
			res.runs[r.ID] = r
			if r.AgentID != "" && r.GroupID == "" {
				for _, part := range strings.Split(r.Input, "\n\n") {
					inputs[part]++
				}
			}
		}
		if off+1000 >= n {
			break
		}
	}
	for _, agent := range agents {
		for off := 0; ; off += 1000 {
			page, n, err := st.ListMessages(ctx, c.scope, agent, "", store.Page{Offset: off, Limit: 1000})
			if err != nil {
				tb.Fatal(err)
			}
			for _, m := range page {
				res.messages++
				if m.Status != store.MessageRead || res.runs[m.RunID].ID == "" {
					tb.Errorf("message %s of %s: status %s, run %q", m.ID, agent, m.Status, m.RunID)
				}
				if inputs[m.Content] != 1 {
					tb.Errorf("message %q is the input of %d runs", m.Content, inputs[m.Content])
				}
			}
			if off+1000 >= n {
				break
			}
		}
	}

	stored := map[string]int{}
	kept := map[string]int{} // input#step -> serial of the call whose answer is stored
	for after := int64(0); ; {
		page, _, err := st.ListEvents(ctx, c.scope, store.EventFilter{AfterID: after, Limit: 1000, NoTotal: true,
			Types: []string{"run.started", "step.started", "llm.called", "tool.called", "tool.result", "step.completed", "run.completed", "run.failed"}})
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			var pl struct {
				CallID string `json:"call_id"`
			}
			_ = json.Unmarshal(e.Payload, &pl)
			key := e.RunID + " " + e.StepID + " " + e.Type + " " + pl.CallID
			if stored[key]++; stored[key] == 2 {
				tb.Errorf("event stored twice (a stale write accepted?): %s", key)
			}
			if e.Type == "llm.called" {
				k := res.runs[e.RunID].Input + "#" + strings.TrimPrefix(e.StepID, "step_")
				if kept[k] == 0 {
					kept[k] = serialOfAnswer(e.Payload)
				}
			}
			after = e.ID
		}
	}
	calls, total := c.model.snapshot()
	res.calls = total
	for key, made := range calls {
		res.repeats += len(made) - 1
		last := made
		for c.thawed != nil && len(last) > 1 && c.thawed(last[len(last)-1]) {
			res.thawed++
			last = last[:len(last)-1]
		}
		if serial, ok := kept[key]; ok && serial != last[len(last)-1].serial {
			tb.Errorf("model asked again for %q after the answer of call %d was stored: %v", key, serial, made)
		}
	}
	if len(kept) == 0 {
		tb.Error("no stored model answer found")
	}
	return res
}
