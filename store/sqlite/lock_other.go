//go:build !unix

package sqlite

import "os"

// lockDaemon has no lock to take where flock(2) does not exist: a second
// daemon on one file is not refused there.
func lockDaemon(string) (*os.File, error) { return nil, nil }
