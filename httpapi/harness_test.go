package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/mailbox"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/policy"
	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
)

// storeKinds are the stores the API tests run against.
var storeKinds = []string{"sqlite", "postgres"}

// harness is the API over a real store, bus, mailbox and actors runtime with
// the offline model, served by httptest on loopback.
type harness struct {
	t     *testing.T
	srv   *httptest.Server
	api   *Server
	store store.Store
	reg   *tools.Registry
	mem   *memory.Service
}

type harnessOpt func(*Deps)

// boardRecorder stores blackboard events and publishes them, as the daemon does.
type boardRecorder struct {
	st  store.EventStore
	bus events.Bus
}

func (r boardRecorder) RecordEvents(ctx context.Context, evs []store.Event) error {
	_, err := events.Recorder{Bus: r.bus}.Stored(r.st.AppendEvents(ctx, evs))
	return err
}

func newHarness(t *testing.T, kind string, opts ...harnessOpt) *harness {
	t.Helper()
	if kind == "postgres" {
		return newHarnessURL(t, testenv.PostgresURL(t), opts...)
	}
	return newHarnessOn(t, kind, "", opts...)
}

// newHarnessURL is a harness on the PostgreSQL database at url, for tests
// that also reach into the database.
func newHarnessURL(t *testing.T, url string, opts ...harnessOpt) *harness {
	t.Helper()
	return newHarnessOn(t, "postgres", url, opts...)
}

func newHarnessOn(t *testing.T, kind, url string, opts ...harnessOpt) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var (
		st     store.Store
		memSt  memory.Store
		closer func() error
	)
	switch kind {
	case "sqlite":
		lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "openintern.db"), logger)
		if err != nil {
			t.Fatal(err)
		}
		st, memSt, closer = lite, lite.Memory(), lite.Close
	case "postgres":
		pg, err := postgres.Open(ctx, url, logger)
		if err != nil {
			t.Fatal(err)
		}
		st, memSt, closer = pg, pg.Memory(), pg.Close
	default:
		t.Fatalf("unknown store %q", kind)
	}
	t.Cleanup(func() { _ = closer() })
	bus := events.NewMemoryBus(256)
	t.Cleanup(func() { _ = bus.Close() })

	memSvc, err := memory.New(memory.Config{Store: memSt, Embedder: memory.NewHashEmbedder(0), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	registry := tools.NewRegistry(tools.WithLogger(logger))
	board := memory.NewBlackboard(memSvc, boardRecorder{st, bus})
	rt := actors.New(actors.Config{IdleTimeout: time.Minute}, st, bus, llm.NewOffline(), registry, logger)
	mb := mailbox.New(st, rt, logger)
	mb.Start()
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = mb.Stop(ctx)
		_ = rt.Stop(ctx)
	})
	deps := Deps{
		Store: st, Mailbox: mb, Runtime: rt, Bus: bus, Blackboard: board, Logger: logger,
		ToolNames:     func() []string { return []string{"memory_search", "read_file", "send_message"} },
		RestrictHosts: true,
	}
	for _, o := range opts {
		o(&deps)
	}
	api := New(deps)
	api.MountMemory(memSvc)
	eng, err := policy.New(st.(store.PolicyStore), policy.Config{Defaults: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	api.MountPolicy(eng)
	api.MountSkills(skills.NewCatalog(st.(store.SkillStore), nil, skills.Limits{}, nil))
	api.MountJobs(JobsConfig{Store: st.(Jobs), Poll: 20 * time.Millisecond})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, api: api, store: st, reg: registry, mem: memSvc}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// request is one call; zero fields take defaults (scope o1/u1, JSON content type when a body is set).
type request struct {
	method, path string
	body         string
	header       map[string]string // "" value deletes the default header
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object (status %d): %v: %q", r.status, err, r.body)
	}
	return m
}

// errorCode returns the code of a JSON error body, failing the test if the
// body is not the API's error shape.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: not a JSON error: %q", r.status, r.body)
	}
	return e.Error.Code
}

func (h *harness) do(rq request) response {
	h.t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequest(rq.method, h.srv.URL+rq.path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	hdr := map[string]string{"x-org-id": "o1", "x-user-id": "u1"}
	if rq.body != "" {
		hdr["Content-Type"] = "application/json"
	}
	for k, v := range rq.header {
		hdr[k] = v
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// must does rq and fails unless the status is want.
func (h *harness) must(want int, rq request) response {
	h.t.Helper()
	r := h.do(rq)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", rq.method, rq.path, r.status, want, bytes.TrimSpace(r.body))
	}
	return r
}

// wantError does rq and fails unless it is a JSON error with this status (and code, if set).
func (h *harness) wantError(status int, code string, rq request) response {
	h.t.Helper()
	r := h.do(rq)
	if r.status != status {
		h.t.Fatalf("%s %s: status %d, want %d: %s", rq.method, rq.path, r.status, status, bytes.TrimSpace(r.body))
	}
	if got := r.errorCode(h.t); code != "" && got != code {
		h.t.Fatalf("%s %s: error code %q, want %q: %s", rq.method, rq.path, got, code, r.body)
	}
	return r
}
