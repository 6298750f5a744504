package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const secretText = "TOP-SECRET-CONTENT"

// workspace builds:
//
//	base/secret.txt                 (outside)
//	base/outside/secret2.txt        (outside)
//	base/ws/hello.txt
//	base/ws/sub/inner.txt
//	base/ws/link_out     -> ../secret.txt          (escape)
//	base/ws/abs_out      -> /abs/base/secret.txt    (escape)
//	base/ws/dirlink_out  -> ../outside             (escape)
//	base/ws/sub/up       -> ../..                  (escape)
//	base/ws/link_in      -> hello.txt              (fine)
//	base/ws/abs_in       -> /abs/base/ws/sub       (fine)
//	base/ws/dangling     -> nowhere
func workspace(t *testing.T) (base, ws string) {
	t.Helper()
	base = t.TempDir()
	ws = filepath.Join(base, "ws")
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("secret.txt", secretText+"\n")
	write("outside/secret2.txt", secretText+"\n")
	write("ws/hello.txt", "hello\nworld\n")
	write("ws/sub/inner.txt", "inner\n")
	link := func(target, rel string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(base, rel)); err != nil {
			t.Skipf("symlinks unavailable: %v", err)
		}
	}
	link("../secret.txt", "ws/link_out")
	link(filepath.Join(base, "secret.txt"), "ws/abs_out")
	link("../outside", "ws/dirlink_out")
	link("../..", "ws/sub/up")
	link("hello.txt", "ws/link_in")
	link(filepath.Join(ws, "sub"), "ws/abs_in")
	link("nowhere", "ws/dangling")
	return base, ws
}

func runRead(t *testing.T, tool *ReadFile, args string) Result {
	t.Helper()
	res, err := tool.Run(context.Background(), Call{Name: "read_file", Args: json.RawMessage(args)})
	if err != nil {
		t.Fatalf("Run(%s): %v", args, err)
	}
	return res
}

func TestReadFileRefusesEscapes(t *testing.T) {
	base, ws := workspace(t)
	tool := NewReadFile(ws)
	cases := []struct {
		path, want string
	}{
		{"../secret.txt", "leads outside the workspace"},
		{"a/../../secret.txt", "leads outside the workspace"},
		{"sub/../../secret.txt", "leads outside the workspace"},
		{"..", "leads outside the workspace"},
		{"/etc/passwd", "is absolute"},
		{filepath.Join(base, "secret.txt"), "is absolute"},
		{filepath.Join(ws, "hello.txt"), "is absolute"}, // absolute even when inside
		{"link_out", "through a symbolic link"},
		{"abs_out", "through a symbolic link"},
		{"dirlink_out", "through a symbolic link"},
		{"dirlink_out/secret2.txt", "through a symbolic link"},
		{"sub/up", "through a symbolic link"},
		{"sub/up/secret.txt", "through a symbolic link"},
		{"dangling", "does not exist"},
		{"missing.txt", "does not exist"},
		{"hello.txt/x", "not a directory"},
		{"", "path is empty"},
		{"a\x00b", "NUL"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			args, _ := json.Marshal(map[string]string{"path": c.path})
			res := runRead(t, tool, string(args))
			if !res.IsError {
				t.Fatalf("read %q succeeded: %q", c.path, res.Content)
			}
			if !strings.Contains(res.Content, c.want) {
				t.Fatalf("read %q: %q, want it to contain %q", c.path, res.Content, c.want)
			}
			if strings.Contains(res.Content, secretText) || strings.Contains(res.Content, base) && !strings.Contains(c.path, base) {
				t.Fatalf("read %q leaked content or the workspace location: %q", c.path, res.Content)
			}
		})
	}
}

func TestReadFileInside(t *testing.T) {
	_, ws := workspace(t)
	tool := NewReadFile(ws)

	res := runRead(t, tool, `{"path":"hello.txt"}`)
	if res.IsError || res.Content != "hello.txt: lines 1-2 of 2 (12 bytes)\nhello\nworld\n" {
		t.Fatalf("hello.txt: %+v", res)
	}
	for _, p := range []string{"./hello.txt", "sub/../hello.txt", "link_in"} {
		res := runRead(t, tool, fmt.Sprintf(`{"path":%q}`, p))
		if res.IsError || !strings.HasSuffix(res.Content, "\nhello\nworld\n") {
			t.Errorf("%s: %+v", p, res)
		}
	}
	// An absolute symlink that stays inside the workspace is fine.
	res = runRead(t, tool, `{"path":"abs_in/inner.txt"}`)
	if res.IsError || !strings.HasPrefix(res.Content, "sub/inner.txt: lines 1-1 of 1") {
		t.Fatalf("abs_in/inner.txt: %+v", res)
	}

	// The workspace root itself may be reached through a symlink.
	linkedRoot := filepath.Join(t.TempDir(), "wslink")
	if err := os.Symlink(ws, linkedRoot); err != nil {
		t.Fatal(err)
	}
	res = runRead(t, NewReadFile(linkedRoot), `{"path":"sub/inner.txt"}`)
	if res.IsError || !strings.HasSuffix(res.Content, "\ninner\n") {
		t.Fatalf("through a linked root: %+v", res)
	}
	res = runRead(t, NewReadFile(linkedRoot), `{"path":"link_out"}`)
	if !res.IsError || strings.Contains(res.Content, secretText) {
		t.Fatalf("escape through a linked root: %+v", res)
	}
}

func TestReadFileMissingWorkspace(t *testing.T) {
	tool := NewReadFile(filepath.Join(t.TempDir(), "not-there"))
	_, err := tool.Run(context.Background(), Call{Args: json.RawMessage(`{"path":"x"}`)})
	if err == nil || !strings.Contains(err.Error(), "workspace") {
		t.Fatalf("err = %v, want a workspace error", err)
	}
}

func TestReadFileDirectory(t *testing.T) {
	_, ws := workspace(t)
	tool := NewReadFile(ws)
	res := runRead(t, tool, `{"path":"."}`)
	if res.IsError {
		t.Fatalf("listing: %+v", res)
	}
	want := "directory .: 8 entries\n" +
		"abs_in@\nabs_out@\ndangling@\ndirlink_out@\nhello.txt  (12 bytes)\nlink_in@\nlink_out@\nsub/\n"
	if res.Content != want {
		t.Fatalf("listing:\n got %q\nwant %q", res.Content, want)
	}
	res = runRead(t, tool, `{"path":"sub"}`)
	if res.Content != "directory sub: 2 entries\ninner.txt  (6 bytes)\nup@\n" {
		t.Fatalf("sub listing: %q", res.Content)
	}
	if err := os.Mkdir(filepath.Join(ws, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if res := runRead(t, tool, `{"path":"empty"}`); res.Content != "directory empty is empty\n" {
		t.Fatalf("empty dir: %q", res.Content)
	}

	// A directory with many entries is cut to the budget with a note.
	many := filepath.Join(ws, "many")
	if err := os.Mkdir(many, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 700 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("file-%04d.txt", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res = runRead(t, tool, `{"path":"many"}`)
	if res.IsError || len(res.Content) > DefaultMaxResultBytes || !strings.Contains(res.Content, "more entries not shown]") || !strings.HasPrefix(res.Content, "directory many: 700 entries\nfile-0000.txt") {
		t.Fatalf("many: %d bytes, tail %q", len(res.Content), res.Content[max(0, len(res.Content)-60):])
	}
}

func TestReadFileOffsetLimit(t *testing.T) {
	_, ws := workspace(t)
	var sb strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&sb, "line %d\n", i)
	}
	if err := os.WriteFile(filepath.Join(ws, "ten.txt"), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "nonl.txt"), []byte("a\nb"), 0o644); err != nil {
		t.Fatal(err)
	}
	tool := NewReadFile(ws)

	res := runRead(t, tool, `{"path":"ten.txt","offset":3,"limit":2}`)
	want := "ten.txt: lines 3-4 of 10 (71 bytes)\nline 3\nline 4\n[6 more lines; call read_file with offset=5 to continue]\n"
	if res.IsError || res.Content != want {
		t.Fatalf("offset/limit:\n got %q\nwant %q", res.Content, want)
	}
	res = runRead(t, tool, `{"path":"ten.txt","offset":9}`)
	if res.Content != "ten.txt: lines 9-10 of 10 (71 bytes)\nline 9\nline 10\n" {
		t.Fatalf("tail: %q", res.Content)
	}
	res = runRead(t, tool, `{"path":"ten.txt","offset":11}`)
	if !res.IsError || res.Content != "offset 11 is past the end of ten.txt (10 lines)" {
		t.Fatalf("past end: %+v", res)
	}
	res = runRead(t, tool, `{"path":"nonl.txt"}`)
	if res.Content != "nonl.txt: lines 1-2 of 2 (3 bytes)\na\nb\n" {
		t.Fatalf("no final newline: %q", res.Content)
	}
	if err := os.WriteFile(filepath.Join(ws, "empty.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := runRead(t, tool, `{"path":"empty.txt"}`); res.IsError || res.Content != "empty.txt: empty file" {
		t.Fatalf("empty file: %+v", res)
	}
}

func TestReadFileBinary(t *testing.T) {
	_, ws := workspace(t)
	if err := os.WriteFile(filepath.Join(ws, "bin.dat"), []byte("ELF\x00\x01\x02text"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "latin1.txt"), []byte("caf\xe9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tool := NewReadFile(ws)
	for _, p := range []string{"bin.dat", "latin1.txt"} {
		res := runRead(t, tool, fmt.Sprintf(`{"path":%q}`, p))
		if !res.IsError || !strings.Contains(res.Content, "is a binary file") || strings.Contains(res.Content, "text") && p == "bin.dat" {
			t.Errorf("%s: %+v", p, res)
		}
	}
}

func TestReadFileLargeFile(t *testing.T) {
	_, ws := workspace(t)
	// 300 lines of 10 bytes = 3000 bytes; the tool reads only the first 1000.
	content := strings.Repeat("123456789\n", 300)
	if err := os.WriteFile(filepath.Join(ws, "big.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tool := NewReadFile(ws)
	tool.maxBytes = 1000
	res := runRead(t, tool, `{"path":"big.txt"}`)
	if res.IsError {
		t.Fatalf("big: %+v", res)
	}
	if !strings.HasPrefix(res.Content, "big.txt: lines 1-100 of at least 100 (3000 bytes)\n") ||
		!strings.Contains(res.Content, "[file is 3000 bytes; only its first 1000 bytes were read, so it is truncated]") {
		t.Fatalf("big: %q", res.Content)
	}

	// A multi-byte rune cut at the read limit is not mistaken for binary.
	if err := os.WriteFile(filepath.Join(ws, "runes.txt"), []byte(strings.Repeat("é", 600)), 0o644); err != nil {
		t.Fatal(err)
	}
	tool.maxBytes = 1001
	if res := runRead(t, tool, `{"path":"runes.txt"}`); res.IsError || !strings.Contains(res.Content, "truncated") {
		t.Fatalf("runes: %+v", res)
	}
}

func TestReadFileFitsResultLimit(t *testing.T) {
	_, ws := workspace(t)
	content := strings.Repeat("0123456789012345678\n", 200) // 4000 bytes
	if err := os.WriteFile(filepath.Join(ws, "many.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "oneline.txt"), []byte(strings.Repeat("x", 5000)+"\nsecond\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(WithMaxResultBytes(1024))
	mustRegister(t, r, NewReadFile(ws))
	ctx := context.Background()

	res, out := r.Route(ctx, Call{Name: "read_file", Args: json.RawMessage(`{"path":"many.txt"}`)}, nil)
	if out != OutcomeOK || len(res.Content) > 1024 || strings.Contains(res.Content, "[truncated:") {
		t.Fatalf("many.txt: %v, %d bytes: %q", out, len(res.Content), res.Content)
	}
	// 1024-300 = 724 bytes of budget: 36 lines of 20 bytes.
	if !strings.HasPrefix(res.Content, "many.txt: lines 1-36 of 200 (4000 bytes)\n") ||
		!strings.HasSuffix(res.Content, "[164 more lines; call read_file with offset=37 to continue]\n") {
		t.Fatalf("many.txt: %q", res.Content)
	}
	res, _ = r.Route(ctx, Call{Name: "read_file", Args: json.RawMessage(`{"path":"many.txt","offset":37,"limit":3}`)}, nil)
	if !strings.HasPrefix(res.Content, "many.txt: lines 37-39 of 200") {
		t.Fatalf("continue: %q", res.Content)
	}

	res, _ = r.Route(ctx, Call{Name: "read_file", Args: json.RawMessage(`{"path":"oneline.txt"}`)}, nil)
	if res.IsError || len(res.Content) > 1024 ||
		!strings.Contains(res.Content, "[line 1 is longer than fits in one result; only its first 724 bytes are shown]") ||
		!strings.Contains(res.Content, "offset=2 to continue") {
		t.Fatalf("oneline: %q", res.Content)
	}

	// The schema is enforced by the router.
	res, _ = r.Route(ctx, Call{Name: "read_file", Args: json.RawMessage(`{"path":"many.txt","offset":0}`)}, nil)
	if !res.IsError || !strings.Contains(res.Content, `argument "offset": must be >= 1, got 0`) {
		t.Fatalf("offset 0: %+v", res)
	}
	res, _ = r.Route(ctx, Call{Name: "read_file", Args: json.RawMessage(`{"file":"many.txt"}`)}, nil)
	if !res.IsError || !strings.Contains(res.Content, `argument "path": required`) {
		t.Fatalf("missing path: %+v", res)
	}
}

func TestReadFileNotRegular(t *testing.T) {
	_, ws := workspace(t)
	fifo := filepath.Join(ws, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	tool := NewReadFile(ws)
	done := make(chan Result, 1)
	go func() {
		res, _ := tool.Run(context.Background(), Call{Args: json.RawMessage(`{"path":"pipe"}`)})
		done <- res
	}()
	select {
	case res := <-done:
		if !res.IsError || !strings.Contains(res.Content, "is not a regular file (named pipe)") {
			t.Fatalf("fifo: %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a named pipe blocked")
	}
}

func TestReadFileSpecCompiles(t *testing.T) {
	spec := NewReadFile(".").Spec()
	if spec.Name != "read_file" || !strings.Contains(spec.Description, "offset") {
		t.Fatalf("spec %+v", spec)
	}
	if err := NewRegistry().Register(NewReadFile(".")); err != nil {
		t.Fatalf("register: %v", err)
	}
}
