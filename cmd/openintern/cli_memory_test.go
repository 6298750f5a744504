package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIMemoryWriteSearchGetIngest(t *testing.T) {
	d, _ := cliDaemon(t)
	env := cliEnv(d, "cli", "mia")

	res := runCLI(t, env, "memory", "write", "The quarterly launch moved to Tuesday morning", "--json")
	var written memoryView
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &written) != nil || written.ID == "" || written.Type != "archival" {
		t.Fatalf("memory write: %+v", res)
	}

	dir := t.TempDir()
	files := map[string]string{
		"handbook.md": "# Handbook\n\nExpense reports are due on the fifth business day of each month.\n",
		"zh.txt":      "项目周报每周五下午提交给产品经理。\n",
	}
	var paths []string
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	res = runCLI(t, env, append([]string{"memory", "ingest"}, paths...)...)
	if res.code != 0 || strings.Count(res.stdout, "→ ") != 2 {
		t.Fatalf("memory ingest: %+v", res)
	}

	for query, want := range map[string]string{
		"when is the launch": "Tuesday",
		"expense report due": "fifth business day",
		"周报什么时候提交":           "周五",
	} {
		res = runCLI(t, env, "memory", "search", query, "--json")
		var hits []memoryResult
		if res.code != 0 || json.Unmarshal([]byte(res.stdout), &hits) != nil || len(hits) == 0 {
			t.Fatalf("memory search %q: %+v", query, res)
		}
		if !strings.Contains(hits[0].Snippet, want) || len(hits[0].FoundBy) == 0 {
			t.Fatalf("memory search %q: top hit %+v, want a snippet with %q", query, hits[0], want)
		}
	}

	res = runCLI(t, env, "memory", "search", "launch")
	if res.code != 0 || !strings.Contains(res.stdout, written.ID) || !strings.Contains(res.stdout, "Tuesday") {
		t.Fatalf("memory search (text): %+v", res)
	}
	res = runCLI(t, env, "memory", "get", written.ID)
	if res.code != 0 || !strings.Contains(res.stdout, "The quarterly launch moved to Tuesday morning") {
		t.Fatalf("memory get: %+v", res)
	}
	// Another scope finds nothing and cannot read the memory.
	res = runCLI(t, env, "memory", "search", "launch", "--org", "other", "--json")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "[]" {
		t.Fatalf("other scope search: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "memory", "get", written.ID, "--org", "other"), "not found")
	assertOneLineError(t, runCLI(t, env, "memory", "ingest", filepath.Join(dir, "missing.md")), "missing.md")
}
