package daemon

import (
	"context"
	"time"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/tools"
)

// builtinReachTools are the built-in tools that act on the world beyond
// memory and messages: files in the workspace, http_fetch, and the shell
// when enabled. A bad allow-list or a shell that cannot be sandboxed stops
// start-up with the setting named.
//
// list_files (like read_file) is tools.ReadOnly, so the audit log skips it;
// write_file, edit_file, http_fetch (POST, and GET has effects on some
// servers) and shell are recorded, and the tool policy (issue 14 §5) should
// treat them as high-risk.
func builtinReachTools(ctx context.Context, cfg config.Config) ([]tools.Tool, error) {
	ws := cfg.Workspace()
	fetch, err := tools.NewHTTPFetch(tools.FetchConfig{
		Timeout:  time.Duration(cfg.Fetch.Timeout),
		MaxBytes: cfg.Fetch.MaxBytes,
		Allow:    cfg.Fetch.Allow,
	})
	if err != nil {
		return nil, &config.Error{Key: "OPENINTERN_FETCH_ALLOW", Reason: err.Error()}
	}
	list := []tools.Tool{tools.NewWriteFile(ws), tools.NewEditFile(ws), tools.NewListFiles(ws), fetch}
	if cfg.Shell.Enabled {
		shell, err := tools.NewShell(ctx, tools.ShellConfig{
			Workspace:      ws,
			Timeout:        time.Duration(cfg.Shell.Timeout),
			CPUSeconds:     cfg.Shell.CPUSeconds,
			MemoryMB:       cfg.Shell.MemoryMB,
			MaxProcs:       cfg.Shell.MaxProcs,
			MaxOutputBytes: cfg.Shell.MaxOutputBytes,
		})
		if err != nil {
			return nil, &config.Error{Key: "OPENINTERN_SHELL", Reason: err.Error()}
		}
		list = append(list, shell)
	}
	return list, nil
}
