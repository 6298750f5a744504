package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/openintern/openintern/store"
)

// ingestMode is the mode of POST /api/memories/ingest (form field or query
// "mode"): "" or "local" reads files here, "mineru" sends PDFs to MinerU.
func ingestMode(c *gin.Context) string {
	if m := c.PostForm("mode"); m != "" {
		return strings.ToLower(strings.TrimSpace(m))
	}
	return strings.ToLower(strings.TrimSpace(c.Query("mode")))
}

type mineruAccepted struct {
	jobAccepted
	// Jobs holds every job queued: one per PDF (a URL or each file).
	Jobs []store.Job `json:"jobs"`
}

// ingestMineru queues one mineru_pdf job per PDF: the form's (or query's)
// "url", and each file of the fields "files" and "file". 202 with the jobs.
// Job parameters are spelled as ingest/mineru.Params reads them.
func (h *memoryHandlers) ingestMineru(c *gin.Context) {
	jobs := h.s.jobs
	if jobs == nil || jobs.KindMineru == "" {
		writeError(c, http.StatusNotImplemented, "mineru_disabled", "MinerU ingestion is not enabled on this daemon (mineru.enabled with an apiKey)")
		return
	}
	agentID, groupID, model := c.PostForm("agent_id"), c.PostForm("group_id"), c.PostForm("model_version")
	for f, v := range map[string]string{"agent_id": agentID, "group_id": groupID, "model_version": model} {
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) || len(v) > 256 {
			writeError(c, http.StatusBadRequest, "invalid_text", nulMessage(f))
			return
		}
	}
	if model != "" && model != "pipeline" && model != "vlm" {
		writeError(c, http.StatusBadRequest, "invalid_model_version", "model_version must be pipeline or vlm")
		return
	}
	base := map[string]any{"agent_id": agentID, "group_id": groupID, "model_version": model, "is_ocr": c.PostForm("is_ocr") == "true"}
	var news []store.NewJob
	add := func(params map[string]any, in []store.JobInput) bool {
		for k, v := range base {
			params[k] = v
		}
		b, err := json.Marshal(params)
		if err != nil {
			h.s.fail(c, err, "job")
			return false
		}
		news = append(news, store.NewJob{Scope: scopeOf(c), ID: "job_" + strings.ReplaceAll(uuid.NewString(), "-", ""),
			Kind: jobs.KindMineru, Params: b, Total: 1, Inputs: in})
		return true
	}
	rawURL := c.PostForm("url")
	if rawURL == "" {
		rawURL = c.Query("url")
	}
	if rawURL != "" {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || len(rawURL) > 4096 {
			writeError(c, http.StatusBadRequest, "invalid_url", "url must be an http(s) URL of a PDF, without a user name or password")
			return
		}
		if !add(map[string]any{"url": rawURL}, nil) {
			return
		}
	}
	var files []*multipart.FileHeader
	if form, err := c.MultipartForm(); err == nil {
		files = append(append(files, form.File["files"]...), form.File["file"]...)
	}
	if len(files) > MaxIngestFiles {
		writeError(c, http.StatusRequestEntityTooLarge, "too_many_files", fmt.Sprintf("at most %d files per request", MaxIngestFiles))
		return
	}
	for i, fh := range files {
		name, data, ok := h.readUpload(c, i, fh)
		if !ok {
			return
		}
		if !bytes.HasPrefix(data, []byte("%PDF-")) {
			writeError(c, http.StatusBadRequest, "unsupported_file", name+" is not a PDF; MinerU mode takes PDFs (other files: leave mode out)")
			return
		}
		if !add(map[string]any{"name": name}, []store.JobInput{{Seq: 0, Name: name, Data: data}}) {
			return
		}
	}
	if len(news) == 0 {
		writeError(c, http.StatusBadRequest, "missing_file", "mode mineru needs a url (form field or query) or PDF files (field files)")
		return
	}
	out := mineruAccepted{Jobs: make([]store.Job, 0, len(news))}
	for _, nj := range news {
		j, err := jobs.Store.CreateJob(c.Request.Context(), nj)
		if err != nil {
			h.s.fail(c, err, "job")
			return
		}
		out.Jobs = append(out.Jobs, j)
	}
	if jobs.Wake != nil {
		jobs.Wake()
	}
	out.JobID, out.Job = out.Jobs[0].ID, out.Jobs[0]
	c.Header("Location", "/api/jobs/"+out.JobID)
	c.JSON(http.StatusAccepted, out)
}
