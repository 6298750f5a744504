package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// cliResult is one run of the built binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliEnv is the environment of a CLI process pointed at d as scope org/user.
// The inherited environment comes first so these settings win; NO_COLOR keeps
// the output plain for assertions.
func cliEnv(d *testDaemon, org, user string, extra ...string) []string {
	env := append(os.Environ(), "NO_COLOR=1", "OPENINTERN_URL="+d.URL(), "AGENT_ORG_ID="+org, "AGENT_USER_ID="+user,
		"AGENT_PROJECT_ID=", "OPENINTERN_TOKEN=")
	return append(env, extra...)
}

// runCLI runs the built binary to completion in an empty directory (so no
// agent.config.json is picked up).
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(daemonBinary(t), args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("openintern %v: %v", args, err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done //nolint:errcheck // killed above: its exit error says nothing new
		t.Fatalf("openintern %v did not exit in 60s; stdout:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
	}
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	t.Logf("openintern %s → exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

// assertOneLineError checks the CLI's error contract: non-zero exit, one
// line "openintern: …" on stderr, never a stack trace.
func assertOneLineError(t *testing.T, res cliResult, want string) {
	t.Helper()
	if res.code == 0 {
		t.Fatalf("exit code 0, want non-zero")
	}
	lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "openintern: ") {
		t.Fatalf("stderr is not one line starting with \"openintern: \": %q", res.stderr)
	}
	if !strings.Contains(lines[0], want) {
		t.Fatalf("stderr %q does not contain %q", lines[0], want)
	}
	for _, bad := range []string{"goroutine", "panic", ".go:"} {
		if strings.Contains(res.stderr+res.stdout, bad) {
			t.Fatalf("output contains %q:\n%s%s", bad, res.stdout, res.stderr)
		}
	}
}

// cliDaemon starts a SQLite daemon whose model is a local OpenAI-compatible
// server, with notes.txt in its workspace.
func cliDaemon(t *testing.T) (*testDaemon, *llmtest.Server) {
	t.Helper()
	srv := llmtest.NewServer(t)
	cfg := newConfig(t, "sqlite")
	if err := os.MkdirAll(cfg.Workspace(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Workspace(), "notes.txt"), []byte("The launch is on Tuesday.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, cfg, srv.Provider()), srv
}

const cliAnswer = "The notes say the launch is on Tuesday."

// enqueueToolThenAnswer scripts one run: read notes.txt, then answer slowly
// enough that streaming is observable.
func enqueueToolThenAnswer(srv *llmtest.Server, chunkDelay time.Duration) {
	srv.Enqueue(
		llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: "read_file", Arguments: `{"path":"notes.txt"}`}}},
		llmtest.Reply{Text: cliAnswer, ChunkDelay: chunkDelay},
	)
}

func TestCLIRunStreamPrintsTokensAndToolCalls(t *testing.T) {
	d, srv := cliDaemon(t)
	enqueueToolThenAnswer(srv, 40*time.Millisecond)

	cmd := exec.Command(daemonBinary(t), "run", "what do my notes say?", "--stream", "--session", "cli")
	cmd.Env = cliEnv(d, "cli", "alice")
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read as the output arrives and note when the answer's first words show
	// up: with tokens streamed they come well before the process exits.
	var (
		out       bytes.Buffer
		firstText time.Time
	)
	buf := make([]byte, 256)
	for {
		n, rerr := stdout.Read(buf)
		out.Write(buf[:n])
		if firstText.IsZero() && strings.Contains(out.String(), "The notes") {
			firstText = time.Now()
		}
		if rerr != nil {
			break
		}
	}
	err = cmd.Wait()
	exited := time.Now()
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
	if err != nil {
		t.Fatalf("run --stream: %v (stderr %q)", err, stderr.String())
	}
	got := out.String()
	for _, want := range []string{`→ read_file {"path":"notes.txt"}`, "← read_file ", cliAnswer, "✓ completed", "2 steps"} {
		if !strings.Contains(got, want) {
			t.Fatalf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, cliAnswer) != 1 {
		t.Fatalf("the answer is printed %d times:\n%s", strings.Count(got, cliAnswer), got)
	}
	// The answer streams in ~10 chunks 40 ms apart.
	if firstText.IsZero() || exited.Sub(firstText) < 150*time.Millisecond {
		t.Fatalf("the answer was not streamed: first words %v before exit", exited.Sub(firstText))
	}
	if stderr.Len() != 0 {
		t.Fatalf("stderr not empty: %q", stderr.String())
	}
}

func TestCLIRunFailedExitsOne(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.Enqueue(llmtest.Reply{Status: http.StatusBadRequest, ErrorMessage: "model nope-9 does not exist"})
	res := runCLI(t, cliEnv(d, "cli", "alice"), "run", "hello", "--stream")
	if res.code != 1 {
		t.Fatalf("exit code %d, want 1", res.code)
	}
	assertOneLineError(t, res, "failed: llm_bad_request")
	if !strings.Contains(res.stdout, "✗ failed: llm_bad_request") {
		t.Fatalf("stdout lacks the failure line:\n%s", res.stdout)
	}
}

func TestCLIRunWithoutStreamAndWait(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		return llmtest.Reply{Text: "pong: " + req.LastUserMessage()}
	})
	env := cliEnv(d, "cli", "alice")

	res := runCLI(t, env, "run", "ping one", "--json")
	var created createRunResponse
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &created) != nil || !strings.HasPrefix(created.RunID, "run_") {
		t.Fatalf("run --json: %+v", res)
	}
	d.client("cli", "alice").waitRun(created.RunID, 10*time.Second)

	res = runCLI(t, env, "run", "ping two", "--wait")
	if res.code != 0 || !strings.Contains(res.stdout, "pong: ping two") || !strings.Contains(res.stdout, "✓ completed") {
		t.Fatalf("run --wait: %+v", res)
	}

	res = runCLI(t, env, "run", "ping three", "--wait", "--json")
	var run store.Run
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &run) != nil || run.Status != store.RunCompleted || run.Output != "pong: ping three" {
		t.Fatalf("run --wait --json: %+v", res)
	}
}

func TestCLIRunCtrlCCancelsRun(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.Enqueue(llmtest.Reply{Text: strings.Repeat("slowly ", 200), ChunkDelay: 50 * time.Millisecond})
	cmd := exec.Command(daemonBinary(t), "run", "take your time", "--stream", "--json")
	cmd.Env = cliEnv(d, "cli", "alice")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the first token has arrived: the run is running.
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var runID string
	for sc.Scan() {
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		if ev.Type == "llm.token" {
			runID = ev.RunID
			break
		}
	}
	if runID == "" {
		t.Fatalf("no token before the stream ended; stderr %q", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit code %d after Ctrl-C, want 130; stderr %q", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "openintern: interrupted; run "+runID+" cancelled") {
		t.Fatalf("stderr %q", stderr.String())
	}
	if run := d.client("cli", "alice").waitRun(runID, 10*time.Second); run.Status != store.RunCancelled {
		t.Fatalf("run is %s after Ctrl-C, want cancelled", run.Status)
	}
}

// finishedRun runs the scripted tool-then-answer turn through the API and
// returns its id once it has ended.
func finishedRun(t *testing.T, d *testDaemon, srv *llmtest.Server) string {
	t.Helper()
	enqueueToolThenAnswer(srv, 0)
	c := d.client("cli", "alice")
	id := c.createRun("main", "cli", "what do my notes say?")
	if run := c.waitRun(id, 10*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("run %s: %+v", run.Status, run.Error)
	}
	return id
}

func TestCLITailFinishedRunPrintsAllEvents(t *testing.T) {
	d, srv := cliDaemon(t)
	id := finishedRun(t, d, srv)
	want := d.client("cli", "alice").events(id)
	env := cliEnv(d, "cli", "alice")

	res := runCLI(t, env, "tail", id)
	if res.code != 0 {
		t.Fatalf("tail: exit %d", res.code)
	}
	lines := strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("tail printed %d lines for %d events", len(lines), len(want))
	}
	for i, e := range want {
		if !strings.Contains(lines[i], e.Type) {
			t.Fatalf("line %d %q is not %s", i, lines[i], e.Type)
		}
	}
	if !strings.Contains(res.stdout, `→ read_file {"path":"notes.txt"}`) {
		t.Fatalf("tail lacks the tool call")
	}

	res = runCLI(t, env, "tail", id, "--json")
	if got := decodeLines(t, res.stdout); !reflect.DeepEqual(got, want) {
		t.Fatalf("tail --json events differ from the API's:\n got %v\nwant %v", types(got), types(want))
	}
}

func decodeLines(t *testing.T, s string) []store.Event {
	t.Helper()
	var out []store.Event
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		var e store.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// dropProxy forwards to the daemon but cuts the first stream connection after
// its first event, as a flaky network would; later streams pass through.
type dropProxy struct {
	target string
	mu     sync.Mutex
	drops  int
	resume []string // Last-Event-ID of each stream request
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	stream := strings.HasSuffix(r.URL.Path, "/stream")
	p.mu.Lock()
	drop := stream && p.drops == 0
	if drop {
		p.drops++
	}
	if stream {
		p.resume = append(p.resume, r.Header.Get("Last-Event-ID"))
	}
	p.mu.Unlock()
	if !drop {
		_, _ = io.Copy(flushWriter{w}, resp.Body)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sawID := false
	for sc.Scan() {
		_, _ = w.Write([]byte(sc.Text() + "\n"))
		sawID = sawID || strings.HasPrefix(sc.Text(), "id: ")
		if sawID && sc.Text() == "" {
			break // end of the first stored event: drop the connection
		}
	}
	w.(http.Flusher).Flush()
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
		}
	}
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func TestCLITailResumesAfterDroppedConnection(t *testing.T) {
	d, srv := cliDaemon(t)
	id := finishedRun(t, d, srv)
	want := d.client("cli", "alice").events(id)

	proxy := &dropProxy{target: d.URL()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	env := cliEnv(d, "cli", "alice", "OPENINTERN_URL=http://"+ln.Addr().String())
	res := runCLI(t, env, "tail", id, "--json")
	if res.code != 0 {
		t.Fatalf("tail through a dropping proxy: exit %d", res.code)
	}
	if got := decodeLines(t, res.stdout); !reflect.DeepEqual(got, want) {
		t.Fatalf("events differ after the reconnect:\n got %v\nwant %v", types(got), types(want))
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.resume) < 2 || proxy.resume[0] != "" || proxy.resume[1] != strconv.FormatInt(want[0].ID, 10) {
		t.Fatalf("stream requests had Last-Event-ID %q, want \"\" then the first event's id", proxy.resume)
	}
}

func TestCLIExportRoundTripsAndRendersMarkdown(t *testing.T) {
	d, srv := cliDaemon(t)
	id := finishedRun(t, d, srv)
	c := d.client("cli", "alice")
	wantEvents := c.events(id)
	_, rawRun := c.req("GET", "/api/runs/"+id, nil)
	env := cliEnv(d, "cli", "alice")

	out := filepath.Join(t.TempDir(), "trace.json")
	res := runCLI(t, env, "export", id, "--format", "json", "-o", out)
	if res.code != 0 {
		t.Fatalf("export json: exit %d", res.code)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Run    map[string]any `json:"run"`
		Events []store.Event  `json:"events"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("decode export: %v", err)
	}
	var wantRun map[string]any
	if err := json.Unmarshal(rawRun, &wantRun); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.Run, wantRun) {
		t.Fatalf("exported run differs:\n got %v\nwant %v", doc.Run, wantRun)
	}
	if !reflect.DeepEqual(doc.Events, wantEvents) {
		t.Fatalf("exported events differ:\n got %v\nwant %v", types(doc.Events), types(wantEvents))
	}

	res = runCLI(t, env, "export", id, "--format", "jsonl")
	if got := decodeLines(t, res.stdout); res.code != 0 || !reflect.DeepEqual(got, wantEvents) {
		t.Fatalf("export jsonl differs: %v", types(got))
	}

	res = runCLI(t, env, "export", id, "--format", "md")
	if res.code != 0 {
		t.Fatalf("export md: exit %d", res.code)
	}
	for _, want := range []string{"# Run " + id, "## Input", "## Step 1", "**Tool call** `read_file`", `"path": "notes.txt"`,
		"**Tool result** `read_file`", "The launch is on Tuesday.", "## Step 2", "## Output", cliAnswer, "## Events", "| run.completed |"} {
		if !strings.Contains(res.stdout, want) {
			t.Fatalf("markdown lacks %q", want)
		}
	}

	assertOneLineError(t, runCLI(t, env, "export", id, "--format", "xml"), "--format must be json, jsonl or md")
}

func TestCLIAgents(t *testing.T) {
	d, _ := cliDaemon(t)
	env := cliEnv(d, "cli", "alice")

	res := runCLI(t, env, "agents", "create", "writer", "--name", "Writer", "--prompt", "You write haiku.", "--tool", "read_file")
	if res.code != 0 || !strings.Contains(res.stdout, "created agent writer") {
		t.Fatalf("agents create: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "agents", "create", "writer"), "agent writer already exists")

	res = runCLI(t, env, "agents", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "AGENT") || !strings.Contains(res.stdout, "writer") || !strings.Contains(res.stdout, "main") {
		t.Fatalf("agents list: %+v", res)
	}
	res = runCLI(t, env, "agents", "list", "--json")
	var list struct {
		Agents []agentView `json:"agents"`
		Total  int         `json:"total"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || list.Total != 2 {
		t.Fatalf("agents list --json: %+v", res)
	}

	res = runCLI(t, env, "agents", "show", "writer", "--json")
	var a agentView
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &a) != nil || a.SystemPrompt != "You write haiku." || !reflect.DeepEqual(a.Tools, []string{"read_file"}) {
		t.Fatalf("agents show --json: %+v", res)
	}

	if res = runCLI(t, env, "agents", "pause", "writer"); res.code != 0 || !strings.Contains(res.stdout, "state: paused") {
		t.Fatalf("agents pause: %+v", res)
	}
	res = runCLI(t, env, "agents", "send", "writer", "draft a haiku", "--json")
	var sent struct{ MessageID, Status string }
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &sent) != nil || sent.Status != "queued" {
		t.Fatalf("agents send: %+v", res)
	}
	if res = runCLI(t, env, "agents", "show", "writer"); !strings.Contains(res.stdout, "paused") {
		t.Fatalf("agents show after pause: %+v", res)
	}
	if res = runCLI(t, env, "agents", "resume", "writer"); res.code != 0 || !strings.Contains(res.stdout, "resumed agent writer") {
		t.Fatalf("agents resume: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "agents", "show", "nobody"), "agent nobody not found")
	// Another scope does not see the agent.
	assertOneLineError(t, runCLI(t, env, "agents", "show", "writer", "--org", "other"), "agent writer not found (in org other")
}

func TestCLIErrorsAreOneLine(t *testing.T) {
	d, _ := cliDaemon(t)
	env := cliEnv(d, "cli", "alice")
	missing := "run_00000000-0000-0000-0000-000000000000"

	assertOneLineError(t, runCLI(t, env, "run", "hi", "--bogus"), "unknown flag: --bogus")
	assertOneLineError(t, runCLI(t, env, "tail", missing), "run "+missing+" not found")
	assertOneLineError(t, runCLI(t, env, "tail", "run_x"), "run run_x not found")
	assertOneLineError(t, runCLI(t, env, "export", "nonsense"), "run nonsense not found")
	assertOneLineError(t, runCLI(t, env, "run", "hi", "--agent", "ghost"), "agent ghost not found")
	assertOneLineError(t, runCLI(t, env, "tail"), "accepts 1 arg(s)")
	assertOneLineError(t, runCLI(t, env, "nosuchcommand"), "unknown command")

	// A daemon that is not there: the hint names the URL and how to start it.
	closed := closedPort(t)
	res := runCLI(t, cliEnv(d, "cli", "alice", "OPENINTERN_URL=http://"+closed), "agents", "list")
	assertOneLineError(t, res, "cannot reach the daemon at http://"+closed)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestCLIDoctor(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.NewServer(t)
			cfg := newConfig(t, kind)
			d := startDaemon(t, cfg, srv.Provider())
			env := cliEnv(d, "cli", "alice", "DATA_DIR="+cfg.DataDir, "DATABASE_URL="+cfg.DatabaseURL,
				"REDIS_URL="+testenv.RedisURL(t), "LLM_PROVIDER=", "LLM_BASE_URL="+srv.URL(), "LLM_API_KEY=k", "LLM_MODEL=test-model")

			res := runCLI(t, env, "doctor")
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("doctor against a healthy setup: exit %d, stderr %q", res.code, res.stderr)
			}
			for _, check := range []string{"config", "store", "redis", "llm", "embedder", "daemon"} {
				if !hasLinePrefix(res.stdout, "✓ pass  "+check+" ") {
					t.Fatalf("no pass line for %s:\n%s", check, res.stdout)
				}
			}
			if kind == "postgres" && !strings.Contains(res.stdout, "pgvector available") {
				t.Fatalf("the postgres check does not mention pgvector:\n%s", res.stdout)
			}
			if srv.RequestCount() != 1 {
				t.Fatalf("doctor made %d LLM calls, want 1", srv.RequestCount())
			}

			bad := append(slices.Clone(env), "DATABASE_URL=postgres://postgres@"+closedPort(t)+"/openintern?sslmode=disable&connect_timeout=3")
			res = runCLI(t, bad, "doctor", "--json")
			var report struct {
				OK     bool          `json:"ok"`
				Checks []checkResult `json:"checks"`
			}
			if err := json.Unmarshal([]byte(res.stdout), &report); err != nil {
				t.Fatalf("doctor --json: %v", err)
			}
			if res.code != 1 || report.OK {
				t.Fatalf("doctor with a closed database port: exit %d, ok %v", res.code, report.OK)
			}
			for _, c := range report.Checks {
				if (c.Name == "store") == c.OK {
					t.Fatalf("check %s ok=%v: %+v", c.Name, c.OK, c)
				}
				if c.Name == "store" && (!strings.Contains(c.Detail, "connection refused") || !strings.Contains(c.Hint, "DATABASE_URL")) {
					t.Fatalf("store failure is not clear: %+v", c)
				}
			}
			assertOneLineError(t, res, "1 check(s) failed: store")

			res = runCLI(t, bad, "doctor")
			if res.code != 1 || !hasLinePrefix(res.stdout, "✗ FAIL  store ") || !strings.Contains(res.stdout, "hint: is PostgreSQL running on 127.0.0.1:") {
				t.Fatalf("doctor text output does not name the failing check:\n%s", res.stdout)
			}
		})
	}
}

// hasLinePrefix reports whether some line of s starts with prefix.
func hasLinePrefix(s, prefix string) bool {
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func TestCLICompletionAndHelp(t *testing.T) {
	env := append(os.Environ(), "NO_COLOR=1")
	for _, shell := range []string{"bash", "zsh", "fish"} {
		res := runCLI(t, env, "completion", shell)
		if res.code != 0 || !strings.Contains(res.stdout, "openintern") {
			t.Fatalf("completion %s: exit %d", shell, res.code)
		}
	}
	assertOneLineError(t, runCLI(t, env, "completion", "tcsh"), "invalid argument")
	if res := runCLI(t, env, "agents", "--help"); res.code != 0 || !strings.Contains(res.stdout, "Examples:") {
		t.Fatalf("agents --help: %+v", res)
	}

	// Every client command has an example in its help.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := newRootCmd(io.Discard, io.Discard, func(string) (string, bool) { return "", false })
	for _, c := range root.Commands() {
		switch c.Name() {
		case "run", "tail", "export", "agents", "memory", "roles", "groups", "doctor", "completion", "serve", "init", "mcp", "policy", "bench":
			walk(c)
		}
	}
}
