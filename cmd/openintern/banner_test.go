package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// The start banner describes the address the daemon really bound: a wildcard
// HOST is bound by Go as [::] (every IPv4 and IPv6 address), not "0.0.0.0 only".
func TestBannerDescribesTheBoundAddress(t *testing.T) {
	for _, tc := range []struct {
		host string
		want []string
	}{
		{"127.0.0.1", []string{"loopback 127.0.0.1 only"}},
		{"localhost", []string{"loopback 127.0.0.1 only"}},
		{"0.0.0.0", []string{"anyone who can reach this machine"}},
		{"", []string{"every IPv4 and IPv6 address ([::])", "anyone who can reach this machine"}},
	} {
		ln, err := net.Listen("tcp", net.JoinHostPort(tc.host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		got := describeListener(ln.Addr())
		_ = ln.Close()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("HOST %q bound %s: banner %q lacks %q", tc.host, ln.Addr(), got, w)
			}
		}
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && strings.Contains(got, "only") {
			t.Errorf("HOST %q bound %s: banner %q claims a restriction", tc.host, ip, got)
		}
	}
	for addr, want := range map[string]string{
		"0.0.0.0:3000":     "every IPv4 address (0.0.0.0)",
		"[::]:3000":        "every IPv4 and IPv6 address",
		"[::1]:3000":       "loopback ::1 only",
		"192.0.2.7:3000":   "listening on 192.0.2.7: anyone who can reach",
		"[2001:db8::1]:80": "listening on 2001:db8::1: anyone",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := describeListener(a); !strings.Contains(got, want) {
			t.Errorf("%s: %q lacks %q", addr, got, want)
		}
	}
}

// syncBuffer is a buffer the daemon writes and the test reads at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A non-loopback HOST with auth off refuses to start (exit 2, saying why);
// with --insecure-no-auth it starts, warns, and its banner says who can reach it.
func TestServeBannerOnWildcardHost(t *testing.T) {
	env := map[string]string{"LOG_LEVEL": "warn"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var refusedOut, refusedErr syncBuffer
	if code := run(t.Context(), []string{"serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", t.TempDir()}, &refusedOut, &refusedErr, lookup); code != 2 {
		t.Fatalf("HOST=0.0.0.0 with auth off: exit %d, want 2; stdout %q stderr %q", code, refusedOut.String(), refusedErr.String())
	}
	if msg := refusedErr.String(); !strings.Contains(msg, "--insecure-no-auth") || !strings.Contains(msg, "AUTH=token") {
		t.Errorf("the refusal does not say what to do: %q", msg)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth", "--data-dir", t.TempDir()}, &stdout, &stderr, lookup)
	}()
	waitFor(t, 30*time.Second, "the banner", func() bool { return strings.Contains(stdout.String(), "auth:") })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	banner := stdout.String()
	if strings.Contains(banner, "only") || !strings.Contains(banner, "auth:  off; ") || !strings.Contains(banner, "anyone who can reach this machine") {
		t.Errorf("banner on HOST=0.0.0.0:\n%s", banner)
	}
	if !strings.Contains(stderr.String(), "auth is off on a non-loopback address") {
		t.Errorf("no warning on stderr: %q", stderr.String())
	}
}

// With AUTH=token a non-loopback HOST starts, and the banner says auth is on.
func TestServeWithTokenAuthOnWildcardHost(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := map[string]string{"LOG_LEVEL": "warn", "AUTH": "token"}
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", t.TempDir()}, &stdout, &stderr,
			func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	waitFor(t, 30*time.Second, "the banner", func() bool { return strings.Contains(stdout.String(), "auth:") })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	if banner := stdout.String(); !strings.Contains(banner, "auth:  token (") {
		t.Errorf("banner with AUTH=token:\n%s", banner)
	}
}
