package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// Issue 16's acceptance: three daemon processes on 127.0.0.1 ports over one
// PostgreSQL database and one Redis (see cluster_harness_test.go).

// failoverBound is how soon after a dead node's lease expires its work must
// run elsewhere.
const failoverBound = 10 * time.Second

// streamClient is a Server-Sent Events client that keeps one stream open,
// on whichever live node answers, reconnecting with Last-Event-ID.
type streamClient struct {
	c    *cluster
	path string

	mu         sync.Mutex
	ids        []int64 // every stored event's id received, in order
	events     []store.Event
	dups       int // ids received again, or out of order
	reconnects int
}

// sseHTTP has no overall timeout (streams are long) but dials quickly.
var sseHTTP = &http.Client{Transport: &http.Transport{
	DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	ResponseHeaderTimeout: 10 * time.Second,
	MaxIdleConnsPerHost:   200,
}}

// openStream opens path on node n after lastID.
func (c *cluster) openStream(ctx context.Context, n *clusterNode, path string, lastID int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", n.url+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-org-id", c.scope.OrgID)
	req.Header.Set("x-user-id", c.scope.UserID)
	if lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	resp, err := sseHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("stream %s on %s: status %d", path, n.id, resp.StatusCode)
	}
	return resp, nil
}

// follow reads the stream until ctx ends, reconnecting to a random live node
// whenever the stream breaks.
func (s *streamClient) follow(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		live := s.c.live()
		if len(live) == 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		n := live[rand.IntN(len(live))]
		s.mu.Lock()
		var last int64
		if len(s.ids) > 0 {
			last = s.ids[len(s.ids)-1]
		}
		if !first {
			s.reconnects++
		}
		s.mu.Unlock()
		first = false
		resp, err := s.c.openStream(ctx, n, s.path, last)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.read(resp)
		resp.Body.Close()
	}
}

// read takes the stored events (those with an id) off one connection.
func (s *streamClient) read(resp *http.Response) {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if id != "" && data != "" {
				s.add(id, data)
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func (s *streamClient) add(id, data string) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return
	}
	var e store.Event
	if json.Unmarshal([]byte(data), &e) != nil || e.ID != n {
		return // the ready event of ?from=now has no event behind it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) > 0 && n <= s.ids[len(s.ids)-1] {
		s.dups++
		return
	}
	s.ids = append(s.ids, n)
	s.events = append(s.events, e)
}

func (s *streamClient) lastID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return 0
	}
	return s.ids[len(s.ids)-1]
}

// storedIDs lists the ids of the stored events of filter after afterID.
func storedIDs(tb testing.TB, st store.Store, scope store.Scope, f store.EventFilter, afterID int64) []int64 {
	tb.Helper()
	var out []int64
	for {
		f.AfterID, f.Limit, f.NoTotal = afterID, 1000, true
		page, _, err := st.ListEvents(context.Background(), scope, f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range page {
			out = append(out, e.ID)
			afterID = e.ID
		}
		if len(page) < 1000 {
			return out
		}
	}
}

// agentOfInput is the agent a test message was for: every test message
// starts with its agent's id.
func agentOfInput(key string) string {
	agent, _, _ := strings.Cut(key, " ")
	return agent
}

// nodeOfKey is the node id of a call's key ("n2.1" -> "n2").
func nodeOfKey(key string) string {
	id, _, _ := strings.Cut(key, ".")
	return id
}

func agentIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// TestClusterStreamFromAnyNode: a message injected on node 1 for an agent
// owned by another node runs on that owner, and a stream opened on node 3
// shows every event of it, as the store has them.
func TestClusterStreamFromAnyNode(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	n1, n3 := c.nodes[0], c.nodes[2]
	agents := agentIDs("s", 6)
	c.createAgents(n1, agents)
	// Each agent's first message goes through a different node; wherever it
	// runs, its agent is then owned there.
	for i, a := range agents {
		if id, status := c.send(c.nodes[i%3], a, a+" warm"); id == "" {
			t.Fatalf("warm-up message: %d", status)
		}
	}
	c.waitIdle(len(agents), 60*time.Second)
	owners := c.owners(n1, store.LeaseAgent)
	for _, a := range agents {
		// The warm-up ran on the node that owns the agent now.
		calls := c.model.callsOf(a + " warm#1")
		if len(calls) != 1 || owners[a] == "" || nodeOfKey(calls[0].node) != owners[a] {
			t.Fatalf("agent %s: warm-up calls %v, owner %q (leases %v)", a, calls, owners[a], owners)
		}
	}
	// An agent owned neither by node 1 (where the message goes in) nor,
	// if possible, by node 3 (where it is watched).
	target := ""
	for _, a := range agents {
		if o := owners[a]; o != n1.id && (target == "" || o != n3.id) {
			target = a
		}
	}
	if target == "" {
		t.Fatalf("every agent is owned by %s: the leases do not spread (%v)", n1.id, owners)
	}
	owner := owners[target]
	t.Logf("agent %s is owned by %s; injected on %s, streamed from %s", target, owner, n1.id, n3.id)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	resp, err := c.openStream(ctx, n3, "/api/agents/"+target+"/stream?from=now", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The ready event names where "now" is; the run's events follow it.
	var ready int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for ready == 0 && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			ready, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if ready == 0 {
		t.Fatal("no ready event on the stream")
	}
	if id, status := c.send(n1, target, target+" hello from node 1"); id == "" {
		t.Fatalf("message: %d", status)
	}
	var got []store.Event
	var id, data string
	for (len(got) == 0 || got[len(got)-1].Type != "run.completed") && sc.Scan() {
		switch line := sc.Text(); {
		case line == "":
			if id != "" && data != "" {
				var e store.Event
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					t.Fatalf("sse data %q: %v", data, err)
				}
				got = append(got, e)
			}
			id, data = "", ""
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
	if len(got) == 0 || got[len(got)-1].Type != "run.completed" {
		t.Fatalf("stream on %s ended before run.completed: %v (%v)", n3.id, types(got), sc.Err())
	}
	// It ran on the owner: both steps' model calls came from it.
	for step := 1; step <= 2; step++ {
		calls := c.model.callsOf(fmt.Sprintf("%s hello from node 1#%d", target, step))
		if len(calls) != 1 || nodeOfKey(calls[0].node) != owner {
			t.Fatalf("step %d of the run: model calls %v, want one from the owner %s", step, calls, owner)
		}
	}
	// Nothing missing: the stream shows exactly the stored events up to run.completed.
	st := c.openStore()
	want := storedIDs(t, st, c.scope, store.EventFilter{AgentID: target}, ready)
	last := got[len(got)-1].ID
	want = slices.DeleteFunc(want, func(id int64) bool { return id > last })
	gotIDs := make([]int64, len(got))
	for i, e := range got {
		gotIDs[i] = e.ID
	}
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("stream on %s: ids %v, stored %v", n3.id, gotIDs, want)
	}
	assertOrder(t, types(got), "run.started", "llm.called", "tool.called", "tool.result", "step.completed", "llm.called", "run.completed")
}

// TestClusterKillDuringLoad: 2,000 messages over 100 agents, sent to every
// live node, while the node owning the most agents is killed with SIGKILL.
// Every message is read exactly once, no model call is made again for a
// step whose answer was stored, no run is left unfinished, and each of the
// dead node's agents runs elsewhere within 10 s of its lease expiring.
func TestClusterKillDuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short")
	}
	const (
		total   = 2000
		senders = 12
		killAt  = 600 // accepted messages before the kill
	)
	c := newCluster(t, clusterOpts{nodes: 3})
	agents := agentIDs("a", 100)
	c.createAgents(c.nodes[0], agents)
	st := c.openStore()
	leases, ok := st.(store.LeaseStore)
	if !ok {
		t.Fatalf("the PostgreSQL store %T does not keep leases (store.LeaseStore)", st)
	}

	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		count    atomic.Int64
		killed   = make(chan struct{})
	)
	work := make(chan int, total)
	for i := range total {
		work <- i
	}
	close(work)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				agent := agents[i%len(agents)]
				for attempt := 0; ; attempt++ {
					live := c.live()
					if attempt > 50 || len(live) == 0 {
						errs <- fmt.Errorf("message %d not accepted after %d attempts", i, attempt)
						return
					}
					// A retry is another message: the first may have been stored.
					id, _ := c.send(live[(i+attempt)%len(live)], agent, fmt.Sprintf("%s m%04d.%d", agent, i, attempt))
					if id != "" {
						mu.Lock()
						accepted[id] = true
						mu.Unlock()
						if count.Add(1) == killAt {
							<-killed // hold this sender until the kill, so it lands mid-load
						}
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	clusterWait(t, 120*time.Second, "the first messages to be accepted", func() bool { return count.Load() >= killAt })
	// The victim: the node that owns the most agents now.
	owners := c.owners(c.nodes[0], store.LeaseAgent)
	perNode := map[string]int{}
	for _, node := range owners {
		perNode[node]++
	}
	victim := c.nodes[1]
	for _, n := range c.nodes {
		if perNode[n.id] > perNode[victim.id] {
			victim = n
		}
	}
	killTime := victim.kill9()
	close(killed)
	// When the dead node's leases expire, on the database's clock (which is
	// this machine's).
	expiry := map[string]time.Time{}
	for agent, node := range owners {
		if node != victim.id {
			continue
		}
		l, err := leases.GetLease(context.Background(), store.LeaseRef{Scope: c.scope, Kind: store.LeaseAgent, Key: agent})
		if err != nil {
			t.Fatalf("lease of %s: %v", agent, err)
		}
		if l.NodeID == victim.id {
			expiry[agent] = l.ExpiresAt
		}
	}
	t.Logf("killed %s (owner of %d agents, %d leases still its own) after %d messages; leases per node %v",
		victim.id, perNode[victim.id], len(expiry), count.Load(), perNode)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.waitIdle(len(agents), 180*time.Second)
	worked := time.Since(start)

	res := c.checkExactlyOnce(st, agents)
	stored := map[string]bool{}
	for _, a := range agents {
		page, _, err := st.ListMessages(context.Background(), c.scope, a, "", store.Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			stored[m.ID] = true
		}
	}
	for id := range accepted {
		if !stored[id] {
			t.Errorf("accepted message %s was lost", id)
		}
	}

	// Failover: each of the dead node's agents that had work after the kill
	// was first served by another node within failoverBound of its lease's expiry.
	calls, _ := c.model.snapshot()
	first := map[string]time.Time{}
	for key, made := range calls {
		agent := agentOfInput(key)
		for _, call := range made {
			if nodeOfKey(call.node) == victim.id {
				if call.at.After(killTime.Add(time.Second)) {
					t.Errorf("the killed node made a model call after its death: %s %v", key, call)
				}
				continue
			}
			if _, ok := expiry[agent]; ok && call.at.After(killTime) && (first[agent].IsZero() || call.at.Before(first[agent])) {
				first[agent] = call.at
			}
		}
	}
	var worst time.Duration
	for agent, exp := range expiry {
		at, ok := first[agent]
		if !ok {
			continue
		}
		d := at.Sub(exp)
		worst = max(worst, d)
		if d < -200*time.Millisecond {
			t.Errorf("agent %s ran on another node %s before the dead node's lease expired", agent, -d.Round(time.Millisecond))
		}
		if d > failoverBound {
			t.Errorf("agent %s ran elsewhere %s after its lease expired (bound %s)", agent, d.Round(time.Millisecond), failoverBound)
		}
	}
	// The cluster's view: the dead node is no longer live and holds nothing.
	v := c.view(c.live()[0])
	for _, n := range v.Nodes {
		if n.ID == victim.id && n.Live {
			t.Errorf("/api/cluster shows the dead node %s live: %+v", victim.id, n)
		}
	}
	for _, l := range v.Leases {
		if l.NodeID == victim.id {
			t.Errorf("/api/cluster shows the dead node %s holding %s %s", victim.id, l.Kind, l.Key)
		}
	}
	if len(expiry) > 0 && len(first) == 0 {
		t.Errorf("none of the %d agents of the killed node ran elsewhere", len(expiry))
	}
	t.Logf("%d messages accepted, %d stored, %d runs, %d model calls (%d made again for an unfinished step), worked off in %s; "+
		"%d of the dead node's agents moved, the slowest %s after its lease expired",
		len(accepted), res.messages, len(res.runs), res.calls, res.repeats, worked.Round(time.Millisecond),
		len(first), worst.Round(time.Millisecond))
}

// TestClusterPausePastLease: a node frozen (SIGSTOP) in the middle of a
// step, past its lease, then thawed (SIGCONT), gets none of its stale writes
// accepted: another node finished its run exactly once, and the frozen
// node's late model answer is not stored.
func TestClusterPausePastLease(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	agents := agentIDs("p", 10)
	c.createAgents(c.nodes[0], agents)
	for i, a := range agents {
		if id, status := c.send(c.nodes[i%3], a, a+" warm"); id == "" {
			t.Fatalf("warm-up: %d", status)
		}
	}
	c.waitIdle(len(agents), 60*time.Second)
	target := agents[0]
	owners := c.owners(c.nodes[0], store.LeaseAgent)
	victim := c.node(owners[target])

	// The victim's call for the first step of the slow run is held until
	// the test lets it go (the victim, frozen, cannot read it anyway).
	slowKey := target + " slow#1"
	arrived, release := make(chan clusterCall, 1), make(chan struct{})
	c.model.setHook(func(_ llmtest.ChatRequest, key string, call clusterCall) (llmtest.Reply, bool) {
		if key == slowKey && nodeOfKey(call.node) == victim.id {
			select {
			case arrived <- call:
			default:
			}
			select {
			case <-release:
			case <-time.After(2 * time.Minute):
			}
		}
		return llmtest.Reply{}, false
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	if id, status := c.send(c.nodes[0], target, target+" slow"); id == "" {
		t.Fatalf("slow message: %d", status)
	}
	var held clusterCall
	select {
	case held = <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatalf("the owner %s never called the model for %q", victim.id, slowKey)
	}
	// Work for the other agents, some of it the victim's, goes on meanwhile.
	for i := range 30 {
		a := agents[1+i%(len(agents)-1)]
		if id, status := c.send(c.nodes[i%3], a, fmt.Sprintf("%s more %d", a, i)); id == "" {
			t.Fatalf("message: %d", status)
		}
	}
	pausedAt := victim.pause()
	// Another node takes the run over once the lease has expired, and asks
	// the model for the unfinished step again.
	var takeover clusterCall
	clusterWait(t, clusterLeaseTTL+failoverBound+5*time.Second, "another node to take the slow run over", func() bool {
		calls := c.model.callsOf(slowKey)
		for _, call := range calls {
			if nodeOfKey(call.node) != victim.id {
				takeover = call
				return true
			}
		}
		return false
	})
	t.Logf("%s paused mid-step; %s took its run over %s later", victim.id, takeover.node, takeover.at.Sub(pausedAt).Round(time.Millisecond))
	// Everything is worked off by the other two while the victim is frozen.
	c.waitIdle(len(agents), 120*time.Second)

	// Now the victim gets its model's answer and runs again: whatever it
	// tries to write under its old lease must be refused.
	close(release)
	// A node frozen after its last lease check before a model call, and
	// before the call left, sends it when it thaws: no check can come
	// between the two. What must hold is that the call's answer is never
	// stored (the writes are fenced); such a call may come after the
	// step's stored answer, within a moment of the thaw.
	thawedAt := time.Now()
	c.thawed = func(call clusterCall) bool {
		return nodeOfKey(call.node) == victim.id && !call.at.Before(thawedAt) && call.at.Sub(thawedAt) < 2*time.Second
	}
	victim.resume()
	victim.waitReady(60 * time.Second)
	// Give it time to try (its renewal loop runs every TTL/3).
	time.Sleep(2 * clusterLeaseTTL)
	// It works normally afterwards.
	for _, a := range agents {
		if id, status := c.send(victim, a, a+" after"); id == "" {
			t.Fatalf("message after the pause: %d", status)
		}
	}
	c.waitIdle(len(agents), 60*time.Second)

	st := c.openStore()
	res := c.checkExactlyOnce(st, agents)
	// The slow run: finished once, with the taking-over node's answer.
	var slow store.Run
	for _, r := range res.runs {
		if r.Input == target+" slow" {
			slow = r
		}
	}
	if slow.ID == "" {
		t.Fatal("the slow run is not stored")
	}
	evs, _, err := st.ListEvents(context.Background(), c.scope, store.EventFilter{RunID: slow.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.Type+" "+e.StepID]++
		if e.Type == "llm.called" && e.StepID == "step_1" {
			if s := serialOfAnswer(e.Payload); s == held.serial {
				t.Errorf("the frozen node's answer (call %d) was stored after it lost its lease", held.serial)
			} else if s != takeover.serial {
				t.Errorf("step 1's stored answer is call %d, want the takeover's %d", s, takeover.serial)
			}
		}
	}
	if counts["run.completed "] != 1 || counts["llm.called step_1"] != 1 || counts["step.completed step_1"] != 1 || counts["step.completed step_2"] != 1 {
		t.Errorf("slow run's events: %v", counts)
	}
	t.Logf("%d runs, %d model calls (%d made again for an unfinished step, %d sent by the frozen node as it thawed)",
		len(res.runs), res.calls, res.repeats, res.thawed)
}

// TestClusterRollingRestart: the three nodes are restarted one at a time
// (SIGTERM, wait for the exit, start again) while messages keep coming and
// 100 SSE clients, one per agent, each reconnect with Last-Event-ID to any
// live node whenever their stream breaks. Every stream ends up with exactly
// the stored events of its agent: no gap, no duplicate.
func TestClusterRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short")
	}
	const clients = 100
	c := newCluster(t, clusterOpts{nodes: 3})
	agents := agentIDs("r", clients)
	c.createAgents(c.nodes[0], agents)
	// A model that takes a moment, so a SIGTERM finds runs mid-step and the
	// draining node must hand them over at a step boundary.
	c.model.setHook(func(llmtest.ChatRequest, string, clusterCall) (llmtest.Reply, bool) {
		time.Sleep(150 * time.Millisecond)
		return llmtest.Reply{}, false
	})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	streams := make([]*streamClient, clients)
	var followers sync.WaitGroup
	for i, a := range agents {
		streams[i] = &streamClient{c: c, path: "/api/agents/" + a + "/stream"}
		followers.Add(1)
		go func() { defer followers.Done(); streams[i].follow(ctx) }()
	}
	defer followers.Wait()
	defer cancel()

	// Load: 4 senders, each message to a random live node, until the restarts are over.
	var (
		sent    atomic.Int64
		stopped = make(chan struct{})
		senders sync.WaitGroup
	)
	for s := range 4 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; ; i++ {
				select {
				case <-stopped:
					return
				default:
				}
				agent := agents[(s*7+i*4)%len(agents)]
				for attempt := 0; attempt < 50; attempt++ {
					live := c.live()
					if len(live) == 0 {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					if id, _ := c.send(live[rand.IntN(len(live))], agent, fmt.Sprintf("%s m%d.%d.%d", agent, s, i, attempt)); id != "" {
						sent.Add(1)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	clusterWait(t, 60*time.Second, "load to start", func() bool { return sent.Load() >= 100 })
	for _, n := range c.nodes {
		termed := time.Now()
		n.term(45 * time.Second)
		stoppedIn := time.Since(termed)
		n.restart()
		t.Logf("%s stopped %s after SIGTERM and restarted; %d messages sent so far", n.id, stoppedIn.Round(time.Millisecond), sent.Load())
	}
	close(stopped)
	senders.Wait()
	c.waitIdle(len(agents), 120*time.Second)

	st := c.openStore()
	want := make([][]int64, clients)
	for i, a := range agents {
		want[i] = storedIDs(t, st, c.scope, store.EventFilter{AgentID: a}, 0)
	}
	// Each stream catches up with its agent's stored events.
	clusterWait(t, 60*time.Second, "every stream to catch up", func() bool {
		for i, s := range streams {
			if len(want[i]) > 0 && s.lastID() < want[i][len(want[i])-1] {
				return false
			}
		}
		return true
	})
	cancel()
	followers.Wait()
	reconnects := 0
	for i, s := range streams {
		s.mu.Lock()
		got := slices.Clone(s.ids)
		dups := s.dups
		reconnects += s.reconnects
		s.mu.Unlock()
		got = slices.DeleteFunc(got, func(id int64) bool { return len(want[i]) == 0 || id > want[i][len(want[i])-1] })
		if dups != 0 {
			t.Errorf("stream of %s: %d duplicates", agents[i], dups)
		}
		if !slices.Equal(got, want[i]) {
			missing := 0
			for _, id := range want[i] {
				if _, found := slices.BinarySearch(got, id); !found {
					missing++
				}
			}
			t.Errorf("stream of %s: %d events, %d stored, %d missing", agents[i], len(got), len(want[i]), missing)
		}
	}
	res := c.checkExactlyOnce(st, agents)
	t.Logf("%d messages sent, %d runs, %d streams reconnected %d times in all, %d model calls (%d made again for an unfinished step)",
		sent.Load(), len(res.runs), clients, reconnects, res.calls, res.repeats)
}

// TestClusterGroupFailover: the node orchestrating a group run is killed
// while a member works; the run finishes on another node, and no member's
// finished work is done again.
func TestClusterGroupFailover(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3})
	tt, ok := c.tb.(*testing.T)
	if !ok {
		t.Fatal("not a test")
	}
	cl := &client{t: tt, base: c.nodes[0].url, scope: c.scope}
	setupTeam(t, cl, nil)

	var (
		mu      sync.Mutex
		byRole  = map[string][]clusterCall{}
		arrived = make(chan clusterCall, 1)
		release = make(chan struct{})
	)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	c.model.setHook(func(req llmtest.ChatRequest, _ string, call clusterCall) (llmtest.Reply, bool) {
		role := "member"
		sys := req.Messages[0].Content
		for _, r := range []string{"Researcher", "Critic", "Lead"} {
			if strings.Contains(sys, "with the role "+r) {
				role = r
			}
		}
		mu.Lock()
		byRole[role] = append(byRole[role], call)
		first := role == "Critic" && len(byRole[role]) == 1
		mu.Unlock()
		if first {
			// The critic's first call is held while its orchestrator is killed.
			arrived <- call
			select {
			case <-release:
			case <-time.After(2 * time.Minute):
			}
		}
		if req.Messages[len(req.Messages)-1].Role == llm.RoleTool {
			return llmtest.Reply{Text: fmt.Sprintf("ok %d", call.serial)}, true
		}
		return llmtest.Reply{Text: fmt.Sprintf("ok %d: %s's view", call.serial, role)}, true
	})

	runID := cl.startGroupRun("team", "Which queue should we use?", "serial")
	var held clusterCall
	select {
	case held = <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("the critic was never asked")
	}
	orchestrator := c.owners(c.nodes[0], store.LeaseGroup)["team"]
	if orchestrator == "" {
		t.Fatal("no node holds the group's lease while its run is running")
	}
	victim := c.node(orchestrator)
	killedAt := victim.kill9()
	close(release)
	t.Logf("killed the orchestrator %s while the critic's call (from %s) was held", victim.id, held.node)

	// The run finishes on a node still alive.
	var run store.Run
	clusterWait(t, 90*time.Second, "the group run to finish", func() bool {
		live := c.live()
		status, body := rawRequest(live[0].url, c.scope, "GET", "/api/runs/"+runID, "")
		return status == http.StatusOK && json.Unmarshal(body, &run) == nil && store.RunFinished(run.Status)
	})
	if run.Status != store.RunCompleted || !strings.Contains(run.Output, "Lead's view") {
		t.Fatalf("group run: %+v", run)
	}
	if got := c.owners(c.live()[0], store.LeaseGroup)["team"]; got == victim.id {
		t.Errorf("the dead node %s still holds the group's lease", victim.id)
	}

	st := c.openStore()
	evs, _, err := st.ListEvents(context.Background(), c.scope, store.EventFilter{RunID: runID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.Type]++
		if e.Type == "run.completed" && e.TS.Before(killedAt) {
			t.Errorf("the run completed before its orchestrator was killed")
		}
	}
	if counts["message.task"] != 3 || counts["message.proposal"] != 2 || counts["message.decision"] != 1 || counts["run.completed"] != 1 {
		t.Errorf("group run's events: %v", counts)
	}
	// One run per member, each completed once.
	var members struct {
		Runs  []store.Run `json:"runs"`
		Total int         `json:"total"`
	}
	c.do(c.live()[0], http.StatusOK, "GET", "/api/runs?group_id=team&limit=50", "", &members)
	perAgent := map[string]int{}
	for _, r := range members.Runs {
		if r.AgentID != "" {
			perAgent[r.AgentID]++
			if r.Status != store.RunCompleted || r.ParentRunID != runID {
				t.Errorf("member run: %+v", r)
			}
		}
	}
	if members.Total != 4 || perAgent["alice"] != 1 || perAgent["bob"] != 1 || perAgent["carol"] != 1 {
		t.Errorf("runs of the group: %d, per member %v; want one each and the group run", members.Total, perAgent)
	}
	// No member's finished work redone: the researcher, done before the
	// kill, and the lead, after it, were asked once; the critic again only
	// if its held call was the dead node's own.
	mu.Lock()
	defer mu.Unlock()
	if n := len(byRole["Researcher"]); n != 1 {
		t.Errorf("the researcher was asked %d times: %v", n, byRole["Researcher"])
	}
	if n := len(byRole["Lead"]); n != 1 {
		t.Errorf("the lead was asked %d times: %v", n, byRole["Lead"])
	}
	if critic := byRole["Critic"]; len(critic) > 2 || (len(critic) == 2 && nodeOfKey(held.node) != victim.id) {
		t.Errorf("the critic was asked %d times (held call from %s, killed %s): %v", len(critic), held.node, victim.id, critic)
	}
	c.checkExactlyOnce(st, nil)
}
