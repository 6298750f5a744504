package mcptools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/openintern/openintern/config"
)

// conn is one connection to a server: a started child process, or an HTTP
// session. dead is closed when it cannot be used any more.
type conn struct {
	client    *client.Client
	transport string

	dead     chan struct{}
	deadOnce sync.Once
	mu       sync.Mutex
	err      error

	cmd      *exec.Cmd     // stdio only
	exited   chan struct{} // stdio: closed when the process was waited for
	stderr   *tail
	checking sync.Mutex
}

func (c *conn) die(err error) {
	c.deadOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.dead)
	})
}

func (c *conn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return errors.New("connection lost")
	}
	return c.err
}

// check pings a server after a failed call: one that does not answer is
// declared dead, so the supervisor restarts it.
func (c *conn) check() {
	if !c.checking.TryLock() {
		return
	}
	defer c.checking.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	//nolint:staticcheck // the connection is on the legacy protocol (clientOptions), where ping is sent
	if err := c.client.Ping(ctx); err != nil {
		c.die(fmt.Errorf("the server stopped answering: %w", err))
	}
}

// close ends the connection; a child process gets its stdin closed, then
// SIGTERM, then SIGKILL (its whole process group: npx starts node under it).
func (c *conn) close() {
	_ = c.client.Close()
	if c.cmd == nil {
		c.die(errors.New("closed"))
		return
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{0, 2 * time.Second}, {syscall.SIGTERM, 3 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		if step.sig != 0 {
			_ = syscall.Kill(-c.cmd.Process.Pid, step.sig)
		}
		t := time.NewTimer(step.wait)
		select {
		case <-c.exited:
			t.Stop()
			// The group may outlive its leader: end the rest too.
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			return
		case <-t.C:
		}
	}
}

func (s *server) connect(life, ctx context.Context) (*conn, error) {
	if s.cfg.Transport() == config.MCPStdio {
		return s.connectStdio(life, ctx)
	}
	return s.connectHTTP(life, ctx)
}

func clientOptions() []client.ClientOption {
	// The classic initialize handshake: notifications/tools/list_changed
	// then arrive on the session (the 2026 stateless protocol needs a
	// subscription stream for them), and every server in use speaks it.
	return []client.ClientOption{client.WithLegacyProtocolOnly()} //nolint:staticcheck // deliberate, see above
}

func initRequest() mcp.InitializeRequest {
	var req mcp.InitializeRequest
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "openintern", Version: "1"}
	return req
}

// passedEnv are the daemon's environment variables a stdio server gets,
// besides its configured env: what a program needs to run, not the daemon's
// secrets (API keys, database URL).
var passedEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
	"NODE_PATH", "NODE_EXTRA_CA_CERTS", "npm_config_cache", "NPM_CONFIG_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"}

func (s *server) env() []string {
	var env []string
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.cfg.Env)) {
		env = append(env, k+"="+s.cfg.Env[k])
	}
	return env
}

func (s *server) connectStdio(life, ctx context.Context) (*conn, error) {
	cmd := exec.Command(s.cfg.Command, s.cfg.Args...)
	cmd.Env = s.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait returns this long after the process exits even if a grandchild
	// still holds its stderr.
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &conn{transport: config.MCPStdio, dead: make(chan struct{}), exited: make(chan struct{}), cmd: cmd, stderr: &tail{max: 4 << 10}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.cfg.Command, err)
	}
	go func() {
		err := cmd.Wait()
		close(c.exited)
		if err == nil {
			err = errors.New("exited")
		}
		if msg := c.stderr.String(); msg != "" {
			err = fmt.Errorf("process ended: %w; stderr: %s", err, msg)
		} else {
			err = fmt.Errorf("process ended: %w", err)
		}
		c.die(err)
	}()
	c.client = client.NewClient(transport.NewIO(stdout, stdin, nil), clientOptions()...)
	c.client.OnNotification(s.onNotification)
	if err := s.start(life, ctx, c); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// start starts the client (its reader lives as long as the connection) and
// initializes the session.
func (s *server) start(life, ctx context.Context, c *conn) error {
	if err := c.client.Start(life); err != nil {
		return fmt.Errorf("start client: %w", err)
	}
	if _, err := c.client.Initialize(ctx, initRequest()); err != nil {
		if c.exited != nil {
			// A process that closed its output is usually exiting: its
			// exit status and stderr say more than "transport closed".
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case <-c.dead:
				return fmt.Errorf("initialize: %w", c.deadErr())
			case <-t.C:
			}
		}
		return fmt.Errorf("initialize: %w", err)
	}
	return nil
}

func (s *server) connectHTTP(life, ctx context.Context) (*conn, error) {
	headers := s.cfg.Headers
	if s.headers != nil {
		var err error
		if headers, err = s.headers(); err != nil {
			return nil, err
		}
	}
	var streamErr error
	if s.cfg.Transport() == config.MCPHTTP {
		opts := []transport.StreamableHTTPCOption{transport.WithHTTPHeaders(headers),
			//nolint:staticcheck // legacy protocol: tools/list_changed comes on the standalone GET stream
			transport.WithContinuousListening(), transport.WithHTTPLogger(s.transportLogger())}
		if s.client != nil {
			opts = append(opts, transport.WithHTTPBasicClient(s.client))
		}
		tr, err := transport.NewStreamableHTTP(s.cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("streamable http: %w", err)
		}
		c := &conn{transport: config.MCPHTTP, dead: make(chan struct{}), client: client.NewClient(tr, clientOptions()...)}
		c.client.OnNotification(s.onNotification)
		if streamErr = s.start(life, ctx, c); streamErr == nil {
			return c, nil
		}
		_ = c.client.Close()
		if ctx.Err() != nil || s.noFallback {
			return nil, fmt.Errorf("streamable http: %w", streamErr)
		}
	}
	// The 2024-11-05 HTTP+SSE transport, for servers that do not speak
	// streamable HTTP.
	sseOpts := []transport.ClientOption{transport.WithHeaders(headers), transport.WithSSELogger(s.transportLogger())}
	if s.client != nil {
		sseOpts = append(sseOpts, transport.WithHTTPClient(s.client))
	}
	tr, err := transport.NewSSE(s.cfg.URL, sseOpts...)
	if err != nil {
		return nil, errors.Join(streamErr, fmt.Errorf("sse: %w", err))
	}
	c := &conn{transport: config.MCPSSE, dead: make(chan struct{}), client: client.NewClient(tr, clientOptions()...)}
	c.client.OnNotification(s.onNotification)
	c.client.OnConnectionLost(func(err error) { c.die(fmt.Errorf("sse stream lost: %w", err)) })
	if err := s.start(life, ctx, c); err != nil {
		_ = c.client.Close()
		if streamErr != nil {
			return nil, fmt.Errorf("streamable http: %v; sse: %w", streamErr, err)
		}
		return nil, fmt.Errorf("sse: %w", err)
	}
	return c, nil
}

func (s *server) transportLogger() *slog.Logger {
	return s.m.logger.With(s.logAttrs()...)
}

// tail keeps the last max bytes written (a child's stderr), for the error
// that says why it ended.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, nil)))
}

var _ io.Writer = (*tail)(nil)
