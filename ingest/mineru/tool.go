package mineru

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/tools"
)

// MaxFileBytes bounds a file sent to MinerU from the workspace or an
// upload: the file is kept with its job until the job ends.
const MaxFileBytes = 16 << 20

// maxToolWait keeps a waiting call under the tool router's one-minute limit.
const maxToolWait = 50 * time.Second

// JobCreator is what the tool needs of the job store.
type JobCreator interface {
	CreateJob(ctx context.Context, j store.NewJob) (store.Job, error)
	GetJob(ctx context.Context, scope store.Scope, id string) (store.Job, error)
}

// Tool is mineru_ingest_pdf: it queues a mineru_pdf job for a URL or a
// PDF in the agent's workspace (confined like read_file), answers the
// job's id, or waits up to wait_seconds for its result.
type Tool struct {
	Jobs      JobCreator
	Workspace string
	// Wake tells the job runner a job was queued (nil: its next poll).
	Wake func()
	// PollEvery is how often a waiting call reads the job (default 500 ms).
	PollEvery time.Duration
}

var _ tools.Tool = Tool{}

var toolParams = json.RawMessage(`{
  "type": "object",
  "properties": {
    "url": {"type": "string", "maxLength": 4096, "description": "An http(s) URL of a PDF that MinerU fetches."},
    "path": {"type": "string", "maxLength": 4096, "description": "A PDF in your workspace, relative to its root (e.g. \"papers/report.pdf\")."},
    "model_version": {"type": "string", "enum": ["pipeline", "vlm"], "description": "MinerU's model (default: the daemon's)."},
    "is_ocr": {"type": "boolean", "description": "OCR the pages (scanned PDFs)."},
    "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 50,
      "description": "Wait up to this long for the result (default 0: answer the job id at once; follow it with GET /api/jobs/{id})."}
  },
  "additionalProperties": false
}`)

// Spec describes mineru_ingest_pdf.
func (Tool) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "mineru_ingest_pdf",
		Description: "Turn a PDF into searchable archival memory with MinerU (layout, tables, formulas, OCR). " +
			"Give exactly one of url (an http(s) URL of the PDF) or path (a PDF in your workspace). " +
			"It runs as a background job and answers its id; with wait_seconds it waits that long for the result. " +
			"Afterwards memory_search finds the text, and each hit names the document and its page.",
		Parameters: toolParams,
	}
}

type toolArgs struct {
	URL          string `json:"url"`
	Path         string `json:"path"`
	ModelVersion string `json:"model_version"`
	IsOCR        bool   `json:"is_ocr"`
	WaitSeconds  int    `json:"wait_seconds"`
}

func errResult(format string, a ...any) tools.Result {
	return tools.Result{Content: fmt.Sprintf(format, a...), IsError: true}
}

// Run queues the job (once per call, also when a resumed run calls again).
func (t Tool) Run(ctx context.Context, call tools.Call) (tools.Result, error) {
	var a toolArgs
	if err := json.Unmarshal(call.Args, &a); err != nil {
		return errResult("invalid arguments: %v", err), nil
	}
	if (a.URL == "") == (a.Path == "") {
		return errResult("give exactly one of url or path"), nil
	}
	p := Params{URL: strings.TrimSpace(a.URL), AgentID: call.AgentID, GroupID: call.GroupID, ModelVersion: a.ModelVersion, IsOCR: a.IsOCR}
	var inputs []store.JobInput
	if a.Path != "" {
		data, bad, err := t.readPDF(a.Path)
		if err != nil {
			return tools.Result{}, err
		}
		if bad != "" {
			return errResult("%s", bad), nil
		}
		p.Name = filepath.ToSlash(filepath.Clean(a.Path))
		inputs = []store.JobInput{{Seq: 0, Name: p.Name, Data: data}}
	}
	if err := p.Check(); err != nil {
		return errResult("%v", err), nil
	}
	params, err := json.Marshal(p)
	if err != nil {
		return tools.Result{}, err
	}
	id := tools.DerivedID("job_", call)
	if id == "" {
		id = "job_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	j, err := t.Jobs.CreateJob(ctx, store.NewJob{Scope: call.Scope, ID: id, Kind: KindPDF, Params: params, Total: 1, Inputs: inputs})
	if errors.Is(err, store.ErrConflict) {
		j, err = t.Jobs.GetJob(ctx, call.Scope, id) // this call, run again after a crash
	}
	if err != nil {
		return tools.Result{}, fmt.Errorf("mineru_ingest_pdf: queue the job: %w", err)
	}
	if t.Wake != nil {
		t.Wake()
	}
	if wait := min(time.Duration(a.WaitSeconds)*time.Second, maxToolWait); wait > 0 {
		j = t.wait(ctx, call.Scope, j, wait)
	}
	return tools.Result{Content: describe(j, p.Source())}, nil
}

// wait reads the job until it ended or wait passed (or ctx ended).
func (t Tool) wait(ctx context.Context, scope store.Scope, j store.Job, wait time.Duration) store.Job {
	every := t.PollEvery
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !store.JobEnded(j.Status) {
		select {
		case <-ctx.Done():
			return j
		case <-deadline.C:
			return j
		case <-tick.C:
		}
		if next, err := t.Jobs.GetJob(ctx, scope, j.ID); err == nil {
			j = next
		}
	}
	return j
}

func describe(j store.Job, source string) string {
	out := map[string]any{"job_id": j.ID, "status": j.Status, "source": source}
	switch {
	case j.Status == store.JobCompleted:
		out["pages"] = j.Total
		out["note"] = "ingested; memory_search finds its text, with the page in each hit's source"
	case j.Status == store.JobFailed:
		out["error"] = j.Error
	case !store.JobEnded(j.Status):
		out["progress"] = map[string]int{"done": j.Done, "total": j.Total}
		out["note"] = "still running; call again later with wait_seconds or check GET /api/jobs/" + j.ID
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// readPDF reads a workspace file through os.Root, so "..", absolute paths
// and symbolic links cannot leave the workspace.
func (t Tool) readPDF(p string) (data []byte, bad string, err error) {
	rel, bad := tools.CheckPath(p)
	if bad != "" {
		return nil, bad, nil
	}
	root, err := os.OpenRoot(t.Workspace)
	if err != nil {
		return nil, "", fmt.Errorf("mineru_ingest_pdf: open workspace: %w", err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		if strings.Contains(err.Error(), "path escapes from parent") {
			return nil, fmt.Sprintf("path %q leads outside the workspace", p), nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Sprintf("%q does not exist in the workspace", p), nil
		}
		return nil, fmt.Sprintf("cannot read %q", p), nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return nil, fmt.Sprintf("%q is not a regular file", p), nil
	}
	if info.Size() > MaxFileBytes {
		return nil, fmt.Sprintf("%q is %d bytes; at most %d can be sent", p, info.Size(), MaxFileBytes), nil
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("mineru_ingest_pdf: read %q: %w", p, err)
	}
	if !strings.HasPrefix(string(data[:min(len(data), 5)]), "%PDF-") {
		return nil, fmt.Sprintf("%q is not a PDF", p), nil
	}
	return data, "", nil
}
