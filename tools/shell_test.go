package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newTestShell builds a shell tool on a fresh workspace. bwrap is installed
// by scripts/services.sh; its absence is a failure, not a skip.
func newTestShell(t *testing.T, cfg ShellConfig) (*Shell, string) {
	t.Helper()
	if cfg.Workspace == "" {
		cfg.Workspace = filepath.Join(t.TempDir(), "ws")
	}
	s, err := NewShell(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewShell: %v", err)
	}
	return s, cfg.Workspace
}

func runShell(t *testing.T, s *Shell, command string) Result {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"command": command})
	res, err := s.Run(context.Background(), Call{Name: "shell", Args: raw})
	if err != nil {
		t.Fatalf("shell %q: %v", command, err)
	}
	return res
}

func TestShellRuns(t *testing.T) {
	s, ws := newTestShell(t, ShellConfig{})
	res := runShell(t, s, `echo hello; echo oops >&2; pwd; echo data > out.txt; mkdir -p d/e && echo x > d/e/f; exit 3`)
	if !res.IsError || !strings.HasPrefix(res.Content, "exit code: 3 (") ||
		!strings.Contains(res.Content, "stdout:\nhello\n"+ShellWorkdir+"\n") || !strings.Contains(res.Content, "stderr:\noops\n") {
		t.Fatalf("result: %q", res.Content)
	}
	if data, err := os.ReadFile(filepath.Join(ws, "out.txt")); err != nil || string(data) != "data\n" {
		t.Fatalf("out.txt: %q, %v", data, err)
	}
	if data, err := os.ReadFile(filepath.Join(ws, "d/e/f")); err != nil || string(data) != "x\n" {
		t.Fatalf("d/e/f: %q, %v", data, err)
	}
	res = runShell(t, s, `cat out.txt; env | sort`)
	if res.IsError || !strings.Contains(res.Content, "stdout:\ndata\n") || !strings.Contains(res.Content, "stderr: (empty)") {
		t.Fatalf("second run: %q", res.Content)
	}
	// The daemon's environment (API keys and the like) does not reach the command.
	for _, env := range os.Environ() {
		k, _, _ := strings.Cut(env, "=")
		if k != "PATH" && k != "HOME" && k != "LANG" && k != "TERM" && k != "PWD" && k != "SHLVL" && k != "_" && strings.Contains(res.Content, "\n"+k+"=") {
			t.Errorf("environment variable %s leaked into the sandbox", k)
		}
	}
}

// TestShellNoNetwork: a listener on the host's loopback sees no connection
// from the sandbox, by bash's /dev/tcp or by curl.
func TestShellNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	port := ln.Addr().(*net.TCPAddr).Port

	s, _ := newTestShell(t, ShellConfig{})
	cmds := []string{
		fmt.Sprintf(`echo x > /dev/tcp/127.0.0.1/%d && echo CONNECTED`, port),
		fmt.Sprintf(`bash -c 'echo > /dev/tcp/127.0.0.1/%d' && echo CONNECTED`, port),
		fmt.Sprintf(`curl -sS -m 5 http://127.0.0.1:%d/ && echo CONNECTED`, port),
		fmt.Sprintf(`curl -sS -m 5 http://[::1]:%d/ && echo CONNECTED`, port),
		`curl -sS -m 5 http://93.184.215.14/ && echo CONNECTED`,
		`echo x > /dev/tcp/93.184.215.14/80 && echo CONNECTED`,
		`cat /proc/net/route; ls /sys/class/net 2>/dev/null; ip -o link 2>/dev/null; true`,
	}
	for _, c := range cmds {
		res := runShell(t, s, c)
		if strings.Contains(res.Content, "CONNECTED") {
			t.Errorf("%s: connected: %q", c, res.Content)
		}
		t.Logf("%s -> %s", c, res.Content)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("the host listener accepted %d connections from the sandbox", n)
	}
}

// TestShellCannotWriteOutside: writes anywhere but the workspace fail or
// land in the sandbox's throwaway /tmp; the host is untouched.
func TestShellCannotWriteOutside(t *testing.T) {
	base := t.TempDir()
	ws := filepath.Join(base, "ws")
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "keep.txt"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ws, "out_link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/keep.txt", filepath.Join(ws, "file_link")); err != nil {
		t.Fatal(err)
	}
	before := treeDigest(t, outside)
	marker := fmt.Sprintf("/tmp/openintern-shell-escape-%d", time.Now().UnixNano())
	s, _ := newTestShell(t, ShellConfig{Workspace: ws})

	script := strings.Join([]string{
		"echo pwned > " + filepath.Join(outside, "new.txt"),
		"echo pwned >> " + filepath.Join(outside, "keep.txt"),
		"echo pwned > out_link/new.txt",
		"echo pwned >> file_link",
		"echo pwned > ../outside/new.txt",
		"echo pwned > /workspace/../new.txt",
		"mkdir -p " + outside + " && echo pwned > " + filepath.Join(outside, "new2.txt"),
		"echo pwned > " + marker,
		"touch /usr/pwned /etc/pwned /pwned /bin/pwned",
		"cp /bin/true /usr/bin/pwned",
		"ln -s " + outside + " newlink && echo pwned > newlink/new3.txt",
		"cat /etc/shadow",
		"ls " + base,
		"echo done",
	}, "; ")
	res := runShell(t, s, script)
	t.Logf("%s", res.Content)
	if !strings.Contains(res.Content, "done") {
		t.Fatalf("the script did not run: %q", res.Content)
	}
	if strings.Contains(res.Content, "root:") {
		t.Fatalf("/etc/shadow was readable: %q", res.Content)
	}
	if after := treeDigest(t, outside); after != before {
		t.Fatalf("outside changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	for _, p := range []string{marker, "/usr/pwned", "/etc/pwned", "/pwned", "/usr/bin/pwned", filepath.Join(base, "new.txt")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was created on the host", p)
		}
	}
	entries, _ := os.ReadDir(base)
	if len(entries) != 2 {
		t.Errorf("entries beside the workspace: %v", entries)
	}
}

func TestShellLimits(t *testing.T) {
	t.Run("cpu", func(t *testing.T) {
		s, _ := newTestShell(t, ShellConfig{CPUSeconds: 1, Timeout: 40 * time.Second})
		res := runShell(t, s, `while :; do :; done`)
		if !res.IsError || !strings.Contains(res.Content, "CPU limit") {
			t.Fatalf("runaway loop: %q", res.Content)
		}
	})
	t.Run("wall time", func(t *testing.T) {
		s, _ := newTestShell(t, ShellConfig{Timeout: time.Second})
		res := runShell(t, s, `sleep 600 & sleep 600`)
		if !res.IsError || !strings.Contains(res.Content, "killed: the command ran longer than 1s") {
			t.Fatalf("sleep: %q", res.Content)
		}
		if n := countProcs(t, "600"); n != 0 {
			t.Fatalf("%d sleep processes outlived the command", n)
		}
	})
	t.Run("memory", func(t *testing.T) {
		s, _ := newTestShell(t, ShellConfig{MemoryMB: 64})
		res := runShell(t, s, `x=$(head -c 200000000 /dev/zero | tr '\0' x); echo ${#x}`)
		if !res.IsError || strings.Contains(res.Content, "200000000") {
			t.Fatalf("200 MB in a 64 MiB sandbox: %q", res.Content)
		}
	})
	t.Run("file size", func(t *testing.T) {
		s, ws := newTestShell(t, ShellConfig{FileMB: 1})
		res := runShell(t, s, `head -c 5000000 /dev/zero > big.bin`)
		if !res.IsError {
			t.Fatalf("5 MB file under a 1 MiB limit: %q", res.Content)
		}
		if info, err := os.Stat(filepath.Join(ws, "big.bin")); err != nil || info.Size() > 1<<20 {
			t.Fatalf("big.bin: %v %v", info, err)
		}
	})
	t.Run("fork bomb", func(t *testing.T) {
		s, _ := newTestShell(t, ShellConfig{MaxProcs: 32, Timeout: 5 * time.Second})
		if !s.ProcessLimited() {
			t.Fatal("no process limit can be enforced here: the daemon runs as root and no pids cgroup could be made")
		}
		// A bounded bomb: 2000 background sleeps in a 32-process sandbox.
		res := runShell(t, s, `n=0; for i in $(seq 2000); do sleep 577 2>/dev/null & n=$((n+1)); done 2>/dev/null; echo "started $(jobs -p | wc -l)"; exit 0`)
		if strings.Contains(res.Content, "started 2000") {
			t.Fatalf("2000 processes started in a 32-process sandbox: %q", res.Content)
		}
		t.Logf("%s", res.Content)
		if n := countProcs(t, "577"); n != 0 {
			t.Fatalf("%d sleep processes outlived the command", n)
		}
		res = runShell(t, s, `f(){ f | f & }; f; sleep 2; echo survived`)
		t.Logf("fork bomb: %s", res.Content)
		if n := countProcs(t, "bash"); n > 50 {
			t.Fatalf("%d bash processes on the host after the bomb", n)
		}
	})
	t.Run("output", func(t *testing.T) {
		s, _ := newTestShell(t, ShellConfig{MaxOutputBytes: 4096, Timeout: 2 * time.Second})
		res := runShell(t, s, `head -c 1000000 /dev/zero | tr '\0' a; head -c 100000 /dev/zero | tr '\0' b >&2`)
		if res.IsError || !strings.Contains(res.Content, "[stdout truncated: showing 4096 of 1000000 bytes]") ||
			!strings.Contains(res.Content, "[stderr truncated: showing 4096 of 100000 bytes]") || len(res.Content) > DefaultMaxResultBytes {
			t.Fatalf("output: %d bytes: %q", len(res.Content), res.Content[:min(300, len(res.Content))])
		}
		// Output without end is cut and the command stopped at the time limit.
		res = runShell(t, s, `yes`)
		if !res.IsError || !strings.Contains(res.Content, "killed: the command ran longer") || !strings.Contains(res.Content, "[stdout truncated: showing 4096 of") {
			t.Fatalf("yes: %q", res.Content[:min(300, len(res.Content))])
		}
	})
}

// countProcs counts host processes whose command line contains arg.
func countProcs(t *testing.T, arg string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		parts := strings.Split(string(cmdline), "\x00")
		if arg == "bash" {
			if len(parts) > 0 && filepath.Base(parts[0]) == "bash" && strings.Contains(string(cmdline), "f | f") {
				n++
			}
			continue
		}
		if len(parts) >= 2 && filepath.Base(parts[0]) == "sleep" && parts[1] == arg {
			n++
		}
	}
	return n
}

func TestShellCancel(t *testing.T) {
	s, _ := newTestShell(t, ShellConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, Call{Args: json.RawMessage(`{"command":"sleep 588"}`)})
		done <- err
	}()
	for countProcs(t, "588") == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	for i := 0; countProcs(t, "588") != 0; i++ {
		if i > 200 {
			t.Fatal("the sandbox outlived the cancelled call")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShellNeedsBwrap(t *testing.T) {
	_, err := NewShell(context.Background(), ShellConfig{Workspace: t.TempDir(), Bwrap: "/nonexistent/bwrap"})
	if !errors.Is(err, ErrNoBwrap) || !strings.Contains(err.Error(), "apt-get install bubblewrap") {
		t.Fatalf("err = %v", err)
	}
}
