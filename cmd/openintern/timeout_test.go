package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
)

// A client that sends headers and then never the body it announced is cut
// off by the server within ReadTimeout, instead of holding a connection and
// a handler for ever.
func TestSlowBodyIsCutWithinReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	cfg := newConfig(t, "sqlite")
	cfg.ReadTimeout = config.Duration(readTimeout) // below the 1s minimum of the setting, to keep the test short
	d := startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t)})
	conn, err := net.Dial("tcp", d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, "POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
		"x-org-id: o\r\nx-user-id: u\r\nContent-Length: 100\r\n\r\n{\"inp")
	if err != nil {
		t.Fatal(err)
	}
	// The test's own limit is far above the server's, so only the server can end this.
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout + 10*time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	elapsed := time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still waits for the body after %s", elapsed)
	}
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "request_timeout") {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if elapsed > readTimeout+5*time.Second {
		t.Fatalf("cut after %s, read timeout %s", elapsed, readTimeout)
	}
}

// Streams outlive the read timeout: it bounds reading the request, not how
// long the response may go on (net/http lifts it once a body-less request is
// read; a WriteTimeout, by contrast, would cut every stream).
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	cfg := newConfig(t, "sqlite")
	cfg.ReadTimeout = config.Duration(readTimeout)
	d := startMain(t, &daemon.Main{Config: cfg, Logger: testLogger(t), Heartbeat: 50 * time.Millisecond})
	req, _ := http.NewRequest("GET", d.URL()+"/api/agents/main/stream", nil)
	req.Header.Set("x-org-id", "o")
	req.Header.Set("x-user-id", "u")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	for time.Since(start) < 5*readTimeout {
		if !sc.Scan() {
			t.Fatalf("the stream ended after %s (read timeout %s): %v", time.Since(start), readTimeout, sc.Err())
		}
	}
}
