//go:build unix

package sqlite

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/store"
)

func wantLocked(t *testing.T, path string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrStoreLocked) {
		t.Fatalf("Open as a second daemon = %v, want ErrStoreLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "DATABASE_URL") {
		t.Fatalf("the error does not name the file and what to do: %q", msg)
	}
}

// TestDaemonLockAcrossProcesses: a daemon in another process holds the
// file; this one cannot open it as a daemon, can open it as a command does,
// and gets it once that process is killed (the OS drops the lock of a
// process that dies, so a crash never leaves the file locked).
func TestDaemonLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openintern.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	_, err = Open(t.Context(), path, nil, Daemon())
	wantLocked(t, path, err)

	// A command (tokens, doctor) opens it beside the daemon.
	s := open(t, path)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAgent(t.Context(), store.Agent{Scope: store.Scope{OrgID: "o", UserID: "u"}, ID: "a"}); err != nil {
		t.Fatalf("a write beside the daemon: %v", err)
	}

	// kill -9: no Close, no cleanup of its own.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	d, err := Open(t.Context(), path, nil, Daemon())
	if err != nil {
		t.Fatalf("Open as the daemon after the other was killed: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonLockInProcess: the lock is per open, not per process, so two
// stores of one process cannot both be the file's daemon either; Close hands
// it on.
func TestDaemonLockInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "openintern.db")
	first, err := Open(t.Context(), path, nil, Daemon())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), path, nil, Daemon())
	wantLocked(t, path, err)
	// Another file is another daemon's.
	other, err := Open(t.Context(), filepath.Join(t.TempDir(), "other.db"), nil, Daemon())
	if err != nil {
		t.Fatalf("a daemon on another file: %v", err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := Open(t.Context(), path, nil, Daemon())
	if err != nil {
		t.Fatalf("Open after the first daemon closed: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
}
