package sqlite

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// lockHelperEnv makes the test binary a daemon holding a database file
// (TestDaemonLockAcrossProcesses) instead of running tests.
const lockHelperEnv = "OPENINTERN_SQLITE_LOCK_HELPER"

// TestMain fails the package when its tests leave a goroutine behind.
func TestMain(m *testing.M) {
	if path := os.Getenv(lockHelperEnv); path != "" {
		os.Exit(lockHelper(path))
	}
	goleak.VerifyTestMain(m)
}

// lockHelper opens path as its daemon, says so on stdout, and holds it until
// stdin closes (or the process is killed).
func lockHelper(path string) int {
	s, err := Open(context.Background(), path, nil, Daemon())
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close()
	return 0
}
