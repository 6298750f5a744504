package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// daemonBinary builds the real binary once per test process.
func daemonBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "openintern-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "openintern")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is the daemon running as a child process.
type process struct {
	cmd  *exec.Cmd
	url  string
	logs *strings.Builder
	mu   *sync.Mutex
	done chan struct{}
}

func startProcess(t *testing.T, env []string) *process {
	t.Helper()
	cmd := exec.Command(daemonBinary(t), "serve", "--port", "0")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	cmd.Stderr = lockedWriter{p.mu, p.logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "OpenIntern is serving on "); ok {
				urlCh <- strings.TrimSpace(rest)
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			p.mu.Lock()
			t.Logf("daemon log:\n%s", p.logs.String())
			p.mu.Unlock()
		}
	})
	select {
	case p.url = <-urlCh:
	case <-p.done:
		t.Fatalf("daemon exited at start: %s", p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not start in 60s")
	}
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCrashLoopAppliesNothingTwice sends 1,000 messages over 50 agents while
// the daemon is killed with SIGKILL 10 times at random moments and restarted.
// Each run's first step asks for memory_write and send_message (a note to the
// next agent, whose run just answers). At the end every accepted message was
// read exactly once, every run completed, no memory_write or send_message
// effect was applied twice, no event of a step was stored twice, and the model
// was asked again for a step only when a kill came between the two calls (a
// step whose answer was stored is never asked again). The daemon then stops
// cleanly on SIGTERM.
func TestCrashLoopAppliesNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash loop is a long test; run without -short")
	}
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { crashLoop(t, kind) })
	}
}

// modelLog records, for each step of each run (a run is known by its input,
// which is unique here), the calls of the model: which daemon made each (its
// round: each round's daemon has its own API key; rounds, not times, as the
// server may handle a request after the daemon that sent it was killed) and
// the call's serial number, which its answer carries so the stored trace
// tells which call's answer was kept.
type modelLog struct {
	mu    sync.Mutex
	calls map[string][]modelCall
	total int
}

type modelCall struct {
	daemon string
	serial int
}

func (l *modelLog) add(key, daemon string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.calls[key] = append(l.calls[key], modelCall{daemon, l.total})
	return l.total
}

func crashLoop(t *testing.T, kind string) {
	const (
		agents  = 50
		total   = 1000
		kills   = 10
		senders = 8
	)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)

	calls := &modelLog{calls: map[string][]modelCall{}}
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		input, step := req.LastUserMessage(), stepOf(req)
		serial := calls.add(fmt.Sprintf("%s#%d", input, step), req.Authorization)
		if step > 1 || strings.HasPrefix(input, "Message from agent") {
			return llmtest.Reply{Text: fmt.Sprintf("ok %d", serial), Delay: 10 * time.Millisecond}
		}
		var i int
		_, _ = fmt.Sscanf(input, "m%d", &i)
		// One line, so a note is never taken for several messages of a batch.
		tag := strings.ReplaceAll(input, "\n\n", " + ")
		return llmtest.Reply{Delay: 10 * time.Millisecond, ToolCalls: []llm.ToolCall{
			{ID: fmt.Sprintf("call_0_%d", serial), Name: "memory_write", Arguments: fmt.Sprintf(`{"text":%q,"type":"archival"}`, "note "+tag)},
			{ID: fmt.Sprintf("call_1_%d", serial), Name: "send_message", Arguments: fmt.Sprintf(`{"to":"a%02d","content":%q}`, (i+1)%agents, "fwd "+tag)},
		}}
	})
	dataDir := t.TempDir()
	env := []string{"LLM_BASE_URL=" + srv.URL(), "DATA_DIR=" + dataDir, "LOG_LEVEL=warn", "REDIS_URL=", "DATABASE_URL="}
	dbURL := ""
	if kind == "postgres" {
		dbURL = testenv.PostgresURL(t)
		env = append(env, "DATABASE_URL="+dbURL)
	}
	scope := store.Scope{OrgID: "crash", UserID: "u1"}

	var (
		mu        sync.Mutex
		accepted  = map[string]bool{} // message ids answered 202
		killTimes []time.Time
		pending   = make([]int, total)
		p         *process
	)
	for i := range pending {
		pending[i] = i
	}
	start := time.Now()
	for round := 0; round <= kills; round++ {
		p = startProcess(t, append(slices.Clip(env), fmt.Sprintf("LLM_API_KEY=round%d", round)))
		if round == 0 {
			for i := range agents {
				status, body := rawRequest(p.url, scope, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":"a%02d","name":"Agent %d"}`, i, i))
				if status != http.StatusCreated {
					t.Fatalf("create agent: %d %s", status, body)
				}
			}
		}
		// This round sends its share of what is left; the last sends the rest.
		share := pending
		if round < kills {
			share = pending[:min(len(pending), total/kills)]
		}
		work := make(chan int, len(share))
		for _, i := range share {
			work <- i
		}
		close(work)
		rest := slices.Clone(pending[len(share):])
		dead := make(chan struct{})
		var wg sync.WaitGroup
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					select {
					case <-dead:
						mu.Lock()
						rest = append(rest, i)
						mu.Unlock()
						continue
					default:
					}
					// The round is in the content: a message resent after a kill
					// (its 202 lost) is another message.
					content := fmt.Sprintf("m%04d.%d", i, round)
					status, body := rawRequest(p.url, scope, "POST", fmt.Sprintf("/api/agents/a%02d/messages", i%agents),
						fmt.Sprintf(`{"content":%q,"session_key":"s"}`, content))
					mu.Lock()
					if status == http.StatusAccepted {
						var r struct {
							MessageID string `json:"message_id"`
						}
						_ = json.Unmarshal(body, &r)
						accepted[r.MessageID] = true
					} else {
						rest = append(rest, i)
					}
					mu.Unlock()
				}
			}()
		}
		if round < kills {
			// A random moment: while messages are sent, or later while the
			// agents work through them.
			time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			mu.Lock()
			killTimes = append(killTimes, time.Now())
			mu.Unlock()
			close(dead)
		}
		wg.Wait()
		pending = rest
	}
	if len(pending) != 0 {
		t.Fatalf("%d messages not accepted by the last daemon", len(pending))
	}

	// Wait until every inbox is empty and no run is left running.
	waitFor(t, 120*time.Second, "every message to be worked off", func() bool {
		for _, status := range []string{store.RunRunning, store.RunPending} {
			var runs struct{ Total int }
			_, body := rawRequest(p.url, scope, "GET", "/api/runs?status="+status, "")
			if json.Unmarshal(body, &runs) != nil || runs.Total != 0 {
				return false
			}
		}
		var list struct {
			Agents []store.Agent `json:"agents"`
		}
		_, body := rawRequest(p.url, scope, "GET", "/api/agents?limit=100", "")
		if json.Unmarshal(body, &list) != nil || len(list.Agents) < agents {
			return false
		}
		for _, a := range list.Agents {
			if a.Unread != 0 {
				return false
			}
		}
		return true
	})
	worked := time.Since(start)

	// Clean stop on SIGTERM: exit code 0, within seconds.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop within 15s of SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}

	ctx := context.Background()
	st, ms, err := daemon.OpenStore(ctx, dbURL, filepath.Join(dataDir, "openintern.db"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Runs: all completed.
	runs := map[string]store.Run{}
	inputs := map[string]int{} // each message's content -> runs whose input holds it
	userRuns := 0
	for off := 0; ; off += 1000 {
		page, n, err := st.ListRuns(ctx, scope, store.RunFilter{}, store.Page{Offset: off, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			if r.Status != store.RunCompleted {
				t.Errorf("run %s is %s (%+v)", r.ID, r.Status, r.Error)
			}
			runs[r.ID] = r
			for _, part := range strings.Split(r.Input, "\n\n") {
				inputs[part]++
			}
			if !strings.HasPrefix(r.Input, "Message from agent") {
				userRuns++
			}
		}
		if off+1000 >= n {
			break
		}
	}

	// Messages: each read once, in a run that holds it; each note sent once.
	seen := map[string]bool{}
	forwards := map[string]int{}
	messages := 0
	for i := range agents {
		for off := 0; ; off += 1000 {
			page, n, err := st.ListMessages(ctx, scope, fmt.Sprintf("a%02d", i), "", store.Page{Offset: off, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page {
				messages++
				seen[m.ID] = true
				if m.Status != store.MessageRead || runs[m.RunID].ID == "" {
					t.Fatalf("message %s: status %s run %q", m.ID, m.Status, m.RunID)
				}
				if inputs[m.Content] != 1 {
					t.Errorf("message %q is the input of %d runs", m.Content, inputs[m.Content])
				}
				if m.SenderType == store.SenderAgent {
					forwards[m.Content]++
				}
			}
			if off+1000 >= n {
				break
			}
		}
	}
	for id := range accepted {
		if !seen[id] {
			t.Errorf("accepted message %s was lost", id)
		}
	}
	for content, n := range forwards {
		if n != 1 {
			t.Errorf("send_message applied %d times: %q", n, content)
		}
	}
	if len(forwards) != userRuns {
		t.Errorf("%d notes sent by %d runs that each send one", len(forwards), userRuns)
	}

	// Memories: each run's note stored once.
	svc, err := memory.New(memory.Config{Store: ms, Embedder: memory.NewHashEmbedder(0), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	notes := map[string]int{}
	for off := 0; ; off += 1000 {
		page, n, err := svc.List(ctx, scope, memory.Filter{Types: []string{memory.TypeArchival}}, store.Page{Offset: off, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			notes[m.Text]++
		}
		if off+1000 >= n {
			break
		}
	}
	for text, n := range notes {
		if n != 1 {
			t.Errorf("memory_write applied %d times: %q", n, text)
		}
	}
	if len(notes) != userRuns {
		t.Errorf("%d notes stored by %d runs that each write one", len(notes), userRuns)
	}

	// Events: no step's start, model call, tool call or result stored twice.
	stored := map[string]int{}
	kept := map[string]int{} // input#step -> serial of the model call whose answer is stored
	for after := int64(0); ; {
		page, _, err := st.ListEvents(ctx, scope, store.EventFilter{AfterID: after, Limit: 1000,
			Types: []string{"step.started", "llm.called", "tool.called", "tool.result", "run.started", "run.completed"}})
		if err != nil {
			t.Fatal(err)
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
				t.Errorf("event stored twice: %s", key)
			}
			if e.Type == "llm.called" {
				var answer struct {
					Content   string         `json:"content"`
					ToolCalls []llm.ToolCall `json:"tool_calls"`
				}
				_ = json.Unmarshal(e.Payload, &answer)
				var serial int
				if len(answer.ToolCalls) > 0 {
					_, _ = fmt.Sscanf(answer.ToolCalls[0].ID, "call_0_%d", &serial)
				} else {
					_, _ = fmt.Sscanf(answer.Content, "ok %d", &serial)
				}
				if k := runs[e.RunID].Input + "#" + strings.TrimPrefix(e.StepID, "step_"); kept[k] == 0 {
					kept[k] = serial // the first stored: once it is, the step must not be asked again
				}
			}
			after = e.ID
		}
	}

	// The model: a step asked again only across a kill, and never once its
	// answer was stored (the stored answer is the step's last call).
	repeats := 0
	calls.mu.Lock()
	for key, made := range calls.calls {
		for i := 1; i < len(made); i++ {
			repeats++
			if made[i].daemon == made[i-1].daemon {
				t.Errorf("model asked again for %q by the same daemon: %v", key, made)
			}
		}
		if serial, ok := kept[key]; ok && serial != made[len(made)-1].serial {
			t.Errorf("model asked again for %q after the answer of call %d was stored: %v", key, serial, made)
		}
	}
	if len(kept) == 0 {
		t.Error("no stored model answer found")
	}
	totalCalls := calls.total
	calls.mu.Unlock()
	t.Logf("%s: %d messages accepted (%d stored incl. %d notes), %d kills, %d runs (%d from users), %d LLM calls, %d repeated across a kill, worked off in %s",
		kind, len(accepted), messages, len(forwards), len(killTimes), len(runs), userRuns, totalCalls, repeats, worked.Round(time.Millisecond))
}

func rawRequest(base string, scope store.Scope, method, path, body string) (int, []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-org-id", scope.OrgID)
	req.Header.Set("x-user-id", scope.UserID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
