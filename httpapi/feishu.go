package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/openintern/openintern/auth"
	"github.com/openintern/openintern/store"
)

// FeishuConnectors is what the Feishu routes need of the store (both stores
// implement it).
type FeishuConnectors interface {
	CreateFeishuConnector(ctx context.Context, c store.FeishuConnector) (store.FeishuConnector, error)
	GetFeishuConnector(ctx context.Context, scope store.Scope, id string) (store.FeishuConnector, error)
	ListFeishuConnectors(ctx context.Context, scope store.Scope, page store.Page) ([]store.FeishuConnector, int, error)
	UpdateFeishuConnector(ctx context.Context, scope store.Scope, id string, p store.FeishuConnectorPatch) (store.FeishuConnector, error)
	QueueFeishuSync(ctx context.Context, scope store.Scope, connectorID string, j store.NewJob, minInterval time.Duration) (store.Job, error)
	ListFeishuConnectorJobs(ctx context.Context, scope store.Scope, connectorID string, page store.Page) ([]store.Job, int, error)
}

// FeishuConfig mounts the Feishu connector routes.
type FeishuConfig struct {
	Store FeishuConnectors
	// Configured says the daemon has a Feishu app (feishu.enabled, appId
	// and appSecret): without one connectors can be set up, but a sync is
	// refused (503 feishu_not_configured) rather than queued to fail.
	Configured bool
	// NewJob is the sync job of a connector (feishu.NewSyncJob; httpapi
	// does not import the connector).
	NewJob func(scope store.Scope, connectorID string) store.NewJob
	// Wake tells the job runner a job was queued.
	Wake func()
}

// MountFeishu adds the /api/feishu/connectors routes.
func (s *Server) MountFeishu(cfg FeishuConfig) {
	api := s.apiGroup()
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/feishu/connectors", Role: auth.RoleAdmin, Tag: "feishu",
		Summary: "Create a Feishu connector of the scope: docx documents, wiki spaces and drive folders synced into its archival memory",
		Body:    feishuConnectorBody{}, Response: store.FeishuConnector{}, Status: http.StatusCreated, Errors: []int{http.StatusConflict}},
		func(c *gin.Context) { s.createFeishuConnector(c, cfg) })
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/feishu/connectors", Role: auth.RoleMember, Tag: "feishu",
		Summary: "List the scope's Feishu connectors", Response: listOf{"connectors", store.FeishuConnector{}}, Query: pageQuery()},
		func(c *gin.Context) { listPaged(s, c, "connectors", cfg.Store.ListFeishuConnectors) })
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/feishu/connectors/:connector_id", Role: auth.RoleMember, Tag: "feishu",
		Summary: "Get a Feishu connector", Response: store.FeishuConnector{}},
		func(c *gin.Context) {
			if fc, ok := byPathID(s, c, "connector_id", "connector", cfg.Store.GetFeishuConnector); ok {
				c.JSON(http.StatusOK, fc)
			}
		})
	s.register(api, routeSpec{Method: http.MethodPatch, Path: "/feishu/connectors/:connector_id", Role: auth.RoleAdmin, Tag: "feishu",
		Summary: "Change a Feishu connector's name, enabled flag (scheduled polls) or sources", Body: feishuConnectorBody{},
		Response: store.FeishuConnector{}}, func(c *gin.Context) { s.patchFeishuConnector(c, cfg) })
	s.register(api, routeSpec{Method: http.MethodPost, Path: "/feishu/connectors/:connector_id/sync", Role: auth.RoleAdmin, Tag: "feishu",
		Summary:  "Queue a sync of the connector (a feishu_sync job; see /api/jobs/:job_id); 409 while one is queued or running",
		Response: store.Job{}, Status: http.StatusAccepted, Errors: []int{http.StatusConflict, http.StatusServiceUnavailable}},
		func(c *gin.Context) { s.syncFeishuConnector(c, cfg) })
	s.register(api, routeSpec{Method: http.MethodGet, Path: "/feishu/connectors/:connector_id/jobs", Role: auth.RoleMember, Tag: "feishu",
		Summary: "List the connector's sync jobs, newest first", Response: listOf{"jobs", store.Job{}}, Query: pageQuery()},
		func(c *gin.Context) { s.listFeishuJobs(c, cfg) })
}

type feishuConnectorBody struct {
	OrgID       string                `json:"org_id"`
	UserID      string                `json:"user_id"`
	ProjectID   string                `json:"project_id"`
	ConnectorID string                `json:"connector_id"`
	Name        *string               `json:"name"`
	Enabled     *bool                 `json:"enabled"`
	Sources     *[]store.FeishuSource `json:"sources"`
}

func (b feishuConnectorBody) validate(creating bool) (string, bool) {
	if creating && b.Name == nil {
		return "name is required", false
	}
	if b.Name != nil && (strings.TrimSpace(*b.Name) == "" || len(*b.Name) > maxNameLen) {
		return "name must be 1-200 characters", false
	}
	if b.Sources != nil {
		if err := store.CheckFeishuSources(*b.Sources); err != nil {
			return err.Error(), false
		}
	}
	return "", true
}

func (s *Server) createFeishuConnector(c *gin.Context, cfg FeishuConfig) {
	var body feishuConnectorBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := body.validate(true); !ok {
		writeError(c, http.StatusBadRequest, "invalid_connector", msg)
		return
	}
	id := body.ConnectorID
	if id == "" {
		id = "fc_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	}
	if !agentIDPattern.MatchString(id) {
		writeError(c, http.StatusBadRequest, "invalid_connector_id", "connector_id must match [a-z0-9][a-z0-9_-]{0,63}")
		return
	}
	fc := store.FeishuConnector{Scope: scopeOf(c), ID: id, Name: *body.Name, Enabled: body.Enabled == nil || *body.Enabled,
		Sources: []store.FeishuSource{}}
	if body.Sources != nil {
		fc.Sources = *body.Sources
	}
	created, err := cfg.Store.CreateFeishuConnector(c.Request.Context(), fc)
	if err != nil {
		s.fail(c, err, "connector "+strconv.Quote(id))
		return
	}
	c.JSON(http.StatusCreated, created)
}

func (s *Server) patchFeishuConnector(c *gin.Context, cfg FeishuConfig) {
	if _, ok := byPathID(s, c, "connector_id", "connector", cfg.Store.GetFeishuConnector); !ok {
		return
	}
	var body feishuConnectorBody
	if !bindJSON(c, &body) {
		return
	}
	if msg, ok := body.validate(false); !ok {
		writeError(c, http.StatusBadRequest, "invalid_connector", msg)
		return
	}
	if body.ConnectorID != "" && body.ConnectorID != c.Param("connector_id") {
		writeError(c, http.StatusBadRequest, "invalid_connector", "connector_id cannot be changed")
		return
	}
	up, err := cfg.Store.UpdateFeishuConnector(c.Request.Context(), scopeOf(c), c.Param("connector_id"),
		store.FeishuConnectorPatch{Name: body.Name, Enabled: body.Enabled, Sources: body.Sources})
	if err != nil {
		s.fail(c, err, "connector")
		return
	}
	c.JSON(http.StatusOK, up)
}

func (s *Server) syncFeishuConnector(c *gin.Context, cfg FeishuConfig) {
	fc, ok := byPathID(s, c, "connector_id", "connector", cfg.Store.GetFeishuConnector)
	if !ok {
		return
	}
	if !cfg.Configured || cfg.NewJob == nil {
		writeError(c, http.StatusServiceUnavailable, "feishu_not_configured",
			"Feishu is not configured on this daemon: set feishu.enabled, feishu.appId and feishu.appSecret (FEISHU_ENABLED, FEISHU_APP_ID, FEISHU_APP_SECRET)")
		return
	}
	j, err := cfg.Store.QueueFeishuSync(c.Request.Context(), fc.Scope, fc.ID, cfg.NewJob(fc.Scope, fc.ID), 0)
	if errors.Is(err, store.ErrSyncActive) {
		writeError(c, http.StatusConflict, "sync_in_progress", "a sync of the connector is already "+j.Status+": job "+j.ID)
		return
	}
	if err != nil {
		s.fail(c, err, "connector")
		return
	}
	if cfg.Wake != nil {
		cfg.Wake()
	}
	c.JSON(http.StatusAccepted, j)
}

func (s *Server) listFeishuJobs(c *gin.Context, cfg FeishuConfig) {
	fc, ok := byPathID(s, c, "connector_id", "connector", cfg.Store.GetFeishuConnector)
	if !ok {
		return
	}
	listPaged(s, c, "jobs", func(ctx context.Context, scope store.Scope, page store.Page) ([]store.Job, int, error) {
		return cfg.Store.ListFeishuConnectorJobs(ctx, scope, fc.ID, page)
	})
}
