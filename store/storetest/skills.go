package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/openintern/openintern/store"
)

var skillCases = []testCase{
	{"Skills/PutGetListDelete", testSkillLifecycle},
	{"Skills/ConflictAndReplace", testSkillReplace},
	{"Skills/ScopeIsolation", testSkillIsolation},
	{"Skills/ConcurrentReplace", testSkillConcurrentReplace},
	{"Skills/Grants", testSkillGrants},
}

func skillStore(t *testing.T, s store.Store) store.SkillStore {
	t.Helper()
	ss, ok := s.(clockedStore).Store.(store.SkillStore)
	if !ok {
		t.Fatalf("%T does not keep skills", s.(clockedStore).Store)
	}
	return ss
}

func newSkill(scope store.Scope, name string, files ...store.SkillFile) store.Skill {
	return store.Skill{Scope: scope, Name: name, Description: "Does " + name + ".", Body: "# " + name + "\nSteps.",
		AllowedTools: []string{"read_file", "srv__*"}, Size: 100, Files: files}
}

// testSkillLifecycle: a skill is stored with its files; Get gives the body
// and the file list without contents, GetSkillFile one file's bytes (binary
// and empty ones too), List the scope's skills by name without bodies;
// Delete removes it and its files.
func testSkillLifecycle(t *testing.T, s store.Store) {
	ss, ctx := skillStore(t, s), t.Context()
	bin := []byte{0, 1, 2, 0xff, 0}
	put, err := ss.PutSkill(ctx, newSkill(scopeA, "pdf", store.SkillFile{Path: "scripts/x.py", Content: []byte("print(1)")},
		store.SkillFile{Path: "bin/blob", Content: bin}, store.SkillFile{Path: "empty.txt", Content: nil}), false)
	must(t, err)
	if put.Name != "pdf" || put.FileCount != 3 || put.Size != 100 || put.Source != store.SkillUploaded || put.CreatedAt.IsZero() {
		t.Fatalf("put: %+v", put)
	}
	_, err = ss.PutSkill(ctx, newSkill(scopeA, "alpha"), false)
	must(t, err)

	got, err := ss.GetSkill(ctx, scopeA, "pdf")
	must(t, err)
	if got.Body != "# pdf\nSteps." || got.Description != "Does pdf." || !slices.Equal(got.AllowedTools, []string{"read_file", "srv__*"}) ||
		got.FileCount != 3 || len(got.Files) != 3 {
		t.Fatalf("get: %+v", got)
	}
	wantFiles := []store.SkillFile{{Path: "bin/blob", Size: 5}, {Path: "empty.txt", Size: 0}, {Path: "scripts/x.py", Size: 8}}
	for i, f := range got.Files {
		if f.Path != wantFiles[i].Path || f.Size != wantFiles[i].Size || f.Content != nil {
			t.Fatalf("files: %+v, want %+v without contents", got.Files, wantFiles)
		}
	}
	f, err := ss.GetSkillFile(ctx, scopeA, "pdf", "bin/blob")
	must(t, err)
	if !bytes.Equal(f.Content, bin) || f.Size != 5 {
		t.Fatalf("binary file: %+v", f)
	}
	f, err = ss.GetSkillFile(ctx, scopeA, "pdf", "empty.txt")
	must(t, err)
	if f.Content == nil || len(f.Content) != 0 {
		t.Fatalf("empty file: %#v", f)
	}
	if _, err := ss.GetSkillFile(ctx, scopeA, "pdf", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	list, err := ss.ListSkills(ctx, scopeA)
	must(t, err)
	if len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "pdf" || list[1].Body != "" || list[1].FileCount != 3 || list[1].Files != nil {
		t.Fatalf("list: %+v", list)
	}
	must(t, ss.DeleteSkill(ctx, scopeA, "pdf"))
	if _, err := ss.GetSkill(ctx, scopeA, "pdf"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := ss.GetSkillFile(ctx, scopeA, "pdf", "scripts/x.py"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("file after delete: %v", err)
	}
	if err := ss.DeleteSkill(ctx, scopeA, "pdf"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// Re-created under the same name, it has only its new files.
	_, err = ss.PutSkill(ctx, newSkill(scopeA, "pdf"), false)
	must(t, err)
	got, err = ss.GetSkill(ctx, scopeA, "pdf")
	must(t, err)
	if len(got.Files) != 0 || got.Files == nil {
		t.Fatalf("re-created: %+v", got.Files)
	}
	if _, err := ss.PutSkill(ctx, store.Skill{Name: "x"}, false); err == nil {
		t.Fatal("a skill without a scope was stored")
	}
}

// testSkillReplace: a second put of a name is a conflict that changes
// nothing; with replace it swaps body and files and keeps CreatedAt.
func testSkillReplace(t *testing.T, s store.Store) {
	ss, ctx := skillStore(t, s), t.Context()
	first, err := ss.PutSkill(ctx, newSkill(scopeA, "pdf", store.SkillFile{Path: "old.txt", Content: []byte("old")}), false)
	must(t, err)
	tick(t, s)
	next := newSkill(scopeA, "pdf", store.SkillFile{Path: "new.txt", Content: []byte("new")})
	next.Body = "v2"
	if _, err := ss.PutSkill(ctx, next, false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second put: %v, want ErrConflict", err)
	}
	got, err := ss.GetSkill(ctx, scopeA, "pdf")
	must(t, err)
	if got.Body != first.Body || len(got.Files) != 1 || got.Files[0].Path != "old.txt" {
		t.Fatalf("after conflict: %+v", got)
	}
	replaced, err := ss.PutSkill(ctx, next, true)
	must(t, err)
	if !replaced.CreatedAt.Equal(first.CreatedAt) || !replaced.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("replaced times: %+v (first %+v)", replaced, first)
	}
	got, err = ss.GetSkill(ctx, scopeA, "pdf")
	must(t, err)
	if got.Body != "v2" || len(got.Files) != 1 || got.Files[0].Path != "new.txt" {
		t.Fatalf("after replace: %+v", got)
	}
	if _, err := ss.GetSkillFile(ctx, scopeA, "pdf", "old.txt"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old file after replace: %v", err)
	}
}

// testSkillIsolation: another scope sees none of A's skills and can use
// the same name for its own.
func testSkillIsolation(t *testing.T, s store.Store) {
	ss, ctx := skillStore(t, s), t.Context()
	_, err := ss.PutSkill(ctx, newSkill(scopeA, "pdf", store.SkillFile{Path: "a.txt", Content: []byte("a")}), false)
	must(t, err)
	for _, o := range otherScopes {
		if _, err := ss.GetSkill(ctx, o, "pdf"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%+v get: %v", o, err)
		}
		if _, err := ss.GetSkillFile(ctx, o, "pdf", "a.txt"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%+v file: %v", o, err)
		}
		if err := ss.DeleteSkill(ctx, o, "pdf"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%+v delete: %v", o, err)
		}
		list, err := ss.ListSkills(ctx, o)
		must(t, err)
		if len(list) != 0 {
			t.Fatalf("%+v list: %+v", o, list)
		}
	}
	_, err = ss.PutSkill(ctx, newSkill(scopeB, "pdf"), false)
	must(t, err)
	got, err := ss.GetSkill(ctx, scopeA, "pdf")
	must(t, err)
	if len(got.Files) != 1 {
		t.Fatalf("A's skill after B's put: %+v", got)
	}
}

// testSkillConcurrentReplace: replaces that race all succeed and leave one
// whole version (its body with its own files, never a mix).
func testSkillConcurrentReplace(t *testing.T, s store.Store) {
	ss, ctx := skillStore(t, s), t.Context()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := fmt.Sprintf("v%d", i)
			sk := newSkill(scopeA, "pdf", store.SkillFile{Path: v + ".txt", Content: []byte(v)})
			sk.Body = v
			if _, err := ss.PutSkill(ctx, sk, true); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := ss.GetSkill(ctx, scopeA, "pdf")
	must(t, err)
	if len(got.Files) != 1 || got.Files[0].Path != got.Body+".txt" {
		t.Fatalf("after racing replaces: body %q files %+v", got.Body, got.Files)
	}
}

// testSkillGrants: agents and roles keep the names of their skills through
// create, patch and read; a patch without skills keeps them.
func testSkillGrants(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "ag", Name: "A", Skills: []string{"pdf", "excel"}})
	must(t, err)
	if !slices.Equal(a.Skills, []string{"pdf", "excel"}) {
		t.Fatalf("created agent skills: %v", a.Skills)
	}
	name := "B"
	a, err = s.UpdateAgent(ctx, scopeA, "ag", store.AgentPatch{Name: &name})
	must(t, err)
	if !slices.Equal(a.Skills, []string{"pdf", "excel"}) {
		t.Fatalf("skills after a name patch: %v", a.Skills)
	}
	a, err = s.UpdateAgent(ctx, scopeA, "ag", store.AgentPatch{Skills: &[]string{}})
	must(t, err)
	if a.Skills == nil || len(a.Skills) != 0 {
		t.Fatalf("cleared skills: %#v", a.Skills)
	}
	plain, err := s.CreateAgent(ctx, store.Agent{Scope: scopeA, ID: "plain"})
	must(t, err)
	if plain.Skills == nil || len(plain.Skills) != 0 {
		t.Fatalf("agent without skills: %#v", plain.Skills)
	}
	r, err := s.CreateRole(ctx, store.Role{Scope: scopeA, ID: "writer", Name: "Writer", Skills: []string{"docx"}})
	must(t, err)
	if !slices.Equal(r.Skills, []string{"docx"}) {
		t.Fatalf("created role skills: %v", r.Skills)
	}
	r, err = s.UpdateRole(ctx, scopeA, "writer", store.RolePatch{Skills: &[]string{"docx", "pdf"}})
	must(t, err)
	got, err := s.GetRole(ctx, scopeA, "writer")
	must(t, err)
	if !slices.Equal(r.Skills, []string{"docx", "pdf"}) || !slices.Equal(got.Skills, r.Skills) {
		t.Fatalf("patched role skills: %v, read back %v", r.Skills, got.Skills)
	}
}
