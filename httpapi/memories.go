package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// MemoryService is what the memory handlers need (memory.Service implements it).
type MemoryService interface {
	Write(ctx context.Context, req memory.WriteRequest) (memory.Memory, error)
	Get(ctx context.Context, scope store.Scope, id string) (memory.Memory, error)
	Delete(ctx context.Context, scope store.Scope, id string) error
	Search(ctx context.Context, req memory.SearchRequest) ([]memory.Result, error)
	CoreBlocks(ctx context.Context, scope store.Scope, agentID string) ([]memory.CoreBlock, error)
	SetCoreBlock(ctx context.Context, scope store.Scope, agentID, label, value string) (memory.CoreBlock, error)
}

// MountMemory adds the memory routes. It is separate from New so the daemon
// mounts them only when it has a memory service.
func (s *Server) MountMemory(svc MemoryService) {
	h := &memoryHandlers{s: s, svc: svc}
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/memories", Role: auth.RoleMember,
		Summary: "Write a memory (archival or episodic), chunked and embedded for search",
		Body:    createMemoryBody{}, Response: memory.Memory{}, Status: http.StatusCreated}, h.create)
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/memories/ingest", Role: auth.RoleMember,
		Summary: "Upload a text or markdown file (field file) as one archival memory (201); or files (field files, one or " +
			"more: PDF, HTML, Markdown, text) as an ingestion job, answered 202 with the job (see /api/jobs); with mode=mineru " +
			"(form field or query) a url or PDF files go to MinerU, one job each",
		Body: upload{}, Response: eitherOf{ingestAnswer{}, jobAccepted{}}, Status: http.StatusCreated,
		Errors: []int{http.StatusNotImplemented}}, h.ingest)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/memories/search", Role: auth.RoleViewer,
		Summary:  "Search memories by meaning and keywords (hybrid, vector or fulltext)",
		Response: memorySearchAnswer{}, Query: memorySearchQuery()}, h.search)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/memories/:memory_id", Role: auth.RoleViewer,
		Summary: "Get a memory", Response: memory.Memory{}}, h.get)
	s.register(api, routeSpec{Method: http.MethodDelete, Path: "/memories/:memory_id", Role: auth.RoleMember,
		Summary: "Delete a memory and its chunks", Response: memoryDeleted{}}, h.delete)
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/agents/:agent_id/core-memory", Role: auth.RoleViewer,
		Summary: "Get an agent's core memory blocks", Response: coreMemoryAnswer{}}, h.getCore)
	s.register(api, routeSpec{Method: http.MethodPut, Path: "/agents/:agent_id/core-memory", Role: auth.RoleMember,
		Summary: "Set blocks of an agent's core memory", Body: putCoreBody{}, Response: coreMemoryAnswer{}}, h.putCore)
}

type memoryHandlers struct {
	s   *Server
	svc MemoryService
}

// failMemory maps the service's refusals to 400 and the rest like Server.fail.
func (h *memoryHandlers) fail(c *gin.Context, err error, what string) {
	if errors.Is(err, memory.ErrInvalid) {
		writeError(c, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if errors.Is(err, memory.ErrEmbedder) {
		c.Header("Retry-After", "10")
		writeError(c, http.StatusServiceUnavailable, "embedder_unavailable",
			"the embedding model could not be reached; nothing was stored, try again later")
		return
	}
	h.s.fail(c, err, what)
}

type createMemoryBody struct {
	OrgID      string            `json:"org_id"`
	UserID     string            `json:"user_id"`
	ProjectID  string            `json:"project_id"`
	Type       string            `json:"type"`
	Text       string            `json:"text"`
	AgentID    string            `json:"agent_id"`
	GroupID    string            `json:"group_id"`
	Metadata   map[string]string `json:"metadata"`
	Importance float64           `json:"importance"`
}

func (h *memoryHandlers) create(c *gin.Context) {
	var b createMemoryBody
	if !bindJSON(c, &b) {
		return
	}
	m, err := h.svc.Write(c.Request.Context(), memory.WriteRequest{Scope: scopeOf(c), Type: b.Type, AgentID: b.AgentID, GroupID: b.GroupID,
		Text: b.Text, Metadata: b.Metadata, Importance: b.Importance})
	if err != nil {
		h.fail(c, err, "memory")
		return
	}
	c.JSON(http.StatusCreated, m)
}

func (h *memoryHandlers) get(c *gin.Context) {
	m, err := h.svc.Get(c.Request.Context(), scopeOf(c), c.Param("memory_id"))
	if err != nil {
		h.fail(c, err, "memory")
		return
	}
	c.JSON(http.StatusOK, m)
}

func (h *memoryHandlers) delete(c *gin.Context) {
	if err := h.svc.Delete(c.Request.Context(), scopeOf(c), c.Param("memory_id")); err != nil {
		h.fail(c, err, "memory")
		return
	}
	c.JSON(http.StatusOK, gin.H{"deleted": true})
}

func (h *memoryHandlers) search(c *gin.Context) {
	req := memory.SearchRequest{Scope: scopeOf(c), Query: c.Query("q"), Mode: c.Query("mode")}
	if v := c.Query("top_k"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, http.StatusBadRequest, "invalid_top_k", "top_k must be an integer from 1 to 100")
			return
		}
		req.TopK = n
	}
	if t := c.Query("type"); t != "" {
		req.Filter.Types = strings.Split(t, ",")
		for _, typ := range req.Filter.Types {
			if !memory.ValidType(typ) {
				writeError(c, http.StatusBadRequest, "invalid_type", "type must be episodic, archival or both, comma-separated; got "+strconv.Quote(typ))
				return
			}
		}
	}
	req.Filter.AgentID = c.Query("agent_id")
	req.Filter.GroupID = c.Query("group_id")
	res, err := h.svc.Search(c.Request.Context(), req)
	if err != nil {
		h.fail(c, err, "memory")
		return
	}
	if res == nil {
		res = []memory.Result{}
	}
	c.JSON(http.StatusOK, gin.H{"results": res})
}

// ingest stores an uploaded text or markdown file (form field "file") as
// one archival memory.
func (h *memoryHandlers) ingest(c *gin.Context) {
	switch mode := ingestMode(c); mode {
	case "", "local":
	case "mineru":
		h.ingestMineru(c)
		return
	default:
		writeError(c, http.StatusBadRequest, "invalid_mode", "mode must be local or mineru, got "+strconv.Quote(mode))
		return
	}
	if form, err := c.MultipartForm(); err == nil {
		if len(form.Value["files"]) > 0 {
			// A part of the files field whose file name mime/multipart could
			// not read (a NUL or control character in it) arrives as a value.
			writeError(c, http.StatusBadRequest, "invalid_filename",
				"a part of the field files has no usable file name (UTF-8, without NUL or control characters)")
			return
		}
		if len(form.File["files"]) > 0 {
			h.ingestFiles(c, form.File["files"])
			return
		}
	}
	fh, err := c.FormFile("file")
	if err != nil {
		if !bodyReadError(c, err) {
			writeError(c, http.StatusBadRequest, "missing_file", "a multipart form field \"file\" is required")
		}
		return
	}
	switch strings.ToLower(filepath.Ext(fh.Filename)) {
	case ".txt", ".md", ".markdown", "":
	default:
		writeError(c, http.StatusBadRequest, "unsupported_file", "only text and markdown files can be ingested")
		return
	}
	f, err := fh.Open()
	if err != nil {
		h.fail(c, err, "file")
		return
	}
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(f)
	if err != nil {
		h.fail(c, err, "file")
		return
	}
	if !utf8.Valid(raw) {
		writeError(c, http.StatusBadRequest, "unsupported_file", "the file is not UTF-8 text")
		return
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		writeError(c, http.StatusBadRequest, "invalid_text", "the file contains a NUL character, which text cannot hold")
		return
	}
	for f, v := range map[string]string{"agent_id": c.PostForm("agent_id"), "group_id": c.PostForm("group_id"), "filename": fh.Filename} {
		if strings.IndexByte(v, 0) >= 0 {
			writeError(c, http.StatusBadRequest, "invalid_text", nulMessage(f))
			return
		}
	}
	md := map[string]string{"source": "upload", "filename": filepath.Base(fh.Filename)}
	m, err := h.svc.Write(c.Request.Context(), memory.WriteRequest{Scope: scopeOf(c), Type: memory.TypeArchival,
		AgentID: c.PostForm("agent_id"), GroupID: c.PostForm("group_id"), Text: string(raw), Metadata: md})
	if err != nil {
		h.fail(c, err, "memory")
		return
	}
	c.JSON(http.StatusCreated, gin.H{"id": m.ID, "type": m.Type, "chunks": m.Chunks, "metadata": m.Metadata})
}

func (h *memoryHandlers) getCore(c *gin.Context) {
	a, ok := h.s.agentOf(c)
	if !ok {
		return
	}
	h.writeCore(c, a.ID)
}

func (h *memoryHandlers) writeCore(c *gin.Context, agentID string) {
	blocks, err := h.svc.CoreBlocks(c.Request.Context(), scopeOf(c), agentID)
	if err != nil {
		h.fail(c, err, "core memory")
		return
	}
	c.JSON(http.StatusOK, gin.H{"agent_id": agentID, "blocks": blocks})
}

type putCoreBody struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
	Blocks    []struct {
		Label string `json:"label"`
		Value string `json:"value"`
	} `json:"blocks"`
}

func (h *memoryHandlers) putCore(c *gin.Context) {
	a, ok := h.s.agentOf(c)
	if !ok {
		return
	}
	var b putCoreBody
	if !bindJSON(c, &b) {
		return
	}
	for _, bl := range b.Blocks {
		if _, err := h.svc.SetCoreBlock(c.Request.Context(), scopeOf(c), a.ID, bl.Label, bl.Value); err != nil {
			h.fail(c, err, "core memory")
			return
		}
	}
	h.writeCore(c, a.ID)
}
