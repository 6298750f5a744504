package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// DefaultNPMDir is where scripts/services.sh installs the npm packages the
// tests run (MCP servers); OPENINTERN_NPM_DIR overrides it.
const DefaultNPMDir = "/opt/openintern-npm"

// NPMBin is the path of an installed npm package's command (e.g.
// "mcp-server-everything"). A missing package fails the test: run
// scripts/services.sh, which installs them.
func NPMBin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("OPENINTERN_NPM_DIR")
	if dir == "" {
		dir = DefaultNPMDir
	}
	p := filepath.Join(dir, "node_modules", ".bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testenv: npm command %s is not installed (%v): run scripts/services.sh", name, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("testenv: node is not installed: run scripts/services.sh")
	}
	return p
}

// StartNPMServer runs an installed npm command with args and PORT set to a
// free port, waits until the port accepts connections, and stops it (its
// process group) when the test ends. It returns the port.
func StartNPMServer(t testing.TB, name string, args ...string) int {
	t.Helper()
	bin := NPMBin(t, name)
	port := FreePort(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(serverStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return port
		}
		select {
		case <-exited:
			t.Fatalf("testenv: %s exited before listening on %s: %v", name, addr, waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s did not listen on %s within %s", name, addr, serverStartTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MCPURL is the URL of a local MCP endpoint on port.
func MCPURL(port int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }
