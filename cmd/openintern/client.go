package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openintern/openintern/store"
)

// Client settings: environment variables, overridden by flags.
const (
	defaultDaemonURL = "http://127.0.0.1:3000"
	defaultOrgID     = "org_default"
	defaultUserID    = "user_default"
)

// requestTimeout bounds every non-streaming API call, so a hung daemon gives
// an error instead of a silent wait.
const requestTimeout = 30 * time.Second

// clientOptions is how a client command reaches the daemon and how it prints.
type clientOptions struct {
	URL     string
	Org     string
	User    string
	Project string
	Token   string
	JSON    bool
}

// addClientFlags registers the flags every client command shares. They are
// added per command (not on the root) so that daemon commands stay uncluttered.
func addClientFlags(fs *pflag.FlagSet) {
	fs.String("url", "", "daemon URL (OPENINTERN_URL; default "+defaultDaemonURL+")")
	fs.String("org", "", "org id of the scope (AGENT_ORG_ID; default "+defaultOrgID+")")
	fs.String("user", "", "user id of the scope (AGENT_USER_ID; default "+defaultUserID+")")
	fs.String("project", "", "project id of the scope (AGENT_PROJECT_ID)")
	fs.Bool("json", false, "print JSON for scripts instead of text")
}

// clientOptionsFrom layers defaults < environment < flags.
func clientOptionsFrom(cmd *cobra.Command, lookupEnv func(string) (string, bool)) clientOptions {
	env := func(name, def string) string {
		if v, ok := lookupEnv(name); ok && v != "" {
			return v
		}
		return def
	}
	// A token carries its org and user: the defaults would only contradict it.
	token := env("OPENINTERN_TOKEN", "")
	defOrg, defUser := defaultOrgID, defaultUserID
	if token != "" {
		defOrg, defUser = "", ""
	}
	o := clientOptions{
		URL:     env("OPENINTERN_URL", defaultDaemonURL),
		Org:     env("AGENT_ORG_ID", defOrg),
		User:    env("AGENT_USER_ID", defUser),
		Project: env("AGENT_PROJECT_ID", ""),
		Token:   token,
	}
	fs := cmd.Flags()
	for name, dst := range map[string]*string{"url": &o.URL, "org": &o.Org, "user": &o.User, "project": &o.Project} {
		if fs.Changed(name) {
			*dst, _ = fs.GetString(name)
		}
	}
	o.JSON, _ = fs.GetBool("json")
	o.URL = strings.TrimRight(o.URL, "/")
	return o
}

// scopeHint names the scope for "not found" errors: with scoping, a wrong org
// or user looks exactly like a missing id, so the message says which was used.
func (o clientOptions) scopeHint() string {
	if o.Org == "" && o.User == "" {
		s := "the token's scope"
		if o.Project != "" {
			s += ", project " + o.Project
		}
		return s
	}
	s := "org " + o.Org + ", user " + o.User
	if o.Project != "" {
		s += ", project " + o.Project
	}
	return s
}

// apiClient is a small typed client of the OpenIntern REST API.
type apiClient struct {
	opts clientOptions
	http *http.Client
}

func newAPIClient(opts clientOptions) (*apiClient, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("daemon URL %q must be http(s)://host:port (OPENINTERN_URL or --url)", opts.URL)
	}
	// No client-wide timeout: streams stay open for as long as a run lasts.
	// Plain calls get requestTimeout through their context instead.
	return &apiClient{opts: opts, http: &http.Client{}}, nil
}

// apiError is the API's {"error":{"code","message"}} answer as a Go error.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the daemon answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// unreachableError says the daemon could not be reached at all; it keeps the
// cause for errors.Is but prints a hint instead of a bare dial error.
type unreachableError struct {
	url string
	err error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the daemon at %s (start it with `openintern serve`, or set OPENINTERN_URL / --url): %v", e.url, rootCause(e.err))
}
func (e *unreachableError) Unwrap() error { return e.err }

// rootCause drops the url.Error wrapper, whose text repeats method and URL.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *apiClient) newRequest(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.opts.URL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "openintern-cli/"+version)
	if c.opts.Org != "" {
		req.Header.Set("x-org-id", c.opts.Org)
	}
	if c.opts.User != "" {
		req.Header.Set("x-user-id", c.opts.User)
	}
	if c.opts.Project != "" {
		req.Header.Set("x-project-id", c.opts.Project)
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	return req, nil
}

// do sends a request and decodes a 2xx JSON answer into out (when not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return decodeAPIError(resp.StatusCode, raw)
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (c *apiClient) transportError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.Is(err, io.EOF) {
		return &unreachableError{url: c.opts.URL, err: err}
	}
	return fmt.Errorf("request to %s: %w", c.opts.URL, rootCause(err))
}

func decodeAPIError(status int, raw []byte) error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	ae := &apiError{Status: status}
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		ae.Code, ae.Message = body.Error.Code, body.Error.Message
	} else if s := strings.TrimSpace(string(raw)); s != "" && len(s) < 200 && !strings.Contains(s, "\n") {
		ae.Message = fmt.Sprintf("the daemon answered %d: %s", status, s)
	}
	return ae
}

// ---------------------------------------------------------------- runs

// createRunResponse is the answer of POST /api/runs.
type createRunResponse struct {
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	AgentID    string    `json:"agent_id"`
	SessionKey string    `json:"session_key"`
}

func (c *apiClient) createRun(ctx context.Context, agentID, session, input string) (createRunResponse, error) {
	var out createRunResponse
	err := c.do(ctx, http.MethodPost, "/api/runs", map[string]string{"agent_id": agentID, "session_key": session, "input": input}, &out)
	return out, err
}

// runNotFound turns the API's 404 into a message naming the id and the scope.
func (c *apiClient) runNotFound(runID string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("run %s not found (in %s)", runID, c.opts.scopeHint())
	}
	return err
}

func (c *apiClient) getRun(ctx context.Context, runID string) (store.Run, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/api/runs/"+url.PathEscape(runID), nil, &raw); err != nil {
		return store.Run{}, nil, c.runNotFound(runID, err)
	}
	var run store.Run
	if err := json.Unmarshal(raw, &run); err != nil {
		return store.Run{}, nil, fmt.Errorf("decode run: %w", err)
	}
	return run, raw, nil
}

func (c *apiClient) cancelRun(ctx context.Context, runID string) error {
	return c.runNotFound(runID, c.do(ctx, http.MethodPost, "/api/runs/"+url.PathEscape(runID)+"/cancel", nil, nil))
}

// runEvents pages through GET /api/runs/:id/events with next_cursor and
// returns every stored event after the event id after (0: all), each exactly
// as the API sent it.
func (c *apiClient) runEvents(ctx context.Context, runID string, after int64) ([]json.RawMessage, error) {
	var all []json.RawMessage
	cursor := ""
	if after > 0 {
		cursor = strconv.FormatInt(after, 10)
	}
	for {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			Total      int               `json:"total"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/runs/"+url.PathEscape(runID)+"/events?"+q.Encode(), nil, &page); err != nil {
			return nil, c.runNotFound(runID, err)
		}
		all = append(all, page.Events...)
		if page.NextCursor == nil || *page.NextCursor == "" || len(page.Events) == 0 {
			return all, nil
		}
		cursor = *page.NextCursor
	}
}

// ---------------------------------------------------------------- SSE

// streamEvent is one event read from an SSE stream: the decoded envelope and
// its raw JSON (printed as is by --json).
type streamEvent struct {
	store.Event
	Raw json.RawMessage
}

// Reconnect policy of followStream: a run outlives a daemon restart, so the
// client keeps trying for a while before giving up.
const (
	reconnectMin      = 200 * time.Millisecond
	reconnectMax      = 3 * time.Second
	reconnectAttempts = 20
)

// followStream reads an SSE stream (path such as /api/runs/:id/stream) and
// calls fn for every event until the server sends `event: end`, fn fails,
// or ctx is done. A dropped connection is resumed with
// Last-Event-ID, so stored events are neither missed nor repeated; live-only
// events (llm.token) sent while disconnected are lost, which callers handle.
// after is the id of the last event already seen (0: from the start); the
// id of the last stored event handled is returned.
func (c *apiClient) followStream(ctx context.Context, path string, after int64, fn func(streamEvent) error) (int64, error) {
	lastID := after
	failures := 0
	var lastErr error
	for {
		if ctx.Err() != nil {
			return lastID, ctx.Err()
		}
		progressed, ended, err := c.readStreamOnce(ctx, path, &lastID, fn)
		switch {
		case ended:
			return lastID, nil
		case ctx.Err() != nil:
			return lastID, ctx.Err()
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Status/100 == 4 {
			return lastID, err // a bad id or scope will not get better by retrying
		}
		if err != nil && !isRetryable(err) {
			return lastID, err
		}
		if progressed {
			failures = 0
		}
		failures++
		if err != nil {
			lastErr = err
		}
		if failures > reconnectAttempts {
			if lastErr == nil {
				lastErr = errors.New("the stream kept closing without an end")
			}
			return lastID, fmt.Errorf("lost the stream %s after %d reconnects: %w", path, reconnectAttempts, lastErr)
		}
		delay := reconnectMin << min(failures-1, 4)
		if delay > reconnectMax {
			delay = reconnectMax
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return lastID, ctx.Err()
		case <-t.C:
		}
	}
}

// drainEnded reads what follows a stream's end event: the daemon ends the
// response right after it, and only a body read to its end lets the
// connection be reused (else every turn of `openintern bench` dialled anew,
// and the daemon spent its CPU accepting and closing connections). A server
// that keeps the response open is cut off after a second.
func drainEnded(body io.ReadCloser) {
	stop := time.AfterFunc(time.Second, func() { _ = body.Close() })
	defer stop.Stop()
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
}

// retryableError marks stream failures worth a reconnect (dropped
// connections, 5xx, daemon restarting).
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func isRetryable(err error) bool {
	var re *retryableError
	return errors.As(err, &re)
}

// readStreamOnce holds one connection. progressed reports whether any event
// arrived (then the reconnect backoff starts over); ended whether the server
// closed the stream with `event: end`.
func (c *apiClient) readStreamOnce(ctx context.Context, path string, lastID *int64, fn func(streamEvent) error) (progressed, ended bool, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return false, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*lastID, 10))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, false, &retryableError{c.transportError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		apiErr := decodeAPIError(resp.StatusCode, raw)
		if resp.StatusCode >= 500 {
			return false, false, &retryableError{apiErr}
		}
		return false, false, apiErr
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4<<10), 16<<20) // grows as long lines need it
	var (
		id, event string
		data      strings.Builder
	)
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				if data.Len() > 0 {
					data.WriteByte('\n')
				}
				data.WriteString(value)
			}
			// "" (a comment such as the heartbeat) and unknown fields are ignored.
			continue
		}
		// A blank line dispatches the event.
		if event == "end" {
			drainEnded(resp.Body)
			return progressed, true, nil
		}
		if data.Len() > 0 {
			raw := json.RawMessage(data.String())
			var ev streamEvent
			if err := json.Unmarshal(raw, &ev.Event); err != nil {
				return progressed, false, fmt.Errorf("decode stream event %q: %w", truncate(data.String(), 80), err)
			}
			ev.Raw = raw
			if id != "" {
				if n, err := strconv.ParseInt(id, 10, 64); err == nil {
					*lastID = n
				}
			}
			progressed = true
			if err := fn(ev); err != nil {
				return progressed, false, err
			}
		}
		id, event = "", ""
		data.Reset()
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return progressed, false, &retryableError{fmt.Errorf("stream read: %w", err)}
	}
	return progressed, false, &retryableError{errors.New("the daemon closed the stream before the run ended")}
}

// ---------------------------------------------------------------- agents

// agentView is an agent as the API shows it: the store's own type, whose
// JSON is the API's.
type agentView = store.Agent

func (c *apiClient) agentNotFound(agentID string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("agent %s not found (in %s)", agentID, c.opts.scopeHint())
	}
	return err
}

func agentPath(id string) string { return "/api/agents/" + url.PathEscape(id) }

// isTerminal reports whether w is a terminal (a character device), without
// an ioctl: enough to decide on colour and live redraws.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// truncate shortens s to n runes with an ellipsis, on one line.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
