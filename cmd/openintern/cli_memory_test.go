package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/internal/testpdf"
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
	files := map[string][]byte{
		"handbook.md":         []byte("# Handbook\n\nExpense reports are due on the fifth business day of each month.\n"),
		"zh.txt":              []byte("项目周报每周五下午提交给产品经理。\n"),
		"sub/report.pdf":      testpdf.Make([][]string{{"Cover page."}, {"Lighthouse keepers log storms every night."}}),
		"sub/.hidden/skip.md": []byte("hiddenword must not be ingested\n"),
		"sub/blob.bin":        {0x7f, 'E', 'L', 'F', 0, 0, 0},
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res = runCLI(t, env, "memory", "ingest", dir)
	if res.code != 0 || !strings.Contains(res.stdout, "queued (3 files)") || !strings.Contains(res.stdout, "completed  3/3") ||
		!strings.Contains(res.stderr, "skipped "+filepath.Join(dir, "sub/blob.bin")+": binary") {
		t.Fatalf("memory ingest: %+v", res)
	}
	jobID := strings.Fields(res.stdout)[1]
	res = runCLI(t, env, "memory", "search", "lighthouse storms", "--json")
	var pdfHits []memoryResult
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &pdfHits) != nil || len(pdfHits) == 0 {
		t.Fatalf("search the pdf: %+v", res)
	}
	if s := pdfHits[0].Source; s == nil || s.Page != 2 || s.Source != filepath.ToSlash(filepath.Join(dir, "sub/report.pdf")) {
		t.Fatalf("pdf hit source: %+v", pdfHits[0])
	}
	if res = runCLI(t, env, "memory", "search", "hiddenword", "--json"); strings.Contains(res.stdout, "hiddenword") {
		t.Fatalf("a hidden folder was ingested: %+v", res)
	}
	if res = runCLI(t, env, "jobs", "list"); res.code != 0 || !strings.Contains(res.stdout, jobID) || !strings.Contains(res.stdout, "completed") {
		t.Fatalf("jobs list: %+v", res)
	}
	if res = runCLI(t, env, "jobs", "show", jobID, "--json"); res.code != 0 || !strings.Contains(res.stdout, `"status":"completed"`) {
		t.Fatalf("jobs show: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "jobs", "cancel", jobID), "ended")
	// A file the daemon cannot read is reported, and the exit status says so.
	bad := filepath.Join(t.TempDir(), "broken.pdf")
	if err := os.WriteFile(bad, []byte("not a pdf at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "fine.txt")
	if err := os.WriteFile(good, []byte("Fine text survives a broken neighbour."), 0o644); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, env, "memory", "ingest", bad, good)
	if res.code == 0 || !strings.Contains(res.stdout, "✗ "+bad) || !strings.Contains(res.stdout, "new 1") {
		t.Fatalf("ingest with a broken file: %+v", res)
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
