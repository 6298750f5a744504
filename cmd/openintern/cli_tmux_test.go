package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxSession is a detached tmux server of its own (its own socket), so the
// test neither sees nor disturbs anybody's tmux.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is what a person sees in the pane right now.
func (s *tmuxSession) screen() string { return s.tmux("capture-pane", "-p", "-J", "-t", "cli") }

// TestCLIRunStreamInTerminal types `openintern run … --stream` into a real
// terminal (tmux) and reads the screen: the answer, the tool lines, the status
// line and the shell's view of the exit status, as a person would see them.
// tmux is installed by scripts/services.sh; without it the test fails.
func TestCLIRunStreamInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed; run ./scripts/services.sh (it installs tmux)")
	}
	d, srv := cliDaemon(t)
	enqueueToolThenAnswer(srv, 30*time.Millisecond)
	bin := daemonBinary(t)

	dir := t.TempDir()
	s := &tmuxSession{t: t, socket: filepath.Join(dir, "tmux.sock")}
	// A clean, predictable shell: UTF-8 so the ✓ renders, colours on (a
	// terminal is what decides that), our binary first on PATH.
	shell := []string{"env", "-i",
		"PATH=" + filepath.Dir(bin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir, "TERM=xterm-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PS1=$ ",
		"OPENINTERN_URL=" + d.URL(), "AGENT_ORG_ID=tty", "AGENT_USER_ID=alice",
		"bash", "--norc", "--noprofile"}
	s.tmux(append([]string{"-u", "new-session", "-d", "-s", "cli", "-x", "160", "-y", "40"}, shell...)...)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", s.socket, "kill-server").Run() })
	if os.Getenv("TMUX") != "" {
		t.Log("running inside tmux; the test uses its own server")
	}

	// Type only once the prompt is up, as a person would.
	for deadline := time.Now().Add(10 * time.Second); !strings.HasPrefix(s.screen(), "$ "); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shell prompt in 10s; screen:\n%s", s.screen())
		}
	}
	s.tmux("send-keys", "-t", "cli", `openintern run "what do my notes say?" --stream; echo "exit status $?"`, "Enter")

	// The echo's output, not the typed command (which shows $?).
	exitStatusLine := regexp.MustCompile(`(?m)^exit status \d+$`)
	var screen string
	deadline := time.Now().Add(30 * time.Second)
	for {
		screen = s.screen()
		if exitStatusLine.MatchString(screen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command did not finish in 30s; screen:\n%s", screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("screen:\n%s", screen)
	for _, want := range []string{
		`→ read_file {"path":"notes.txt"}`,
		"← read_file ",
		cliAnswer,
		"✓ completed · 2 steps",
		"exit status 0",
	} {
		if !strings.Contains(screen, want) {
			t.Fatalf("the terminal does not show %q; screen:\n%s", want, screen)
		}
	}
	// The answer is on its own line, and the status line follows it.
	lines := strings.Split(screen, "\n")
	for i, line := range lines {
		if strings.TrimSpace(line) == cliAnswer {
			if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "✓ completed") {
				t.Fatalf("the status line does not follow the answer; screen:\n%s", screen)
			}
			return
		}
	}
	t.Fatalf("the answer is not on a line of its own; screen:\n%s", screen)
}
