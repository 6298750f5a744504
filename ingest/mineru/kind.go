package mineru

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/internal/httpretry"
	"github.com/openintern/openintern/store"
)

// KindPDF is the kind of a job that ingests one PDF through MinerU.
const KindPDF = "mineru_pdf"

// Params are a mineru_pdf job's parameters: a URL MinerU fetches, or (URL
// empty) the job's input 0, a file uploaded to MinerU under Name.
type Params struct {
	URL          string `json:"url,omitempty"`
	Name         string `json:"name,omitempty"`
	AgentID      string `json:"agent_id,omitempty"`
	GroupID      string `json:"group_id,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	IsOCR        bool   `json:"is_ocr,omitempty"`
}

// Check refuses parameters a job cannot run with.
func (p Params) Check() error {
	if p.URL == "" {
		if strings.TrimSpace(p.Name) == "" {
			return errors.New("a url or a file is required")
		}
		return nil
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an http(s) URL", p.URL)
	}
	if u.User != nil {
		return errors.New("url must not carry a user name or password")
	}
	return nil
}

// Source is what citations name: the URL, or the file's name.
func (p Params) Source() string {
	if p.URL != "" {
		return p.URL
	}
	return p.Name
}

// checkpoint is how far a job got. A task once created is only polled
// again after a crash, never created twice. The upload URL is not kept: it
// is presigned (a credential) and the checkpoint is shown with the job; a
// crash between asking for it and finishing the upload asks for a new one.
type checkpoint struct {
	TaskID   string `json:"task_id,omitempty"`
	BatchID  string `json:"batch_id,omitempty"`
	Uploaded bool   `json:"uploaded,omitempty"`
	Polls    int    `json:"polls,omitempty"`
	Done     bool   `json:"done,omitempty"`
}

// Kind runs mineru_pdf jobs.
type Kind struct {
	Client   *Client
	Store    store.JobStore
	Memories ingest.Memories
}

// Name is KindPDF.
func (Kind) Name() string { return KindPDF }

// Run creates (or, resumed, finds again) the job's task, polls it to its
// end, and puts its text into archival memory. A task MinerU fails fails
// the job with MinerU's reason, counted as the document's error.
func (k Kind) Run(ctx context.Context, j *ingest.Job) error {
	var p Params
	if err := json.Unmarshal(j.Params, &p); err != nil {
		return fmt.Errorf("bad parameters: %w", err)
	}
	if err := p.Check(); err != nil {
		return fmt.Errorf("bad parameters: %w", err)
	}
	var cp checkpoint
	if _, err := j.Checkpoint(&cp); err != nil {
		return err
	}
	if cp.Done {
		return nil
	}
	j.Update(func(pr *store.JobProgress) { pr.Counts.Found = 1 })
	opts := TaskOptions{ModelVersion: p.ModelVersion, IsOCR: p.IsOCR, DataID: dataID(j.ID)}
	if err := k.start(ctx, j, p, opts, &cp); err != nil {
		return err
	}
	st, err := k.poll(ctx, j, p, &cp)
	if err != nil {
		var te *TaskError
		if errors.As(err, &te) {
			j.ItemFailed(p.Source(), err)
		}
		return err
	}
	res, err := k.Client.Download(ctx, st.FullZipURL)
	if err != nil {
		return err
	}
	doc, err := res.Document(ctx, titleOf(p))
	if err != nil {
		j.ItemFailed(p.Source(), err)
		return err
	}
	target := ingest.Target{Scope: j.Scope, AgentID: p.AgentID, GroupID: p.GroupID}
	out, err := ingest.PutDocument(ctx, k.Memories, target, j.ID, p.Source(), ingest.ContentHash([]byte(res.Markdown)), doc)
	if err != nil {
		return err
	}
	j.Update(func(pr *store.JobProgress) {
		if pr.Total > 0 {
			pr.Done = pr.Total
		} else {
			pr.Done, pr.Total = 1, 1
		}
		switch out {
		case ingest.New:
			pr.Counts.New++
		case ingest.Changed:
			pr.Counts.Changed++
		default:
			pr.Counts.Unchanged++
		}
	})
	cp.Done = true
	return j.Save(ctx, cp)
}

// start creates the task (URL) or the upload and sends the file, saving
// each step in the checkpoint before the next.
func (k Kind) start(ctx context.Context, j *ingest.Job, p Params, opts TaskOptions, cp *checkpoint) error {
	if p.URL != "" {
		if cp.TaskID != "" {
			return nil
		}
		id, err := k.Client.CreateURLTask(ctx, p.URL, opts)
		if err != nil {
			return err
		}
		cp.TaskID = id
		return j.Save(ctx, cp)
	}
	if cp.Uploaded {
		return nil
	}
	in, err := k.Store.JobInput(ctx, j.Scope, j.ID, 0)
	if err != nil {
		return fmt.Errorf("the job's file: %w", err)
	}
	batch, upURL, err := k.Client.RequestUpload(ctx, uploadName(p.Name), opts)
	if err != nil {
		return err
	}
	cp.BatchID = batch
	if err := j.Save(ctx, cp); err != nil {
		return err
	}
	if err := k.Client.Upload(ctx, upURL, in.Data); err != nil {
		return err
	}
	cp.Uploaded = true
	return j.Save(ctx, cp)
}

// poll looks at the task every PollInterval until it is done, showing its
// pages as the job's progress; MaxPollAttempts polls (counted across
// resumes) and it is given up.
func (k Kind) poll(ctx context.Context, j *ingest.Job, p Params, cp *checkpoint) (Status, error) {
	for {
		var st Status
		var err error
		if cp.TaskID != "" {
			st, err = k.Client.TaskStatus(ctx, cp.TaskID)
		} else {
			st, err = k.Client.BatchStatus(ctx, cp.BatchID, uploadName(p.Name))
		}
		if err != nil {
			return Status{}, err
		}
		cp.Polls++
		switch st.State {
		case StateDone:
			if st.FullZipURL == "" {
				return Status{}, errors.New("mineru: the task is done but names no result zip")
			}
			return st, nil
		case StateFailed:
			id := cp.TaskID
			if id == "" {
				id = "of batch " + cp.BatchID
			}
			return Status{}, &TaskError{ID: id, Message: st.ErrMsg}
		}
		j.Update(func(pr *store.JobProgress) {
			if st.TotalPages > 0 {
				pr.Total, pr.Done = st.TotalPages, min(st.ExtractedPages, st.TotalPages)
			}
		})
		if err := j.Save(ctx, cp); err != nil {
			return Status{}, err
		}
		if cp.Polls >= k.Client.MaxPollAttempts() {
			return Status{}, fmt.Errorf("mineru: the task is still %s after %d polls (maxPollAttempts); giving up", st.State, cp.Polls)
		}
		if err := httpretry.Sleep(ctx, k.Client.PollInterval()); err != nil {
			return Status{}, err
		}
	}
}

// dataID ties MinerU's task to the job (MinerU allows letters, digits, _ - .).
func dataID(jobID string) string {
	var b strings.Builder
	for _, r := range jobID {
		if r < 128 && (r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}

// uploadName is the base name MinerU is told (it wants a .pdf name).
func uploadName(name string) string {
	base := name[strings.LastIndexAny(name, `/\`)+1:]
	if base == "" {
		base = "document.pdf"
	}
	if !strings.HasSuffix(strings.ToLower(base), ".pdf") {
		base += ".pdf"
	}
	return base
}

func titleOf(p Params) string {
	if p.URL != "" {
		u, err := url.Parse(p.URL)
		if err == nil {
			if b := u.Path[strings.LastIndex(u.Path, "/")+1:]; b != "" {
				return b
			}
			return u.Host
		}
		return p.URL
	}
	return uploadName(p.Name)
}

var errNoText = fmt.Errorf("mineru: the result has no text: %w", ingest.ErrUnsupported)
