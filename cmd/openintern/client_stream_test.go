package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestFollowStreamReusesItsConnection: a stream read to its end event leaves
// its connection for the next request (the bench follows one stream a turn),
// and a server that keeps the response open after the end event does not
// hold the client for more than the drain's second.
func TestFollowStreamReusesItsConnection(t *testing.T) {
	var dialled atomic.Int32
	hold := make(chan struct{})
	defer close(hold)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "id: 1\ndata: {\"id\":1,\"type\":\"run.completed\"}\n\nevent: end\ndata: {\"reason\":\"run.completed\"}\n\n")
		w.(http.Flusher).Flush()
		// The response's end follows its end event, a moment later.
		time.Sleep(20 * time.Millisecond)
		if r.URL.Query().Get("hold") != "" {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := newAPIClient(clientOptions{URL: srv.URL, Org: "o", User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		got := 0
		if _, err := c.followStream(ctx, "/api/runs/r1/stream", 0, func(streamEvent) error { got++; return nil }); err != nil {
			t.Fatal(err)
		}
		if got != 1 {
			t.Fatalf("stream %d: %d events, want 1", i, got)
		}
	}
	if n := dialled.Load(); n != 1 {
		t.Fatalf("3 streams read to their end took %d connections, want 1", n)
	}

	start := time.Now()
	if _, err := c.followStream(ctx, "/api/runs/r1/stream?hold=1", 0, func(streamEvent) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a response kept open after its end event held the client %v", took)
	}
}
