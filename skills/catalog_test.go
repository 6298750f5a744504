package skills_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
)

func newCatalog(t *testing.T) (*skills.Catalog, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "house-style"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "house-style", "SKILL.md"), []byte("---\nname: house-style\ndescription: Our style.\nallowed-tools: [read_file, srv__*, Read]\n---\nShort sentences.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	folder, err := skills.LoadDir(dir, skills.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	known := func(n string) bool { return n == "read_file" || n == "srv__*" }
	return skills.NewCatalog(st, folder, skills.Limits{}, known), st
}

// TestCatalog: folder skills are seen by every scope and read-only (an
// upload may not take their name); Granted keeps the order asked and skips
// missing names; UnknownTools names what the daemon lacks.
func TestCatalog(t *testing.T) {
	cat, _ := newCatalog(t)
	ctx := t.Context()
	a, b := store.Scope{OrgID: "o", UserID: "u"}, store.Scope{OrgID: "o2", UserID: "u"}
	if _, err := cat.Upload(ctx, a, zipOf(t, entry{name: "SKILL.md", body: goodMD}), false); err != nil {
		t.Fatal(err)
	}
	shadow := zipOf(t, entry{name: "SKILL.md", body: "---\nname: house-style\ndescription: Mine.\n---\n"})
	if _, err := cat.Upload(ctx, a, shadow, true); !errors.Is(err, skills.ErrReadOnly) {
		t.Fatalf("upload over a folder skill: %v", err)
	}
	if err := cat.Delete(ctx, a, "house-style"); !errors.Is(err, skills.ErrReadOnly) {
		t.Fatalf("delete a folder skill: %v", err)
	}
	list, err := cat.List(ctx, a)
	if err != nil || len(list) != 2 || list[0].Name != "house-style" || list[0].Body != "" || list[1].Name != "pdf-forms" {
		t.Fatalf("list of a: %+v %v", list, err)
	}
	list, err = cat.List(ctx, b)
	if err != nil || len(list) != 1 || list[0].Source != store.SkillConfig {
		t.Fatalf("list of b: %+v %v", list, err)
	}
	got, err := cat.Granted(ctx, a, []string{"pdf-forms", "gone", "house-style"})
	if err != nil || len(got) != 2 || got[0].Name != "pdf-forms" || got[1].Name != "house-style" {
		t.Fatalf("granted: %+v %v", got, err)
	}
	hs, err := cat.Get(ctx, b, "house-style")
	if err != nil || hs.Body != "Short sentences.\n" {
		t.Fatalf("folder skill: %+v %v", hs, err)
	}
	if u := cat.UnknownTools(hs); strings.Join(u, ",") != "Read" {
		t.Fatalf("unknown tools: %v", u)
	}
	if _, err := cat.Get(ctx, b, "pdf-forms"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another scope's upload: %v", err)
	}
	if _, err := cat.Get(ctx, a, "../etc"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a bad name: %v", err)
	}
}

// TestToolGrantsOfARole: in a group run, use_skill answers for the agent's
// skills and its role's; outside the group, for the agent's alone.
func TestToolGrantsOfARole(t *testing.T) {
	cat, st := newCatalog(t)
	ctx := t.Context()
	sc := store.Scope{OrgID: "o", UserID: "u"}
	if _, err := cat.Upload(ctx, sc, zipOf(t, entry{name: "SKILL.md", body: goodMD}, entry{name: "notes.txt", body: "note"}), false); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := st.CreateAgent(ctx, store.Agent{Scope: sc, ID: "ann", Name: "Ann", Skills: []string{"house-style"}})
	must(err)
	_, err = st.CreateRole(ctx, store.Role{Scope: sc, ID: "filler", Name: "Filler", Skills: []string{"pdf-forms"}, IsLead: true})
	must(err)
	_, err = st.CreateGroup(ctx, store.Group{Scope: sc, ID: "g", Name: "G"})
	must(err)
	_, err = st.AddMember(ctx, store.GroupMember{Scope: sc, GroupID: "g", AgentID: "ann", RoleID: "filler"})
	must(err)
	tool := skills.NewTool(cat, st)
	if !tools.IsReadOnly(tool) {
		t.Fatal("use_skill is not read-only")
	}
	call := func(groupID, args string) tools.Result {
		t.Helper()
		res, err := tool.Run(ctx, tools.Call{Scope: sc, AgentID: "ann", GroupID: groupID, Name: skills.ToolName, Args: json.RawMessage(args)})
		must(err)
		return res
	}
	if r := call("", `{"name":"pdf-forms"}`); !r.IsError || !strings.Contains(r.Content, "house-style") {
		t.Fatalf("outside the group: %+v", r)
	}
	if r := call("", `{"name":"house-style"}`); r.IsError || !strings.Contains(r.Content, "Short sentences.") || !strings.Contains(r.Content, "read_file, srv__*, Read") {
		t.Fatalf("own skill: %+v", r)
	}
	if r := call("g", `{"name":"pdf-forms"}`); r.IsError || !strings.Contains(r.Content, "Use forms.py.") || !strings.Contains(r.Content, "- notes.txt (4 bytes)") {
		t.Fatalf("the role's skill in the group: %+v", r)
	}
	if r := call("g", `{"name":"pdf-forms","file":"notes.txt"}`); r.IsError || r.Content != "note" {
		t.Fatalf("a file of the role's skill: %+v", r)
	}
	if r := call("g", `{"name":"pdf-forms","file":"../SKILL.md"}`); !r.IsError {
		t.Fatalf("a path outside the skill: %+v", r)
	}
}

func TestPromptSection(t *testing.T) {
	got := skills.PromptSection([]store.Skill{{Name: "a", Description: "one\n  two"}, {Name: "b", Description: "three"}})
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || lines[1] != "- a: one two" || lines[2] != "- b: three" || !strings.Contains(lines[0], skills.ToolName) {
		t.Fatalf("section:\n%s", got)
	}
	if skills.PromptSection(nil) != "" {
		t.Fatal("a section without skills")
	}
}
