package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openintern/openintern/config"
)

func reachNames(t *testing.T, cfg config.Config) []string {
	t.Helper()
	list, err := builtinReachTools(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list {
		names = append(names, tool.Spec().Name)
	}
	return names
}

func TestReachToolsShellOffByDefault(t *testing.T) {
	cfg := config.Default()
	cfg.WorkspaceDir = t.TempDir()
	if got := strings.Join(reachNames(t, cfg), ","); got != "write_file,edit_file,list_files,http_fetch" {
		t.Fatalf("tools: %s", got)
	}
	cfg.Shell.Enabled = true
	if got := strings.Join(reachNames(t, cfg), ","); got != "write_file,edit_file,list_files,http_fetch,shell" {
		t.Fatalf("tools with the shell on: %s", got)
	}
}

func TestReachToolsStartupErrors(t *testing.T) {
	cfg := config.Default()
	cfg.WorkspaceDir = t.TempDir()
	cfg.Fetch.Allow = []string{"not a host"}
	_, err := builtinReachTools(context.Background(), cfg)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "OPENINTERN_FETCH_ALLOW" {
		t.Fatalf("bad allow-list: %v", err)
	}

	cfg.Fetch.Allow = nil
	cfg.Shell.Enabled = true
	t.Setenv("PATH", t.TempDir()) // no bwrap on it
	_, err = builtinReachTools(context.Background(), cfg)
	if !errors.As(err, &ce) || ce.Key != "OPENINTERN_SHELL" || !strings.Contains(err.Error(), "bubblewrap") {
		t.Fatalf("shell on without bwrap: %v", err)
	}
}
