package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// uploadSkill posts a zip of files (name → content) to /api/skills.
func (c *client) uploadSkill(files map[string]string) (int, []byte) {
	c.t.Helper()
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			c.t.Fatal(err)
		}
		_, _ = io.WriteString(w, body)
	}
	if err := zw.Close(); err != nil {
		c.t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "skill.zip")
	_, _ = fw.Write(zbuf.Bytes())
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/api/skills", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("x-org-id", c.scope.OrgID)
	req.Header.Set("x-user-id", c.scope.UserID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// skillLines are the "- name: description" lines of the skills section of
// a system prompt.
func skillLines(system string) []string {
	_, section, found := strings.Cut(system, "Skills you can use.")
	if !found {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(section, "\n")[1:] {
		if !strings.HasPrefix(l, "- ") {
			break
		}
		lines = append(lines, l)
	}
	return lines
}

// TestSkillsEndToEnd: through the real runtime and a local OpenAI-compatible
// model, an agent granted two skills (one uploaded, one from the skills
// folder) gets exactly their two lines in its system prompt, and no body;
// its use_skill call brings the body back as the tool.result, and a file of
// the skill on request; an agent not granted the skill gets an error result.
func TestSkillsEndToEnd(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testSkillsEndToEnd(t, kind) })
	}
}

func testSkillsEndToEnd(t *testing.T, kind string) {
	dir := t.TempDir()
	folderSkill := filepath.Join(dir, "release-notes")
	if err := os.MkdirAll(folderSkill, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folderSkill, "SKILL.md"), []byte("---\nname: release-notes\ndescription: Write release notes\n  from a changelog.\n---\nGroup changes by kind.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	model := llmtest.NewServer(t)
	// The model calls what the user message says ("call <tool> <json>"),
	// then answers once the tool's result is in.
	model.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == llm.RoleTool {
			return llmtest.Reply{Text: "done"}
		}
		if rest, ok := strings.CutPrefix(req.LastUserMessage(), "call "); ok {
			name, args, _ := strings.Cut(rest, " ")
			return llmtest.Reply{ToolCalls: []llm.ToolCall{{ID: "call_1", Name: name, Arguments: args}}}
		}
		return llmtest.Reply{Text: "ok"}
	})
	cfg := newConfig(t, kind)
	cfg.LLMProvider, cfg.LLMBaseURL, cfg.LLMModel, cfg.LLMAPIKey = "openai", model.URL(), "test-model", model.APIKey()
	cfg.Skills.Dir = dir
	d := startDaemon(t, cfg, nil)
	c := d.client("acme", "tess")

	status, raw := c.uploadSkill(map[string]string{
		"pdf-forms/SKILL.md":      "---\nname: pdf-forms\ndescription: Fill PDF forms.\nallowed-tools: [read_file]\n---\n# PDF forms\nRun fill.py with the form's fields.\n",
		"pdf-forms/fill.py":       "print('filled')\n",
		"pdf-forms/logo.bin":      "\x00\x01",
		"pdf-forms/ref/fields.md": "Field names are case-sensitive.",
	})
	if status != http.StatusCreated {
		t.Fatalf("upload: %d %s", status, raw)
	}
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "writer", "name": "Writer",
		"tools": []string{"read_file"}, "skills": []string{"pdf-forms", "release-notes"}}, nil)
	c.must(http.StatusCreated, "POST", "/api/agents", map[string]any{"agent_id": "plain", "name": "Plain"}, nil)

	results := func(agentID, input string) map[string]any {
		t.Helper()
		runID := c.createRun(agentID, "", input)
		if run := c.waitRun(runID, 30*time.Second); run.Status != store.RunCompleted {
			t.Fatalf("%s run: %+v", agentID, run)
		}
		p := c.toolResults(runID)["use_skill"]
		if p == nil {
			t.Fatalf("%s: no use_skill result in the trace", agentID)
		}
		return p
	}

	p := results("writer", `call use_skill {"name":"pdf-forms"}`)
	if p["is_error"] != false || !strings.Contains(p["content"].(string), "Run fill.py with the form's fields.") ||
		!strings.Contains(p["content"].(string), "ref/fields.md") {
		t.Fatalf("use_skill result: %v", p)
	}
	first := model.Requests()[0]
	system := first.Messages[0].Content
	lines := skillLines(system)
	want := []string{"- pdf-forms: Fill PDF forms.", "- release-notes: Write release notes from a changelog."}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("skill lines of the system prompt: %q, want %q\nprompt: %s", lines, want, system)
	}
	if strings.Contains(system, "Run fill.py") || strings.Contains(system, "Group changes") {
		t.Fatalf("a skill's body is in the prompt: %s", system)
	}
	// The agent's tools are a list without use_skill: granting skills adds it.
	if got := offered(first); strings.Join(got, ",") != "read_file,use_skill" {
		t.Fatalf("tools offered: %v", got)
	}

	if p := results("writer", `call use_skill {"name":"pdf-forms","file":"ref/fields.md"}`); p["is_error"] != false || p["content"] != "Field names are case-sensitive." {
		t.Fatalf("file: %v", p)
	}
	if p := results("writer", `call use_skill {"name":"pdf-forms","file":"logo.bin"}`); p["is_error"] != true || !strings.Contains(p["content"].(string), "binary") {
		t.Fatalf("binary file: %v", p)
	}
	if p := results("writer", `call use_skill {"name":"release-notes"}`); p["is_error"] != false || !strings.Contains(p["content"].(string), "Group changes by kind.") {
		t.Fatalf("folder skill: %v", p)
	}

	before := len(model.Requests())
	p = results("plain", `call use_skill {"name":"pdf-forms"}`)
	if p["is_error"] != true || !strings.Contains(p["content"].(string), "not granted") {
		t.Fatalf("ungranted use_skill: %v", p)
	}
	if got := offered(model.Requests()[before]); slices.Contains(got, "use_skill") || len(got) == 0 {
		t.Fatalf("an agent without skills is offered %v (every tool but use_skill wanted)", got)
	}
	if sys := model.Requests()[before].Messages[0].Content; skillLines(sys) != nil {
		t.Fatalf("an agent without skills has a skills section: %s", sys)
	}

	// The folder's skill is read-only over the API; another scope sees the
	// folder's skill but not the upload.
	status, raw = c.req("DELETE", "/api/skills/release-notes", nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "skill_read_only") {
		t.Fatalf("delete a folder skill: %d %s", status, raw)
	}
	var list struct {
		Skills []store.Skill `json:"skills"`
	}
	d.client("other", "olga").must(http.StatusOK, "GET", "/api/skills", nil, &list)
	if len(list.Skills) != 1 || list.Skills[0].Name != "release-notes" || list.Skills[0].Source != store.SkillConfig {
		raw, _ := json.Marshal(list)
		t.Fatalf("other scope's skills: %s", raw)
	}
}

// TestSkillsCLI: skills add (a folder, zipped in memory), list, show, a
// second add refused without --replace, agents create --skill, remove.
func TestSkillsCLI(t *testing.T) {
	d := startDaemon(t, newConfig(t, "sqlite"), nil)
	env := cliEnv(d, "acme", "tess")
	folder := filepath.Join(t.TempDir(), "pdf-forms")
	if err := os.MkdirAll(filepath.Join(folder, "ref"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, body := range map[string]string{"SKILL.md": "---\nname: pdf-forms\ndescription: Fill PDF forms.\n---\nRun fill.py.\n", "ref/fields.md": "fields"} {
		if err := os.WriteFile(filepath.Join(folder, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if res := runCLI(t, env, "skills", "add", folder); res.code != 0 || !strings.Contains(res.stdout, "added skill pdf-forms (1 files") {
		t.Fatalf("add: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "skills", "add", folder), "--replace")
	if res := runCLI(t, env, "skills", "add", folder, "--replace"); res.code != 0 {
		t.Fatalf("add --replace: %+v", res)
	}
	if res := runCLI(t, env, "skills", "list"); res.code != 0 || !strings.Contains(res.stdout, "pdf-forms") || !strings.Contains(res.stdout, "uploaded") {
		t.Fatalf("list: %+v", res)
	}
	if res := runCLI(t, env, "skills", "show", "pdf-forms"); res.code != 0 || !strings.Contains(res.stdout, "Run fill.py.") || !strings.Contains(res.stdout, "ref/fields.md") {
		t.Fatalf("show: %+v", res)
	}
	if res := runCLI(t, env, "agents", "create", "writer", "--skill", "pdf-forms"); res.code != 0 {
		t.Fatalf("agents create --skill: %+v", res)
	}
	if res := runCLI(t, env, "agents", "show", "writer"); !strings.Contains(res.stdout, "pdf-forms") {
		t.Fatalf("agents show: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "agents", "create", "other", "--skill", "nope"), "nope")
	if res := runCLI(t, env, "skills", "remove", "pdf-forms"); res.code != 0 || !strings.Contains(res.stdout, "removed skill pdf-forms") {
		t.Fatalf("remove: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "skills", "show", "pdf-forms"), "no skill pdf-forms")
	assertOneLineError(t, runCLI(t, env, "skills", "add", t.TempDir()), "no SKILL.md")
}
