//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/openintern/openintern/store"
)

// lockDaemon takes the exclusive lock of the daemon serving the database
// file at path: flock(2) on "<path>.lock", held by the open descriptor it
// returns. The kernel drops it when the process ends, however it ends, so a
// crashed daemon never leaves the file locked.
func lockDaemon(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", name, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err == nil {
		return f, nil
	}
	_ = f.Close()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("sqlite: %s is served by another running daemon (it holds %s): "+
			"stop that daemon, or give this one another DATA_DIR; to run several daemons on one store, use PostgreSQL (DATABASE_URL): %w",
			path, name, store.ErrStoreLocked)
	}
	return nil, fmt.Errorf("sqlite: lock %s: %w", name, err)
}
