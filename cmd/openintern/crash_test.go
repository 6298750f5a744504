package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// daemonBinary builds the real binary once per test process.
func daemonBinary(t *testing.T) string {
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

// TestKillNineDuringBurstLosesNothing posts 1,000 messages over 50 agents while
// the LLM answers in ~50 ms, kills the daemon with SIGKILL half way, restarts
// it, and checks that every accepted message was read exactly once, in one
// completed run, and that no run is left running.
func TestKillNineDuringBurstLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 burst is a long test; run without -short")
	}
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { killNineBurst(t, kind) })
	}
}

func killNineBurst(t *testing.T, kind string) {
	srv := llmtest.NewServer(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "ack " + req.LastUserMessage(), Delay: 50 * time.Millisecond}
	})
	env := []string{"LLM_BASE_URL=" + srv.URL(), "LLM_API_KEY=k", "DATA_DIR=" + t.TempDir(), "LOG_LEVEL=warn", "REDIS_URL=", "DATABASE_URL="}
	if kind == "postgres" {
		env = append(env, "DATABASE_URL="+testenv.PostgresURL(t))
	}
	p := startProcess(t, env)
	scope := store.Scope{OrgID: "crash", UserID: "u1"}
	const agents, total = 50, 1000
	for i := range agents {
		status, body := rawRequest(p.url, scope, "POST", "/api/agents", fmt.Sprintf(`{"agent_id":"a%02d","name":"Agent %d"}`, i, i))
		if status != http.StatusCreated {
			t.Fatalf("create agent: %d %s", status, body)
		}
	}

	var (
		mu       sync.Mutex
		accepted = map[string]string{} // message id -> agent
		sent     atomic.Int64
		killed   = make(chan struct{})
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 16 {
				if w == 0 && i >= total/2 {
					killOnce.Do(func() {
						_ = p.cmd.Process.Signal(syscall.SIGKILL)
						close(killed)
					})
				}
				select {
				case <-killed:
					return
				default:
				}
				agent := fmt.Sprintf("a%02d", i%agents)
				status, body := rawRequest(p.url, scope, "POST", "/api/agents/"+agent+"/messages", fmt.Sprintf(`{"content":"m%04d","session_key":"s"}`, i))
				sent.Add(1)
				if status == http.StatusAccepted {
					var r struct {
						MessageID string `json:"message_id"`
					}
					_ = json.Unmarshal(body, &r)
					mu.Lock()
					accepted[r.MessageID] = agent
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	<-p.done
	if len(accepted) < 100 {
		t.Fatalf("only %d messages accepted before the kill", len(accepted))
	}
	t.Logf("%d requests sent, %d accepted before kill -9", sent.Load(), len(accepted))

	p2 := startProcess(t, env)
	// Wait until every inbox is empty.
	deadline := time.Now().Add(90 * time.Second)
	for {
		unread := 0
		for i := range agents {
			var ag store.Agent
			_, body := rawRequest(p2.url, scope, "GET", fmt.Sprintf("/api/agents/a%02d", i), "")
			_ = json.Unmarshal(body, &ag)
			unread += ag.Unread
		}
		if unread == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still unread after restart", unread)
		}
		time.Sleep(200 * time.Millisecond)
	}

	runMessages := map[string]int{}
	seen := map[string]bool{}
	for i := range agents {
		agent := fmt.Sprintf("a%02d", i)
		for page := 1; ; page++ {
			var msgs struct {
				Messages []store.Message `json:"messages"`
				Total    int             `json:"total"`
			}
			_, body := rawRequest(p2.url, scope, "GET", fmt.Sprintf("/api/agents/%s/messages?limit=200&page=%d", agent, page), "")
			if err := json.Unmarshal(body, &msgs); err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs.Messages {
				if seen[m.ID] {
					t.Fatalf("message %s listed twice", m.ID)
				}
				seen[m.ID] = true
				if m.Status != store.MessageRead || m.RunID == "" {
					t.Fatalf("message %s: status %s run %q", m.ID, m.Status, m.RunID)
				}
				runMessages[m.RunID]++
			}
			if page*200 >= msgs.Total {
				break
			}
		}
	}
	for id := range accepted {
		if !seen[id] {
			t.Fatalf("accepted message %s was lost", id)
		}
	}
	// Every run is completed, and no run holds no message.
	for _, status := range []string{store.RunRunning, store.RunPending, store.RunFailed} {
		var runs struct{ Total int }
		_, body := rawRequest(p2.url, scope, "GET", "/api/runs?status="+status, "")
		_ = json.Unmarshal(body, &runs)
		if runs.Total != 0 {
			t.Fatalf("%d runs left %s", runs.Total, status)
		}
	}
	var done struct{ Total int }
	_, body := rawRequest(p2.url, scope, "GET", "/api/runs?status=completed", "")
	_ = json.Unmarshal(body, &done)
	if done.Total != len(runMessages) {
		t.Fatalf("%d completed runs, %d runs hold messages", done.Total, len(runMessages))
	}
	t.Logf("%d messages in %d runs after restart", len(seen), len(runMessages))

	// Clean stop on SIGTERM: exit code 0, within seconds.
	start := time.Now()
	_ = p2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p2.done:
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop within 15s of SIGTERM")
	}
	if code := p2.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
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
