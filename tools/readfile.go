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
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/openintern/openintern/llm"
)

// Limits of read_file.
const (
	// ReadFileMaxBytes is how much of a file read_file reads; a larger file is
	// read up to here and the result says so.
	ReadFileMaxBytes = 1 << 20
	// ReadFileDefaultLimit is how many lines read_file shows when the call gives no limit.
	ReadFileDefaultLimit = 1000
	// readFileMaxLimit is the largest limit a call may ask for.
	readFileMaxLimit = 5000
	// readFileMaxEntries bounds a directory listing.
	readFileMaxEntries = 500
	// readFileBinarySniff is how much of a file is checked for NUL bytes.
	readFileBinarySniff = 8 << 10
)

// ReadFile is the built-in read_file tool: it reads text files, by lines, and
// lists directories, only inside one workspace directory. Absolute paths, ".."
// escapes and symbolic links that lead outside the workspace are refused.
type ReadFile struct {
	dir      string
	maxBytes int64 // ReadFileMaxBytes; smaller in tests
}

var _ Tool = (*ReadFile)(nil)

// NewReadFile returns a read_file tool confined to workspaceDir. The directory
// is resolved (symbolic links included) on every call, so it may be created
// after the tool.
func NewReadFile(workspaceDir string) *ReadFile {
	return &ReadFile{dir: workspaceDir, maxBytes: ReadFileMaxBytes}
}

var readFileParams = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "maxLength": 4096,
      "description": "File or directory path relative to the workspace root, e.g. \"src/main.go\"; \".\" is the root itself."},
    "offset": {"type": "integer", "minimum": 1,
      "description": "1-based number of the first line to show (default 1)."},
    "limit": {"type": "integer", "minimum": 1, "maximum": %d,
      "description": "Largest number of lines to show (default %d)."}
  },
  "required": ["path"],
  "additionalProperties": false
}`, readFileMaxLimit, ReadFileDefaultLimit))

// Spec describes read_file.
func (t *ReadFile) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "read_file",
		Description: "Read a UTF-8 text file from your workspace, by lines. The result starts with a line " +
			"telling which lines are shown out of how many; when the output stops early, a closing note gives " +
			"the offset to continue with. offset is the 1-based first line (default 1), limit the number of " +
			fmt.Sprintf("lines (default %d). Files larger than %d KiB are read only up to there. ", ReadFileDefaultLimit, ReadFileMaxBytes>>10) +
			"A directory path gives a listing of its entries (directories end in /, symbolic links in @). " +
			"Paths are relative to the workspace root; absolute paths and paths leading outside the workspace " +
			"are refused. Binary files are not shown.",
		Parameters: readFileParams,
	}
}

type readFileArgs struct {
	Path   string `json:"path"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

// Run reads the file or lists the directory. Problems the model can fix (a bad
// path, a missing file, an offset past the end) are error results; failures of
// the workspace itself are Go errors.
func (t *ReadFile) Run(ctx context.Context, call Call) (Result, error) {
	var args readFileArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return errorResult("invalid arguments: %v", err), nil
	}
	if args.Offset <= 0 {
		args.Offset = 1
	}
	if args.Limit <= 0 {
		args.Limit = ReadFileDefaultLimit
	}
	if args.Limit > readFileMaxLimit {
		args.Limit = readFileMaxLimit
	}

	rootReal, rel, bad, err := t.resolve(args.Path)
	if err != nil {
		return Result{}, err
	}
	if bad != "" {
		return errorResult("%s", bad), nil
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	// Open through an os.Root too: should a symbolic link change between the
	// check above and here, the open still cannot leave the workspace.
	root, err := os.OpenRoot(rootReal)
	if err != nil {
		return Result{}, fmt.Errorf("read_file: open workspace: %w", err)
	}
	defer root.Close()

	shown := filepath.ToSlash(rel)
	info, err := root.Stat(rel)
	if err != nil {
		return errorResult("cannot read %q: %s", args.Path, pathErrText(err)), nil
	}
	switch {
	case info.IsDir():
		return t.list(ctx, root, rel, shown)
	case !info.Mode().IsRegular():
		return errorResult("%q is not a regular file (%s); only files and directories can be read", args.Path, fileKind(info.Mode())), nil
	}

	f, err := root.Open(rel)
	if err != nil {
		return errorResult("cannot read %q: %s", args.Path, pathErrText(err)), nil
	}
	defer f.Close()
	info, err = f.Stat()
	if err != nil {
		return Result{}, fmt.Errorf("read_file: stat %q: %w", shown, err)
	}
	if !info.Mode().IsRegular() {
		return errorResult("%q is not a regular file", args.Path), nil
	}
	data, err := io.ReadAll(io.LimitReader(f, t.maxBytes+1))
	if err != nil {
		return Result{}, fmt.Errorf("read_file: read %q: %w", shown, err)
	}
	cut := int64(len(data)) > t.maxBytes
	if cut {
		data = data[:t.maxBytes]
	}
	return t.render(ctx, shown, data, info.Size(), cut, args.Offset, args.Limit), nil
}

// resolve maps a model-given path to the resolved workspace root and a path
// relative to it with no symbolic links left. bad explains a refused path.
func (t *ReadFile) resolve(p string) (rootReal, rel, bad string, err error) {
	rootAbs, err := filepath.Abs(t.dir)
	if err != nil {
		return "", "", "", fmt.Errorf("read_file: workspace %q: %w", t.dir, err)
	}
	rootReal, err = filepath.EvalSymlinks(rootAbs)
	if err != nil {
		return "", "", "", fmt.Errorf("read_file: workspace %q: %w", t.dir, err)
	}
	if p == "" {
		return "", "", "path is empty; give a path relative to the workspace root (\".\" for the root)", nil
	}
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || filepath.VolumeName(p) != "" {
		return "", "", fmt.Sprintf("path %q is absolute; give a path relative to the workspace root", p), nil
	}
	if strings.ContainsRune(p, 0) {
		return "", "", "path contains a NUL byte", nil
	}
	if !filepath.IsLocal(p) {
		return "", "", fmt.Sprintf("path %q leads outside the workspace", p), nil
	}
	real, err := filepath.EvalSymlinks(filepath.Join(rootReal, filepath.Clean(p)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Sprintf("%q does not exist in the workspace", p), nil
		}
		return "", "", fmt.Sprintf("cannot read %q: %s", p, pathErrText(err)), nil
	}
	rel, err = filepath.Rel(rootReal, real)
	if err != nil || (rel != "." && !filepath.IsLocal(rel)) {
		return "", "", fmt.Sprintf("path %q leads outside the workspace through a symbolic link", p), nil
	}
	return rootReal, rel, "", nil
}

// pathErrText is an error's text without the absolute path it may carry.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "special file"
}

// list shows a directory's entries, sorted, directories with a trailing / and
// symbolic links with @; regular files with their size.
func (t *ReadFile) list(ctx context.Context, root *os.Root, rel, shown string) (Result, error) {
	d, err := root.Open(rel)
	if err != nil {
		return errorResult("cannot list %q: %s", shown, pathErrText(err)), nil
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return errorResult("cannot list %q: %s", shown, pathErrText(err)), nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })

	budget := max(MaxResultBytes(ctx)-160, 64)
	var b strings.Builder
	n := 0
	for _, e := range entries {
		if n == readFileMaxEntries {
			break
		}
		line := e.Name()
		switch {
		case e.IsDir():
			line += "/"
		case e.Type()&fs.ModeSymlink != 0:
			line += "@"
		case e.Type().IsRegular():
			if fi, err := e.Info(); err == nil {
				line += fmt.Sprintf("  (%d bytes)", fi.Size())
			}
		}
		if b.Len()+len(line)+1 > budget {
			break
		}
		b.WriteString(line)
		b.WriteByte('\n')
		n++
	}
	header := fmt.Sprintf("directory %s: %d entries", shown, len(entries))
	if len(entries) == 0 {
		header = fmt.Sprintf("directory %s is empty", shown)
	}
	out := header + "\n" + b.String()
	if n < len(entries) {
		out += fmt.Sprintf("[%d more entries not shown]\n", len(entries)-n)
	}
	return Result{Content: out}, nil
}

// render shows lines offset..offset+limit-1 of data, as many as fit the
// result limit, between a header and, when it stopped early, a note.
func (t *ReadFile) render(ctx context.Context, shown string, data []byte, size int64, cut bool, offset, limit int) Result {
	sniff := data[:min(len(data), readFileBinarySniff)]
	text := data
	if cut {
		// A cut may split a rune at the very end; that is not binary.
		text = trimPartialRune(data)
	}
	if bytes.IndexByte(sniff, 0) >= 0 || !utf8.Valid(text) {
		return errorResult("%q is a binary file (%d bytes); its content is not shown", shown, size)
	}
	if len(data) == 0 {
		return Result{Content: fmt.Sprintf("%s: empty file", shown)}
	}

	lines := strings.SplitAfter(string(text), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	total := len(lines)
	totalText := fmt.Sprint(total)
	if cut {
		totalText = fmt.Sprintf("at least %d", total)
	}
	if offset > total {
		return errorResult("offset %d is past the end of %s (%s lines)", offset, shown, totalText)
	}

	budget := max(MaxResultBytes(ctx)-300, 64) // room for the header and notes
	var b strings.Builder
	first := offset
	last := offset - 1
	longLine := false
	for i := offset - 1; i < total && i < offset-1+limit; i++ {
		line := lines[i]
		if b.Len()+len(line) > budget {
			if b.Len() == 0 { // one line longer than the whole budget: show its start
				b.WriteString(cutUTF8(line, budget))
				last = i + 1
				longLine = true
			}
			break
		}
		b.WriteString(line)
		last = i + 1
	}
	body := b.String()
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}

	var out strings.Builder
	fmt.Fprintf(&out, "%s: lines %d-%d of %s (%d bytes)\n", shown, first, last, totalText, size)
	out.WriteString(body)
	if longLine {
		fmt.Fprintf(&out, "[line %d is longer than fits in one result; only its first %d bytes are shown]\n", last, budget)
	}
	if last < total {
		fmt.Fprintf(&out, "[%d more lines; call read_file with offset=%d to continue]\n", total-last, last+1)
	}
	if cut {
		fmt.Fprintf(&out, "[file is %d bytes; only its first %d bytes were read, so it is truncated]\n", size, len(data))
	}
	return Result{Content: out.String()}
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
