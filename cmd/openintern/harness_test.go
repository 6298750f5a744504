package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
)

// storeKinds are the stores every end-to-end test runs against.
var storeKinds = []string{"sqlite", "postgres"}

type testDaemon struct {
	*daemon.Main
	t testing.TB
}

// newConfig returns a config for a daemon on a free port with its own data dir
// and, for "postgres", its own fresh schema.
func newConfig(t testing.TB, kind string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Port = 0
	cfg.DataDir = t.TempDir()
	cfg.AgentIdleTimeout = config.Duration(time.Minute)
	if kind == "postgres" {
		cfg.DatabaseURL = testenv.PostgresURL(t)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startDaemon runs a daemon until the test ends.
func startDaemon(t testing.TB, cfg config.Config, model llm.Provider) *testDaemon {
	t.Helper()
	return startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t), Model: model})
}

// startMain runs m (a daemon with parts of the test's choosing) until the test ends.
func startMain(t testing.TB, m *daemon.Main) *testDaemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	d := &testDaemon{Main: m, t: t}
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *testDaemon) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		d.t.Errorf("stop daemon: %v", err)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client talks to a daemon as one scope.
type client struct {
	t     *testing.T
	base  string
	scope store.Scope
}

func (d *testDaemon) client(org, user string) *client {
	return &client{t: d.t.(*testing.T), base: d.URL(), scope: store.Scope{OrgID: org, UserID: user}}
}

func (c *client) req(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.scope.OrgID != "" {
		req.Header.Set("x-org-id", c.scope.OrgID)
	}
	if c.scope.UserID != "" {
		req.Header.Set("x-user-id", c.scope.UserID)
	}
	if c.scope.ProjectID != "" {
		req.Header.Set("x-project-id", c.scope.ProjectID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must does a request and decodes the JSON answer, failing unless the status matches.
func (c *client) must(want int, method, path string, body any, out any) {
	c.t.Helper()
	status, raw := c.req(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

func (c *client) createRun(agentID, session, input string) string {
	c.t.Helper()
	var out struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
	}
	c.must(http.StatusCreated, "POST", "/api/runs", map[string]string{"agent_id": agentID, "session_key": session, "input": input}, &out)
	if out.RunID == "" || out.Status != store.RunPending {
		c.t.Fatalf("create run: %+v", out)
	}
	return out.RunID
}

// waitRun polls until the run reaches a final status.
func (c *client) waitRun(runID string, timeout time.Duration) store.Run {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var run store.Run
		c.must(http.StatusOK, "GET", "/api/runs/"+runID, nil, &run)
		if store.RunFinished(run.Status) {
			return run
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("run %s still %s after %s", runID, run.Status, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *client) events(runID string) []store.Event {
	c.t.Helper()
	var all []store.Event
	cursor := ""
	for {
		var page struct {
			Events     []store.Event `json:"events"`
			Total      int           `json:"total"`
			NextCursor *string       `json:"next_cursor"`
		}
		c.must(http.StatusOK, "GET", "/api/runs/"+runID+"/events?limit=1000&cursor="+cursor, nil, &page)
		all = append(all, page.Events...)
		if page.NextCursor == nil {
			if len(all) != page.Total {
				c.t.Fatalf("events: got %d, total says %d", len(all), page.Total)
			}
			return all
		}
		cursor = *page.NextCursor
	}
}

func types(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// sseEvent is one event read from a stream.
type sseEvent struct {
	id    string
	event string
	data  string
}

// readSSE reads a stream until it ends or until stop returns true.
func readSSE(t *testing.T, resp *http.Response, stop func(sseEvent) bool) []sseEvent {
	t.Helper()
	var (
		out []sseEvent
		cur sseEvent
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" || cur.event != "" {
				out = append(out, cur)
				if stop != nil && stop(cur) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func (c *client) openStream(path string, lastEventID string) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("x-org-id", c.scope.OrgID)
	req.Header.Set("x-user-id", c.scope.UserID)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.t.Fatalf("stream %s: %d %s", path, resp.StatusCode, b)
	}
	c.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func eventOf(t *testing.T, e sseEvent) store.Event {
	t.Helper()
	var ev store.Event
	if err := json.Unmarshal([]byte(e.data), &ev); err != nil {
		t.Fatalf("decode sse data %q: %v", e.data, err)
	}
	return ev
}

func payloadOf(t *testing.T, e store.Event) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatalf("payload of %s: %v", e.Type, err)
	}
	return p
}

func assertOrder(t *testing.T, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("events %v do not contain %v in order", got, want)
	}
}
