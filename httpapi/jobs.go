package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// Jobs is what the job routes need of the store (both stores implement it).
type Jobs interface {
	CreateJob(ctx context.Context, j store.NewJob) (store.Job, error)
	GetJob(ctx context.Context, scope store.Scope, id string) (store.Job, error)
	ListJobs(ctx context.Context, scope store.Scope, page store.Page) ([]store.Job, int, error)
	CancelJob(ctx context.Context, scope store.Scope, id string) (store.Job, error)
}

// JobsConfig mounts the job routes.
type JobsConfig struct {
	Store Jobs
	// Wake tells the daemon's job runner a job was queued (nil: it finds it
	// at its next poll).
	Wake func()
	// Poll is how often a job's stream reads its progress (default 500 ms).
	// The store is read, not an in-process feed, so a job run by another
	// daemon streams the same.
	Poll time.Duration
	// KindLocalFiles is the kind of an upload's job (ingest.KindLocalFiles;
	// httpapi does not import the runner).
	KindLocalFiles string
	// KindMineru is the kind of a MinerU job (mineru.KindPDF); "" when
	// MinerU is off, and mode=mineru answers 501.
	KindMineru string
}

// Limits of an ingestion upload: each file, and how many in one request
// (the request as a whole is bounded by MaxUploadBytes).
const (
	MaxIngestFileBytes = 16 << 20
	MaxIngestFiles     = 1000
	maxSourceName      = 1024
)

// MountJobs adds the /api/jobs routes and lets POST /api/memories/ingest
// queue jobs.
func (s *Server) MountJobs(cfg JobsConfig) {
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.KindLocalFiles == "" {
		cfg.KindLocalFiles = "local_files"
	}
	s.jobs = &cfg
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/jobs", Role: auth.RoleViewer,
		Summary: "List the scope's ingestion jobs, newest first", Response: listOf{"jobs", store.Job{}}, Query: pageQuery()}, s.listJobs)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/jobs/:job_id", Role: auth.RoleViewer,
		Summary: "Get an ingestion job: status, progress, counts and per-item errors", Response: store.Job{}}, s.getJob)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/jobs/:job_id/stream", Role: auth.RoleViewer, Stream: true,
		Summary: "Stream a job's progress (SSE `event: progress` with the job, then `event: end` when it has ended)"}, s.streamJob)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/jobs/:job_id/cancel", Role: auth.RoleMember,
		Summary:  "Cancel a job: a queued one at once, a running one at its current item",
		Response: store.Job{}, Errors: []int{http.StatusConflict}}, s.cancelJob)
}

func (s *Server) listJobs(c *gin.Context) { listPaged(s, c, "jobs", s.jobs.Store.ListJobs) }

func (s *Server) getJob(c *gin.Context) {
	j, err := s.jobs.Store.GetJob(c.Request.Context(), scopeOf(c), c.Param("job_id"))
	if err != nil {
		s.fail(c, err, "job")
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s *Server) cancelJob(c *gin.Context) {
	j, err := s.jobs.Store.CancelJob(c.Request.Context(), scopeOf(c), c.Param("job_id"))
	if errors.Is(err, store.ErrJobEnded) {
		writeError(c, http.StatusConflict, "job_ended", "the job has already ended ("+j.Status+")")
		return
	}
	if err != nil {
		s.fail(c, err, "job")
		return
	}
	c.JSON(http.StatusOK, j)
}

// streamJob sends the job as an `event: progress` whenever it changed, read
// from the store every Poll, and ends with `event: end` once it has ended.
func (s *Server) streamJob(c *gin.Context) {
	scope, id := scopeOf(c), c.Param("job_id")
	ctx := c.Request.Context()
	j, err := s.jobs.Store.GetJob(ctx, scope, id)
	if err != nil {
		s.fail(c, err, "job")
		return
	}
	if refused := s.streams.acquire(scope); refused != "" {
		c.Header("Retry-After", strconv.Itoa(streamRetryAfter))
		writeError(c, http.StatusTooManyRequests, "too_many_streams", "too many open streams: "+refused+"; close one or retry later")
		return
	}
	defer s.streams.release(scope)
	flusher, ok := c.Writer.(http.Flusher)
	if !ok {
		writeError(c, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	if g := s.deps.SSEClients; g != nil {
		g.Inc()
		defer g.Dec()
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	w := c.Writer
	poll := time.NewTicker(s.jobs.Poll)
	defer poll.Stop()
	heartbeat := time.NewTicker(s.deps.Heartbeat)
	defer heartbeat.Stop()
	var last time.Time
	lastStatus := ""
	for {
		if !j.UpdatedAt.Equal(last) || j.Status != lastStatus {
			data, err := json.Marshal(j)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: progress\ndata: %s\n\n", data); err != nil {
				return
			}
			flusher.Flush()
			last, lastStatus = j.UpdatedAt, j.Status
		}
		if store.JobEnded(j.Status) {
			fmt.Fprintf(w, "event: end\ndata: {\"status\":%q}\n\n", j.Status)
			flusher.Flush()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			flusher.Flush()
			continue
		case <-poll.C:
		}
		next, err := s.jobs.Store.GetJob(ctx, scope, id)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.deps.Logger.Warn("job stream: read the job; retrying at the next poll", "job_id", id, "err", err)
			continue
		}
		j = next
	}
}

type jobAccepted struct {
	JobID string    `json:"job_id"`
	Job   store.Job `json:"job"`
}

// ingestFiles queues a local_files job for the files of the form's "files"
// field (one or several): 202 with the job. Each file is read by the job,
// which reports a file it cannot read (binary, not UTF-8, a broken PDF) as
// that file's error and goes on with the others. The files' names (with
// their paths, from the raw Content-Disposition: mime/multipart keeps only
// the base name) are the sources their citations name.
func (h *memoryHandlers) ingestFiles(c *gin.Context, files []*multipart.FileHeader) {
	jobs := h.s.jobs
	if jobs == nil {
		writeError(c, http.StatusNotImplemented, "jobs_disabled", "this daemon runs no ingestion jobs; upload one text file in the field \"file\"")
		return
	}
	if len(files) > MaxIngestFiles {
		writeError(c, http.StatusRequestEntityTooLarge, "too_many_files", fmt.Sprintf("at most %d files per request", MaxIngestFiles))
		return
	}
	agentID, groupID := c.PostForm("agent_id"), c.PostForm("group_id")
	for f, v := range map[string]string{"agent_id": agentID, "group_id": groupID} {
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) || len(v) > 256 {
			writeError(c, http.StatusBadRequest, "invalid_text", nulMessage(f))
			return
		}
	}
	inputs := make([]store.JobInput, 0, len(files))
	for i, fh := range files {
		name, data, ok := h.readUpload(c, i, fh)
		if !ok {
			return
		}
		inputs = append(inputs, store.JobInput{Seq: i, Name: name, Data: data})
	}
	params, _ := json.Marshal(map[string]string{"agent_id": agentID, "group_id": groupID})
	j, err := jobs.Store.CreateJob(c.Request.Context(), store.NewJob{Scope: scopeOf(c), ID: "job_" + strings.ReplaceAll(uuid.NewString(), "-", ""),
		Kind: jobs.KindLocalFiles, Params: params, Total: len(inputs), Inputs: inputs})
	if err != nil {
		h.s.fail(c, err, "job")
		return
	}
	if jobs.Wake != nil {
		jobs.Wake()
	}
	c.Header("Location", "/api/jobs/"+j.ID)
	c.JSON(http.StatusAccepted, jobAccepted{JobID: j.ID, Job: j})
}

// sourceName is an uploaded file's name as the client sent it, path
// included, or "" when it is not a usable label.
// readUpload reads the i-th file of an upload (at most MaxIngestFileBytes)
// under its source name; when it cannot, it has answered the request.
func (h *memoryHandlers) readUpload(c *gin.Context, i int, fh *multipart.FileHeader) (name string, data []byte, ok bool) {
	name = sourceName(fh)
	if name == "" {
		writeError(c, http.StatusBadRequest, "invalid_filename",
			fmt.Sprintf("file %d has no usable name: a name is UTF-8, at most %d bytes, without NUL or control characters", i+1, maxSourceName))
		return "", nil, false
	}
	if fh.Size > MaxIngestFileBytes {
		writeError(c, http.StatusRequestEntityTooLarge, "file_too_large",
			fmt.Sprintf("%s is %d bytes; a file may have at most %d", name, fh.Size, MaxIngestFileBytes))
		return "", nil, false
	}
	f, err := fh.Open()
	if err != nil {
		h.s.fail(c, err, "file")
		return "", nil, false
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxIngestFileBytes+1))
	_ = f.Close()
	if err != nil {
		h.s.fail(c, err, "file")
		return "", nil, false
	}
	return name, data, true
}

func sourceName(fh *multipart.FileHeader) string {
	name := fh.Filename
	if _, params, err := mime.ParseMediaType(fh.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		name = params["filename"]
	}
	name = strings.ReplaceAll(strings.TrimSpace(name), `\`, "/")
	if name == "" || len(name) > maxSourceName || !utf8.ValidString(name) {
		return ""
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return name
}
