package mcpserve

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/mark3labs/mcp-go/server"
)

// Path is where the daemon serves MCP over streamable HTTP.
const Path = "/mcp"

// forwarded are the headers of an MCP request that make its caller: the
// credential and, with auth off, the scope.
var forwarded = []string{"Authorization", "X-Org-Id", "X-User-Id", "X-Project-Id"}

type callerKey struct{}

// caller is the MCP request's identity, replayed on every API call a tool makes.
type caller struct {
	header     http.Header
	remoteAddr string
	host       string
}

func callerOf(r *http.Request) caller {
	h := http.Header{}
	for _, k := range forwarded {
		if v := r.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	return caller{header: h, remoteAddr: r.RemoteAddr, host: r.Host}
}

// Handler serves MCP at Path for the API served by api (the daemon's
// engine). Before any MCP message is read the caller must pass the API's
// authentication (GET /api/auth/whoami answers 2xx): with AUTH=token a
// request without a valid token is the API's 401, unchanged.
func Handler(api http.Handler) http.Handler {
	client := &API{
		BaseURL: "http://in-process",
		HTTP:    &http.Client{Transport: handlerTransport{h: api}},
		Header: func(ctx context.Context) http.Header {
			c, _ := ctx.Value(callerKey{}).(caller)
			return c.header.Clone()
		},
	}
	mcpHTTP := server.NewStreamableHTTPServer(NewServer(client),
		server.WithEndpointPath(Path),
		// Stateless: every request carries its own credential, so no session
		// can outlive or outrank the token that opened it.
		server.WithStateLess(true),
		server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
			return context.WithValue(ctx, callerKey{}, callerOf(r))
		}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), callerKey{}, callerOf(r))
		check, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://in-process/api/auth/whoami", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		check.Header = callerOf(r).header.Clone()
		resp, err := client.HTTP.Do(check)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			return
		}
		mcpHTTP.ServeHTTP(w, r)
	})
}

// handlerTransport answers a request with a handler in process; the body is
// a pipe, so streams (SSE) arrive as they are written and closing the body
// ends the handler's writes.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c, ok := req.Context().Value(callerKey{}).(caller); ok {
		req.RemoteAddr, req.Host = c.remoteAddr, c.host
	}
	if req.RemoteAddr == "" {
		req.RemoteAddr = "127.0.0.1:0"
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RequestURI = req.URL.RequestURI()
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			w.writeHeader(http.StatusOK)
			_ = pw.Close()
		}()
		t.h.ServeHTTP(w, req)
	}()
	<-w.ready
	return &http.Response{
		StatusCode: w.status, Status: http.StatusText(w.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, Body: pr, Request: req, ContentLength: -1,
	}, nil
}

type pipeWriter struct {
	header http.Header
	sent   http.Header
	status int
	pw     *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) writeHeader(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) WriteHeader(status int) { w.writeHeader(status) }

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	n, err := w.pw.Write(p)
	if err != nil {
		return n, err
	}
	return n, nil
}

// Flush is a no-op: the pipe hands every write to the reader at once.
func (w *pipeWriter) Flush() {}
