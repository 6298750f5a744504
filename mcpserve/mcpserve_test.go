package mcpserve

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// The in-process transport hands a stream over as it is written (the reader
// sees the first event while the handler still waits), and closing the body
// ends the handler.
func TestHandlerTransportStreams(t *testing.T) {
	proceed, ended := make(chan struct{}), make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-proceed
		for {
			if _, err := io.WriteString(w, "data: more\n\n"); err != nil {
				ended <- err
				return
			}
		}
	})
	c := &http.Client{Transport: handlerTransport{h: h}}
	resp, err := c.Get("http://in-process/stream")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("answer %d %v", resp.StatusCode, resp.Header)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(proceed)
	_ = resp.Body.Close()
	if err := <-ended; err == nil {
		t.Fatal("the handler's write after close succeeded")
	}
}

// send_message with wait gives up after timeout_seconds on a run that does not
// end, as a tool error that names the run, and the stream is closed.
func TestSendMessageWaitTimesOut(t *testing.T) {
	streamDone := make(chan struct{})
	api := http.NewServeMux()
	api.HandleFunc("GET /api/auth/whoami", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{}`) })
	api.HandleFunc("POST /api/runs", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"run_id":"run_slow","status":"pending"}`)
	})
	api.HandleFunc("GET /api/runs/run_slow/stream", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(streamDone)
	})
	api.HandleFunc("GET /api/runs/run_slow", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"run_id":"run_slow","status":"running"}`)
	})
	srv := httptest.NewServer(Handler(api))
	defer srv.Close()
	c, err := client.NewStreamableHttpClient(srv.URL+Path, transport.WithHTTPHeaders(map[string]string{"x-org-id": "o", "x-user-id": "u"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "send_message"
	req.Params.Arguments = map[string]any{"agent_id": "a", "content": "hi", "wait": true, "timeout_seconds": 1}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(res.Content[0].(mcp.TextContent).Text, "run_slow is still running") {
		t.Fatalf("result %+v", res)
	}
	<-streamDone
}
