package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// treeDigest names every entry under dir with its type and content, so a
// test can prove a directory was left exactly as it was.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d", rel, info.Mode(), info.Size())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:8])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// escapeWorkspace builds base/ws (the workspace) beside base/outside, with
// links from the workspace that lead out, for os.Root-based tools:
//
//	base/outside/secret.txt
//	base/ws/hello.txt, base/ws/sub/inner.txt
//	base/ws/link_out      -> ../outside/secret.txt
//	base/ws/abs_out       -> base/outside/secret.txt (absolute)
//	base/ws/dirlink_out   -> ../outside
//	base/ws/absdir_out    -> base/outside (absolute)
//	base/ws/sub/up        -> ../..
//	base/ws/dangling_out  -> ../outside/new.txt (does not exist yet)
//	base/ws/link_in       -> hello.txt
func escapeWorkspace(t *testing.T) (base, ws, outside string) {
	t.Helper()
	base = t.TempDir()
	ws = filepath.Join(base, "ws")
	outside = filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(ws, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range map[string]string{
		filepath.Join(outside, "secret.txt"): secretText + "\n",
		filepath.Join(ws, "hello.txt"):       "hello\nworld\n",
		filepath.Join(ws, "sub/inner.txt"):   "inner\n",
	} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"link_out":     "../outside/secret.txt",
		"abs_out":      filepath.Join(outside, "secret.txt"),
		"dirlink_out":  "../outside",
		"absdir_out":   outside,
		"sub/up":       "../..",
		"dangling_out": "../outside/new.txt",
		"link_in":      "hello.txt",
	} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	return base, ws, outside
}

func runTool(t *testing.T, tool Tool, args any) Result {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tool.Run(context.Background(), Call{Name: tool.Spec().Name, Args: raw})
	if err != nil {
		t.Fatalf("%s(%s): %v", tool.Spec().Name, raw, err)
	}
	return res
}

// escapePaths are paths that all lead outside base/ws, one way or another.
func escapePaths(base string) []string {
	return []string{
		"../outside/secret.txt",
		"../outside/new.txt",
		"a/../../outside/new.txt",
		"sub/../../outside/new.txt",
		"./../outside/x",
		"..",
		"../..",
		"../../../../../../../../tmp/x",
		"/etc/passwd",
		"/tmp/openintern-escape-test",
		filepath.Join(base, "outside", "secret.txt"),
		filepath.Join(base, "outside", "new.txt"),
		filepath.Join(base, "ws", "hello.txt"), // absolute even when inside
		"link_out",
		"abs_out",
		"dangling_out",
		"dirlink_out/secret.txt",
		"dirlink_out/new.txt", // a new file through a symlinked folder
		"dirlink_out/deeper/new.txt",
		"absdir_out/new.txt",
		"absdir_out/secret.txt",
		"sub/up/outside/secret.txt",
		"sub/up/outside/new.txt",
		"sub/up/new.txt",
		"hello.txt\x00/../../outside/new.txt",
		"a\x00b",
		`\outside\new.txt`,
	}
}

func TestFileToolsRefuseEscapes(t *testing.T) {
	base, ws, outside := escapeWorkspace(t)
	before := treeDigest(t, outside)
	wsBefore := treeDigest(t, ws)
	parentBefore, _ := os.ReadDir(base)

	write, edit, list := NewWriteFile(ws), NewEditFile(ws), NewListFiles(ws)
	for _, p := range escapePaths(base) {
		t.Run(strings.ReplaceAll(p, "\x00", "NUL"), func(t *testing.T) {
			for _, res := range []Result{
				runTool(t, write, map[string]any{"path": p, "content": "pwned " + secretText}),
				runTool(t, edit, map[string]any{"path": p, "old_string": "TOP", "new_string": "pwned"}),
			} {
				if !res.IsError {
					t.Fatalf("%q: succeeded: %q", p, res.Content)
				}
				if strings.Contains(res.Content, secretText) || strings.Contains(res.Content, base) && !strings.Contains(p, base) {
					t.Fatalf("%q: leaked content or the workspace location: %q", p, res.Content)
				}
			}
			res := runTool(t, list, map[string]any{"path": p})
			if !res.IsError || strings.Contains(res.Content, "bytes)") {
				t.Fatalf("list %q showed entries: %q", p, res.Content)
			}
		})
	}
	if after := treeDigest(t, outside); after != before {
		t.Fatalf("outside changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	if after := treeDigest(t, ws); after != wsBefore {
		t.Fatalf("workspace changed by refused calls:\nbefore\n%s\nafter\n%s", wsBefore, after)
	}
	if parentAfter, _ := os.ReadDir(base); len(parentAfter) != len(parentBefore) {
		t.Fatalf("entries beside the workspace: %d, were %d", len(parentAfter), len(parentBefore))
	}
	if _, err := os.Stat("/tmp/openintern-escape-test"); err == nil {
		t.Fatal("/tmp/openintern-escape-test was created")
	}
}

func TestWriteFileInside(t *testing.T) {
	_, ws, outside := escapeWorkspace(t)
	before := treeDigest(t, outside)
	write := NewWriteFile(ws)

	res := runTool(t, write, map[string]any{"path": "notes/deep/todo.md", "content": "one\ntwo\n"})
	if res.IsError || res.Content != "created notes/deep/todo.md (8 bytes)" {
		t.Fatalf("create: %+v", res)
	}
	if data, _ := os.ReadFile(filepath.Join(ws, "notes/deep/todo.md")); string(data) != "one\ntwo\n" {
		t.Fatalf("content %q", data)
	}
	res = runTool(t, write, map[string]any{"path": "notes/deep/todo.md", "content": "x"})
	if res.IsError || res.Content != "wrote notes/deep/todo.md (1 bytes)" {
		t.Fatalf("overwrite: %+v", res)
	}
	if data, _ := os.ReadFile(filepath.Join(ws, "notes/deep/todo.md")); string(data) != "x" {
		t.Fatalf("overwritten content %q (the old tail must be gone)", data)
	}
	// A symlink that stays inside is followed.
	res = runTool(t, write, map[string]any{"path": "link_in", "content": "via link\n"})
	if res.IsError {
		t.Fatalf("link_in: %+v", res)
	}
	if data, _ := os.ReadFile(filepath.Join(ws, "hello.txt")); string(data) != "via link\n" {
		t.Fatalf("hello.txt through link_in: %q", data)
	}
	for _, c := range []struct{ path, want string }{
		{".", "is the workspace root"},
		{"sub", "is a directory"},
		{"hello.txt/x", "hello.txt is a file, not a folder"},
		{"", "path is empty"},
	} {
		res := runTool(t, write, map[string]any{"path": c.path, "content": "x"})
		if !res.IsError || !strings.Contains(res.Content, c.want) {
			t.Errorf("%q: %+v, want %q", c.path, res, c.want)
		}
	}

	small := NewWriteFile(ws)
	small.maxBytes = 10
	res = runTool(t, small, map[string]any{"path": "big.txt", "content": strings.Repeat("x", 11)})
	if !res.IsError || !strings.Contains(res.Content, "at most 10") {
		t.Fatalf("too big: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(ws, "big.txt")); err == nil {
		t.Fatal("too-big content was written")
	}
	if after := treeDigest(t, outside); after != before {
		t.Fatal("outside changed")
	}
}

func TestWriteFileNamedPipe(t *testing.T) {
	_, ws, _ := escapeWorkspace(t)
	if err := syscall.Mkfifo(filepath.Join(ws, "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// With no reader, an ordinary open for writing would block forever.
	res := runTool(t, NewWriteFile(ws), map[string]any{"path": "pipe", "content": "x"})
	if !res.IsError || !strings.Contains(res.Content, "not a regular file") {
		t.Fatalf("pipe: %+v", res)
	}
	res = runTool(t, NewEditFile(ws), map[string]any{"path": "pipe", "old_string": "a", "new_string": "b"})
	if !res.IsError || !strings.Contains(res.Content, "not a regular file") {
		t.Fatalf("edit pipe: %+v", res)
	}
}

func TestEditFile(t *testing.T) {
	_, ws, _ := escapeWorkspace(t)
	p := filepath.Join(ws, "code.go")
	orig := "func a() {\n\treturn 1\n}\n\nfunc b() {\n\treturn 1\n}\n"
	if err := os.WriteFile(p, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	edit := NewEditFile(ws)
	cases := []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"path": "code.go", "old_string": "return 2", "new_string": "x"}, "was not found"},
		{map[string]any{"path": "code.go", "old_string": "return 1", "new_string": "return 2"}, "occurs 2 times"},
		{map[string]any{"path": "code.go", "old_string": "same", "new_string": "same"}, "are the same"},
		{map[string]any{"path": "missing.go", "old_string": "a", "new_string": "b"}, "no such file"},
		{map[string]any{"path": "sub", "old_string": "a", "new_string": "b"}, "is a directory"},
	}
	for _, c := range cases {
		res := runTool(t, edit, c.args)
		if !res.IsError || !strings.Contains(res.Content, c.want) {
			t.Errorf("%v: %+v, want %q", c.args, res, c.want)
		}
	}
	if data, _ := os.ReadFile(p); string(data) != orig {
		t.Fatalf("failed edits changed the file: %q", data)
	}

	res := runTool(t, edit, map[string]any{"path": "code.go", "old_string": "func b() {\n\treturn 1", "new_string": "func b() {\n\treturn 2"})
	if res.IsError || !strings.Contains(res.Content, "replaced 1 occurrence") {
		t.Fatalf("unique edit: %+v", res)
	}
	want := "func a() {\n\treturn 1\n}\n\nfunc b() {\n\treturn 2\n}\n"
	if data, _ := os.ReadFile(p); string(data) != want {
		t.Fatalf("after edit: %q", data)
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode changed to %v", info.Mode())
	}
	res = runTool(t, edit, map[string]any{"path": "code.go", "old_string": "func", "new_string": "fn", "replace_all": true})
	if res.IsError || !strings.Contains(res.Content, "replaced 2 occurrence") {
		t.Fatalf("replace_all: %+v", res)
	}
	if data, _ := os.ReadFile(p); strings.Count(string(data), "fn ") != 2 || strings.Contains(string(data), "func") {
		t.Fatalf("after replace_all: %q", data)
	}

	if err := os.WriteFile(filepath.Join(ws, "bin.dat"), []byte("a\x00b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := runTool(t, edit, map[string]any{"path": "bin.dat", "old_string": "a", "new_string": "c"}); !res.IsError || !strings.Contains(res.Content, "binary") {
		t.Fatalf("binary: %+v", res)
	}
	small := NewEditFile(ws)
	small.maxBytes = 20
	if res := runTool(t, small, map[string]any{"path": "code.go", "old_string": "fn a", "new_string": "fn c"}); !res.IsError || !strings.Contains(res.Content, "at most 20") {
		t.Fatalf("too big: %+v", res)
	}
}

func TestListFiles(t *testing.T) {
	_, ws, _ := escapeWorkspace(t)
	list := NewListFiles(ws)
	res := runTool(t, list, map[string]any{})
	want := ".: 11 entries\n" +
		"abs_out@\nabsdir_out@\ndangling_out@\ndirlink_out@\nhello.txt  (12 bytes)\nlink_in@\nlink_out@\n" +
		"sub/\nsub/inner.txt  (6 bytes)\nsub/up@\n"
	// 10 lines shown: count the entries the walk saw.
	if res.IsError || strings.Count(res.Content, "\n") != 11 || !strings.HasSuffix(res.Content, want[len(".: 11 entries\n"):]) {
		t.Fatalf("listing:\n got %q\nwant %q", res.Content, want)
	}
	if strings.Contains(res.Content, "secret") {
		t.Fatalf("listing followed a link out: %q", res.Content)
	}
	res = runTool(t, list, map[string]any{"pattern": "*.txt"})
	if res.Content != ".: 2 entries matching \"*.txt\"\nhello.txt  (12 bytes)\nsub/inner.txt  (6 bytes)\n" {
		t.Fatalf("pattern: %q", res.Content)
	}
	res = runTool(t, list, map[string]any{"path": "sub", "pattern": "i*"})
	if res.Content != "sub: 1 entries matching \"i*\"\ninner.txt  (6 bytes)\n" {
		t.Fatalf("sub pattern: %q", res.Content)
	}
	res = runTool(t, list, map[string]any{"pattern": "sub/*.txt"})
	if res.Content != ".: 1 entries matching \"sub/*.txt\"\nsub/inner.txt  (6 bytes)\n" {
		t.Fatalf("path pattern: %q", res.Content)
	}
	res = runTool(t, list, map[string]any{"pattern": "*.none"})
	if res.IsError || res.Content != ".: no entries matching \"*.none\"\n" {
		t.Fatalf("no match: %q", res.Content)
	}
	res = runTool(t, list, map[string]any{"pattern": "[x"})
	if !res.IsError || !strings.Contains(res.Content, "not a valid glob") {
		t.Fatalf("bad pattern: %+v", res)
	}
	res = runTool(t, list, map[string]any{"path": "hello.txt"})
	if !res.IsError || !strings.Contains(res.Content, "not a directory") {
		t.Fatalf("file: %+v", res)
	}
	for i := range 30 {
		if err := os.WriteFile(filepath.Join(ws, "sub", fmt.Sprintf("f%02d.log", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res = runTool(t, list, map[string]any{"path": "sub", "limit": 5})
	if !strings.HasPrefix(res.Content, "sub: 32 entries\nf00.log  (0 bytes)\n") || !strings.HasSuffix(res.Content, "[27 more entries not shown; narrow path or pattern, or raise limit]\n") {
		t.Fatalf("limit: %q", res.Content)
	}
}

func TestFileToolsRegister(t *testing.T) {
	r := NewRegistry()
	for _, tool := range []Tool{NewWriteFile("."), NewEditFile("."), NewListFiles(".")} {
		if err := r.Register(tool); err != nil {
			t.Fatalf("register %s: %v", tool.Spec().Name, err)
		}
	}
	// The router enforces the schema: content is required.
	res, out := r.Route(context.Background(), Call{Name: "write_file", Args: json.RawMessage(`{"path":"x"}`)}, nil)
	if out != OutcomeError || !strings.Contains(res.Content, `argument "content": required`) {
		t.Fatalf("missing content: %v %+v", out, res)
	}
}

// FuzzCheckPath: whatever the path, a write either fails or lands inside the
// workspace, and nothing outside it changes.
func FuzzCheckPath(f *testing.F) {
	for _, p := range escapePaths("/base") {
		f.Add(p)
	}
	for _, p := range []string{"a.txt", "sub/b.txt", "./c", "sub/./d", "link_in", "x/../y", "....", ".../x", "sub//e"} {
		f.Add(p)
	}
	base := f.TempDir()
	ws := filepath.Join(base, "ws")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(ws, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{"dirlink_out": "../outside", "sub/up": "../..", "abs_out": outside, "link_in": "sub"} {
		if err := os.Symlink(target, filepath.Join(ws, link)); err != nil {
			f.Skip(err)
		}
	}
	write := NewWriteFile(ws)
	f.Fuzz(func(t *testing.T, p string) {
		rel, bad := CheckPath(p)
		if bad == "" {
			if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsRune(rel, 0) {
				t.Fatalf("CheckPath(%q) accepted %q", p, rel)
			}
		}
		raw, _ := json.Marshal(map[string]string{"path": p, "content": "fuzz"})
		if _, err := write.Run(context.Background(), Call{Args: raw}); err != nil {
			t.Fatalf("write %q: %v", p, err)
		}
		entries, err := os.ReadDir(outside)
		if err != nil || len(entries) != 0 {
			t.Fatalf("write %q reached outside: %v %v", p, entries, err)
		}
		top, _ := os.ReadDir(base)
		if len(top) != 2 {
			t.Fatalf("write %q created a file beside the workspace: %v", p, top)
		}
	})
}
