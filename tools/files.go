package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/openintern/openintern/llm"
)

// Limits of write_file, edit_file and list_files.
const (
	// WriteFileMaxBytes is the largest content write_file writes, and the
	// largest file edit_file edits.
	WriteFileMaxBytes = 1 << 20
	// ListFilesDefaultLimit is how many entries list_files shows when the call gives no limit.
	ListFilesDefaultLimit = 200
	listFilesMaxLimit     = 2000
	// listFilesMaxVisit bounds how many entries one listing walks, matched or
	// not, so a huge tree cannot keep a call busy.
	listFilesMaxVisit = 50000
)

// Workspace confines file tools to one directory with os.Root: every open
// is resolved by the kernel one component at a time beneath the root, so
// "..", absolute paths and symbolic links (also ones swapped in between a
// check and a use) cannot reach outside it.
type Workspace struct {
	dir string
}

// NewWorkspace returns a workspace rooted at dir. The directory is opened on
// every call, so it may be created after the workspace.
func NewWorkspace(dir string) *Workspace { return &Workspace{dir: dir} }

func (w *Workspace) open() (*os.Root, error) {
	root, err := os.OpenRoot(w.dir)
	if err != nil {
		return nil, fmt.Errorf("open workspace %q: %w", w.dir, err)
	}
	return root, nil
}

// CheckPath explains why a model-given path is refused before anything is
// opened, or returns "" and the cleaned relative path. os.Root would refuse
// these too; checking first gives the model a clearer reason.
func CheckPath(p string) (rel, bad string) {
	switch {
	case p == "":
		return "", "path is empty; give a path relative to the workspace root (\".\" for the root)"
	case strings.ContainsRune(p, 0):
		return "", "path contains a NUL byte"
	case filepath.IsAbs(p) || strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || filepath.VolumeName(p) != "":
		return "", fmt.Sprintf("path %q is absolute; give a path relative to the workspace root", p)
	case !filepath.IsLocal(p):
		return "", fmt.Sprintf("path %q leads outside the workspace", p)
	}
	return filepath.Clean(p), ""
}

// rootErrText is an os.Root error for the model: no absolute path, and an
// escape through a symbolic link said plainly.
func rootErrText(err error) string {
	if err == nil {
		return ""
	}
	if strings.Contains(err.Error(), "path escapes from parent") {
		return "the path leads outside the workspace (through a symbolic link or ..)"
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return "a component of the path is not a directory"
	}
	if errors.Is(err, syscall.ELOOP) {
		return "too many levels of symbolic links"
	}
	return pathErrText(err)
}

// ---------------------------------------------------------------- write_file

// WriteFile is the built-in write_file tool.
type WriteFile struct {
	ws       *Workspace
	maxBytes int
}

var _ Tool = (*WriteFile)(nil)

// NewWriteFile returns a write_file tool confined to workspaceDir.
func NewWriteFile(workspaceDir string) *WriteFile {
	return &WriteFile{ws: NewWorkspace(workspaceDir), maxBytes: WriteFileMaxBytes}
}

var writeFileParams = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "maxLength": 4096,
      "description": "File path relative to the workspace root, e.g. \"notes/todo.md\"."},
    "content": {"type": "string", "maxLength": %d,
      "description": "The whole new content of the file (UTF-8 text)."}
  },
  "required": ["path", "content"],
  "additionalProperties": false
}`, WriteFileMaxBytes))

// Spec describes write_file.
func (t *WriteFile) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "write_file",
		Description: "Create a text file in your workspace, or replace the whole content of an existing one. " +
			"Missing parent directories are created. " + fmt.Sprintf("Content is at most %d KiB. ", WriteFileMaxBytes>>10) +
			"Paths are relative to the workspace root; absolute paths and paths leading outside the workspace " +
			"(by .. or symbolic links) are refused. To change part of a file, use edit_file.",
		Parameters: writeFileParams,
	}
}

type writeFileArgs struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// Run writes the file.
func (t *WriteFile) Run(ctx context.Context, call Call) (Result, error) {
	var args writeFileArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return errorResult("invalid arguments: %v", err), nil
	}
	rel, bad := CheckPath(args.Path)
	if bad != "" {
		return errorResult("%s", bad), nil
	}
	if rel == "." {
		return errorResult("path %q is the workspace root, not a file", args.Path), nil
	}
	if len(args.Content) > t.maxBytes {
		return errorResult("content is %d bytes; write_file writes at most %d", len(args.Content), t.maxBytes), nil
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	root, err := t.ws.open()
	if err != nil {
		return Result{}, fmt.Errorf("write_file: %w", err)
	}
	defer root.Close()

	created := false
	if _, err := root.Stat(rel); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return errorResult("cannot create the folders of %q: %s is a file, not a folder", args.Path, filepath.ToSlash(dir)), nil
			}
			return errorResult("cannot create the folders of %q: %s", args.Path, rootErrText(err)), nil
		}
	}
	if msg := writeWithin(root, rel, []byte(args.Content)); msg != "" {
		return errorResult("cannot write %q: %s", args.Path, msg), nil
	}
	verb := "wrote"
	if created {
		verb = "created"
	}
	return Result{Content: fmt.Sprintf("%s %s (%d bytes)", verb, filepath.ToSlash(rel), len(args.Content))}, nil
}

// writeWithin replaces rel's content. It opens without blocking and checks
// the file is a regular one before truncating, so a named pipe or device in
// the workspace is neither waited on nor written. The message is "" on success.
func writeWithin(root *os.Root, rel string, data []byte) string {
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return "it is not a regular file"
		}
		if errors.Is(err, syscall.EISDIR) {
			return "it is a directory"
		}
		return rootErrText(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return pathErrText(err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Sprintf("it is not a regular file (%s)", fileKind(info.Mode()))
	}
	if err := f.Truncate(0); err != nil {
		return pathErrText(err)
	}
	if _, err := f.Write(data); err != nil {
		return pathErrText(err)
	}
	if err := f.Close(); err != nil {
		return pathErrText(err)
	}
	return ""
}

// ----------------------------------------------------------------- edit_file

// EditFile is the built-in edit_file tool: it replaces an exact piece of text.
type EditFile struct {
	ws       *Workspace
	maxBytes int
}

var _ Tool = (*EditFile)(nil)

// NewEditFile returns an edit_file tool confined to workspaceDir.
func NewEditFile(workspaceDir string) *EditFile {
	return &EditFile{ws: NewWorkspace(workspaceDir), maxBytes: WriteFileMaxBytes}
}

var editFileParams = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "maxLength": 4096,
      "description": "File path relative to the workspace root."},
    "old_string": {"type": "string", "minLength": 1, "maxLength": %[1]d,
      "description": "The exact text to replace, including whitespace and indentation. It must occur exactly once in the file unless replace_all is true."},
    "new_string": {"type": "string", "maxLength": %[1]d,
      "description": "The text to put in its place."},
    "replace_all": {"type": "boolean",
      "description": "Replace every occurrence of old_string instead of requiring exactly one (default false)."}
  },
  "required": ["path", "old_string", "new_string"],
  "additionalProperties": false
}`, WriteFileMaxBytes))

// Spec describes edit_file.
func (t *EditFile) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "edit_file",
		Description: "Edit a text file in your workspace by replacing an exact string: old_string must occur " +
			"exactly once (include surrounding lines to make it unique), or set replace_all to replace every " +
			"occurrence. The call fails, changing nothing, when old_string is not found or is ambiguous. " +
			fmt.Sprintf("Files up to %d KiB can be edited. ", WriteFileMaxBytes>>10) +
			"Paths are relative to the workspace root; paths leading outside the workspace are refused. " +
			"To create a file, use write_file.",
		Parameters: editFileParams,
	}
}

type editFileArgs struct {
	Path       string `json:"path"`
	OldString  string `json:"old_string"`
	NewString  string `json:"new_string"`
	ReplaceAll bool   `json:"replace_all"`
}

// Run applies the edit.
func (t *EditFile) Run(ctx context.Context, call Call) (Result, error) {
	var args editFileArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return errorResult("invalid arguments: %v", err), nil
	}
	rel, bad := CheckPath(args.Path)
	if bad != "" {
		return errorResult("%s", bad), nil
	}
	if args.OldString == "" {
		return errorResult("old_string is empty; give the exact text to replace"), nil
	}
	if args.OldString == args.NewString {
		return errorResult("old_string and new_string are the same; nothing to change"), nil
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	root, err := t.ws.open()
	if err != nil {
		return Result{}, fmt.Errorf("edit_file: %w", err)
	}
	defer root.Close()

	data, msg := readWithin(root, rel, t.maxBytes)
	if msg != "" {
		return errorResult("cannot edit %q: %s", args.Path, msg), nil
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return errorResult("%q is a binary file; edit_file edits text files only", args.Path), nil
	}
	text := string(data)
	n := strings.Count(text, args.OldString)
	switch {
	case n == 0:
		return errorResult("old_string was not found in %q; read the file and copy the text exactly, whitespace included", args.Path), nil
	case n > 1 && !args.ReplaceAll:
		return errorResult("old_string occurs %d times in %q; include more surrounding text to make it unique, or set replace_all", n, args.Path), nil
	}
	var out string
	if args.ReplaceAll {
		out = strings.ReplaceAll(text, args.OldString, args.NewString)
	} else {
		out = strings.Replace(text, args.OldString, args.NewString, 1)
	}
	if len(out) > t.maxBytes {
		return errorResult("the edited file would be %d bytes; at most %d are allowed", len(out), t.maxBytes), nil
	}
	if msg := writeWithin(root, rel, []byte(out)); msg != "" {
		return errorResult("cannot write %q: %s", args.Path, msg), nil
	}
	return Result{Content: fmt.Sprintf("edited %s: replaced %d occurrence(s); the file is now %d bytes", filepath.ToSlash(rel), n, len(out))}, nil
}

// readWithin reads a regular file of at most max bytes; the message says why not.
func readWithin(root *os.Root, rel string, max int) ([]byte, string) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, rootErrText(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, pathErrText(err)
	}
	if info.IsDir() {
		return nil, "it is a directory"
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Sprintf("it is not a regular file (%s)", fileKind(info.Mode()))
	}
	if info.Size() > int64(max) {
		return nil, fmt.Sprintf("it is %d bytes; at most %d can be edited", info.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, pathErrText(err)
	}
	if len(data) > max {
		return nil, fmt.Sprintf("it is over %d bytes", max)
	}
	return data, ""
}

// ---------------------------------------------------------------- list_files

// ListFiles is the built-in list_files tool: a recursive listing. It only
// reads (safe to run without approval).
type ListFiles struct {
	ws *Workspace
}

var _ Tool = (*ListFiles)(nil)

// NewListFiles returns a list_files tool confined to workspaceDir.
func NewListFiles(workspaceDir string) *ListFiles {
	return &ListFiles{ws: NewWorkspace(workspaceDir)}
}

var listFilesParams = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "maxLength": 4096,
      "description": "Directory to list, relative to the workspace root (default \".\")."},
    "pattern": {"type": "string", "minLength": 1, "maxLength": 256,
      "description": "Glob filter, e.g. \"*.go\" (matched against file names) or \"src/*/*.md\" (matched against the path from the listed directory when it contains a /)."},
    "limit": {"type": "integer", "minimum": 1, "maximum": %d,
      "description": "Largest number of entries to show (default %d)."}
  },
  "additionalProperties": false
}`, listFilesMaxLimit, ListFilesDefaultLimit))

// Spec describes list_files.
func (t *ListFiles) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "list_files",
		Description: "List the files under a directory of your workspace, recursively, sorted by path: directories " +
			"end in /, symbolic links in @ (not followed), files show their size. pattern filters by a glob " +
			fmt.Sprintf("(* ? [abc]; ** is not supported). At most limit entries are shown (default %d); ", ListFilesDefaultLimit) +
			"a note says when more exist. Paths are relative to the workspace root.",
		Parameters: listFilesParams,
	}
}

type listFilesArgs struct {
	Path    string `json:"path"`
	Pattern string `json:"pattern"`
	Limit   int    `json:"limit"`
}

// Run lists the directory.
func (t *ListFiles) Run(ctx context.Context, call Call) (Result, error) {
	var args listFilesArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return errorResult("invalid arguments: %v", err), nil
	}
	if args.Path == "" {
		args.Path = "."
	}
	if args.Limit <= 0 {
		args.Limit = ListFilesDefaultLimit
	}
	args.Limit = min(args.Limit, listFilesMaxLimit)
	rel, bad := CheckPath(args.Path)
	if bad != "" {
		return errorResult("%s", bad), nil
	}
	if args.Pattern != "" {
		if _, err := path.Match(args.Pattern, ""); err != nil {
			return errorResult("pattern %q is not a valid glob: %v", args.Pattern, err), nil
		}
	}
	root, err := t.ws.open()
	if err != nil {
		return Result{}, fmt.Errorf("list_files: %w", err)
	}
	defer root.Close()
	info, err := root.Stat(rel)
	if err != nil {
		return errorResult("cannot list %q: %s", args.Path, rootErrText(err)), nil
	}
	if !info.IsDir() {
		return errorResult("%q is not a directory", args.Path), nil
	}
	// Confine the walk to the listed directory's own root, so nothing below
	// it is resolved relative to anything outside.
	sub, err := root.OpenRoot(rel)
	if err != nil {
		return errorResult("cannot list %q: %s", args.Path, rootErrText(err)), nil
	}
	defer sub.Close()

	var lines []string
	matched, visited := 0, 0
	stoppedEarly := false
	walkErr := fs.WalkDir(sub.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if p == "." {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		visited++
		if visited > listFilesMaxVisit {
			stoppedEarly = true
			return fs.SkipAll
		}
		if err != nil {
			// An unreadable directory is shown, not fatal.
			lines = append(lines, p+"/  (unreadable)")
			matched++
			return nil
		}
		if args.Pattern != "" && !globMatch(args.Pattern, p) {
			return nil
		}
		matched++
		if len(lines) >= args.Limit {
			return nil
		}
		line := p
		switch {
		case d.IsDir():
			line += "/"
		case d.Type()&fs.ModeSymlink != 0:
			line += "@"
		case d.Type().IsRegular():
			if fi, err := d.Info(); err == nil {
				line += fmt.Sprintf("  (%d bytes)", fi.Size())
			}
		}
		lines = append(lines, line)
		return nil
	})
	if walkErr != nil {
		if ctx.Err() != nil {
			return Result{}, walkErr
		}
		return errorResult("cannot list %q: %s", args.Path, rootErrText(walkErr)), nil
	}
	sort.Strings(lines)

	shown := filepath.ToSlash(rel)
	budget := max(MaxResultBytes(ctx)-200, 64)
	var b strings.Builder
	n := 0
	for _, l := range lines {
		if b.Len()+len(l)+1 > budget {
			break
		}
		b.WriteString(l)
		b.WriteByte('\n')
		n++
	}
	what := "entries"
	if args.Pattern != "" {
		what = fmt.Sprintf("entries matching %q", args.Pattern)
	}
	var out strings.Builder
	switch {
	case matched == 0:
		fmt.Fprintf(&out, "%s: no %s\n", shown, what)
	case stoppedEarly:
		fmt.Fprintf(&out, "%s: at least %d %s (the walk stopped after %d entries)\n", shown, matched, what, listFilesMaxVisit)
	default:
		fmt.Fprintf(&out, "%s: %d %s\n", shown, matched, what)
	}
	out.WriteString(b.String())
	if n < matched {
		fmt.Fprintf(&out, "[%d more entries not shown; narrow path or pattern, or raise limit]\n", matched-n)
	}
	return Result{Content: out.String()}, nil
}

// globMatch matches a pattern without a / against the base name, else
// against the whole relative path.
func globMatch(pattern, p string) bool {
	target := p
	if !strings.Contains(pattern, "/") {
		target = path.Base(p)
	}
	ok, _ := path.Match(pattern, target)
	return ok
}
