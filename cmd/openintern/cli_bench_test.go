package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
)

// TestBenchSpawnLocalModel runs the built binary's `bench --spawn --model
// local` on both stores: it must start its own daemon, complete and check
// every turn, and report figures that hang together. No timing thresholds:
// the figures depend on the machine.
func TestBenchSpawnLocalModel(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			args := []string{"bench", "--spawn", "--model", "local", "--agents", "4", "--turns", "40", "--json", "--drain", "30s"}
			if kind == "postgres" {
				args = append(args, "--database-url", testenv.PostgresURL(t))
			}
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, daemonBinary(t), args...)
			cmd.Env = append(os.Environ(), "NO_COLOR=1", "OPENINTERN_URL=", "OPENINTERN_TOKEN=", "DATABASE_URL=")
			cmd.Dir = t.TempDir()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			var rep benchReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
			}
			t.Logf("report: %s", stdout.String())
			if rep.TurnsPlanned != 40 || rep.Completed != 40 || rep.Checked != 40 || rep.Errors != 0 || len(rep.ErrorSamples) != 0 {
				t.Errorf("turns planned %d, completed %d, checked %d, errors %d %v; want 40, 40, 40, 0",
					rep.TurnsPlanned, rep.Completed, rep.Checked, rep.Errors, rep.ErrorSamples)
			}
			if !rep.Spawned || rep.Store != kind || rep.Interrupted || rep.ToolCalls != 1 || rep.Agents != 4 || rep.Concurrency != 4 {
				t.Errorf("report settings: %+v", rep)
			}
			l := rep.Latency
			if rep.TurnsPerS <= 0 || rep.DurationS <= 0 || l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max ||
				rep.FirstTenth <= 0 || rep.LastTenth <= 0 || rep.FirstTenth > l.Max || rep.LastTenth > l.Max {
				t.Errorf("figures do not hang together: turns/s %v, duration %v, latency %+v, first/last 10%% %v/%v",
					rep.TurnsPerS, rep.DurationS, l, rep.FirstTenth, rep.LastTenth)
			}
			// The spawned daemon is this machine's: its CPU is measured.
			if rep.DaemonCPU == nil || *rep.DaemonCPU <= 0 || rep.BenchCPU == nil {
				t.Errorf("daemon CPU %v, bench CPU %v: want both measured", rep.DaemonCPU, rep.BenchCPU)
			}
			if kind == "postgres" {
				if rep.PostgresCPU == nil || rep.SQL == nil {
					t.Errorf("PostgreSQL figures missing: cpu %v, sql %+v", rep.PostgresCPU, rep.SQL)
				}
				if rep.SQL != nil && !rep.SQL.Available && rep.SQL.Reason == "" {
					t.Errorf("SQL statements not counted, without a reason")
				}
			} else if rep.PostgresCPU != nil || rep.SQL != nil {
				t.Errorf("PostgreSQL figures on SQLite: %+v", rep)
			}
			// The queue is read from either store, and --drain waits it out.
			if q := rep.Queue; q == nil || q.Samples == 0 || len(q.Depths) != q.Samples || q.Final != q.Depths[len(q.Depths)-1] ||
				(q.Final > 0 && q.DrainedAfterS == nil) {
				t.Errorf("summary queue %+v: want a depth each second, the final one last, and a drain time when not empty", q)
			}
		})
	}
}

// TestBenchLocalModelWireFormat drives the local model with the daemon's own
// OpenAI-compatible provider, streaming and not: K tool calls, then the
// nonce's answer; and a request without the tool offered answers at once.
func TestBenchLocalModelWireFormat(t *testing.T) {
	m, err := startLocalModel("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	p := llm.NewOpenAI(llm.OpenAIConfig{Name: "openai-compatible", BaseURL: m.URL(), Model: localModelName})
	tools := []llm.ToolSpec{{Name: benchTool, Description: "read", Parameters: json.RawMessage(`{"type":"object"}`)}}
	msgs := []llm.Message{
		{Role: llm.RoleSystem, Content: "you are a bench agent"},
		{Role: llm.RoleUser, Content: "bench turn, nonce old-1: answer with the nonce."},
		{Role: llm.RoleAssistant, Content: "nonce old-1"},
		{Role: llm.RoleUser, Content: "bench turn, nonce ab12-t7: answer with the nonce."},
	}
	var streamed strings.Builder
	for call := range 3 {
		resp, err := p.Complete(t.Context(), llm.Request{Messages: msgs, Tools: tools}, func(d string) { streamed.WriteString(d) })
		if err != nil {
			t.Fatalf("call %d: %v", call, err)
		}
		if call < 2 {
			if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Name != benchTool || !json.Valid([]byte(resp.ToolCalls[0].Arguments)) || resp.Content != "" {
				t.Fatalf("call %d: want one %s call, got %+v", call, benchTool, resp)
			}
			tc := resp.ToolCalls[0]
			msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{tc}},
				llm.Message{Role: llm.RoleTool, ToolCallID: tc.ID, Name: tc.Name, Content: "error: no such file"})
			continue
		}
		if resp.Content != "nonce ab12-t7" || len(resp.ToolCalls) != 0 || resp.FinishReason != "stop" {
			t.Errorf("answer %+v, want the turn's nonce", resp)
		}
	}
	if streamed.String() != "nonce ab12-t7" {
		t.Errorf("streamed tokens %q", streamed.String())
	}
	resp, err := p.Complete(t.Context(), llm.Request{Messages: msgs[:4]}, nil)
	if err != nil || resp.Content != "nonce ab12-t7" {
		t.Errorf("without the tool offered: %+v, %v", resp, err)
	}
	if m.requests.Load() != 4 {
		t.Errorf("requests %d, want 4", m.requests.Load())
	}
}

func TestBenchSummarize(t *testing.T) {
	var results []turnResult
	for i := range 20 {
		results = append(results, turnResult{latency: time.Duration(i+1) * time.Millisecond, completed: true, checked: true})
	}
	results[3] = turnResult{err: "agent a: create run: boom"}
	results[5] = turnResult{latency: 6 * time.Millisecond, completed: true, err: "answered wrong"}
	results = append(results, turnResult{interrupted: true})
	var r benchReport
	r.summarize(results, 2*time.Second)
	if r.Completed != 19 || r.Checked != 18 || r.Errors != 2 || len(r.ErrorSamples) != 2 {
		t.Errorf("completed %d checked %d errors %d %v", r.Completed, r.Checked, r.Errors, r.ErrorSamples)
	}
	if r.TurnsPerS != 9.5 || r.Latency.P50 != 11 || r.Latency.P99 != 20 || r.Latency.Max != 20 {
		t.Errorf("turns/s %v latency %+v", r.TurnsPerS, r.Latency)
	}
	// 19 latencies (4 ms failed): p50 is the 10th, 11 ms; a tenth is one turn, the first (1 ms) and the last (20 ms).
	if r.FirstTenth != 1 || r.LastTenth != 20 {
		t.Errorf("first/last tenth %v/%v", r.FirstTenth, r.LastTenth)
	}
}

func TestCPUMeterCountsThisProcess(t *testing.T) {
	m := newCPUMeter(func() []int { return []int{os.Getpid()} })
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for m.total == 0 && time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		m.sample()
	}
	if m.total <= 0 {
		t.Errorf("no CPU counted for a busy process (x=%d)", x)
	}
}

func TestListenerPIDFindsThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if pid, ok := listenerPID(portOf(ln.Addr().String())); !ok || pid != os.Getpid() {
		t.Errorf("listenerPID = %d, %v; want this process %d", pid, ok, os.Getpid())
	}
}

// TestBenchAgainstARunningDaemon benches a daemon the bench did not start,
// with the daemon's own model (llmtest echoes the input, nonce included):
// every answer is checked for its nonce, the daemon (this test process,
// listening on loopback) is found for its CPU, and the bench's agents are
// deleted afterwards.
func TestBenchAgainstARunningDaemon(t *testing.T) {
	d, srv := cliDaemon(t)
	env := cliEnv(d, "benchorg", "alice")
	res := runCLI(t, env, "bench", "--model", "echo-model", "--agents", "2", "--turns", "6", "--json")
	if res.code != 0 {
		t.Fatalf("bench: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, res.stdout)
	}
	if rep.Spawned || rep.Completed != 6 || rep.Checked != 6 || rep.Errors != 0 || rep.ToolCalls != 0 || rep.URL != d.URL() {
		t.Errorf("report %+v", rep)
	}
	if rep.DaemonCPU == nil {
		t.Errorf("the daemon listens on loopback in this process, yet its CPU was not measured: %v", rep.Notes)
	}
	if got := srv.RequestCount(); got != 6 {
		t.Errorf("model requests %d, want one per turn", got)
	}
	for _, r := range srv.Requests() {
		if r.Model != "echo-model" {
			t.Errorf("model %q, want the --model name on the bench's agents", r.Model)
		}
	}
	if list := runCLI(t, env, "agents", "list", "--json"); list.code != 0 || strings.Contains(list.stdout, "bench-") {
		t.Errorf("bench agents left behind (exit %d): %s", list.code, list.stdout)
	}
}

func TestBenchBadInput(t *testing.T) {
	env := append(os.Environ(), "NO_COLOR=1", "OPENINTERN_URL=http://"+closedPort(t), "OPENINTERN_TOKEN=")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--agents", "0"}, "--agents must be 1 to 1000"},
		{[]string{"bench", "--turns", "-1"}, "--turns must be at least 1"},
		{[]string{"bench", "--tool-calls", "11"}, "--tool-calls must be 0 to 10"},
		{[]string{"bench"}, "--model local needs --spawn, or --model-listen"},
		{[]string{"bench", "--model", "gpt", "--model-listen", "127.0.0.1:0"}, "--model-listen is only for --model local"},
		{[]string{"bench", "--model", "gpt"}, "cannot reach the daemon"},
	} {
		assertOneLineError(t, runCLI(t, env, tc.args...), tc.want)
	}
}
