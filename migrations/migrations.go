package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Migration is one schema change of a dialect.
type Migration struct {
	Version int    // from the file name's leading number; starts at 1
	Name    string // the file name's description: "init" for 0001_init.sql
	SQL     string // the statements, run in one transaction
}

// Dialects lists the dialects that have migrations.
var Dialects = []string{"postgres", "sqlite"}

var fileName = regexp.MustCompile(`^([0-9]+)_([a-z0-9_]+)\.sql$`)

// List returns the migrations of dialect ("postgres" or "sqlite") sorted by
// version. It fails on an unknown dialect, a badly named file or two files of
// the same version.
func List(dialect string) ([]Migration, error) {
	known := false
	for _, d := range Dialects {
		known = known || d == dialect
	}
	if !known {
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	entries, err := fs.ReadDir(files, dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s: %w", dialect, err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migrations: %s/%s: name is not NNNN_name.sql", dialect, e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v < 1 {
			return nil, fmt.Errorf("migrations: %s/%s: bad version %q", dialect, e.Name(), m[1])
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations: %s: version %d in both %s and %s", dialect, v, other, e.Name())
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(files, path.Join(dialect, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s/%s: %w", dialect, e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
