package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/store"
)

// defaultSummaryWindow is the window of a summary that names no since.
const defaultSummaryWindow = 24 * time.Hour

// metricsSummary answers GET /api/metrics/summary?since&until&agent_id&role_id&group_id:
// the scope's runs created in the window (default the last 24 h), by status,
// with success rate, latency percentiles, tokens and failure reasons, in all
// and per agent, role and group (see store.Summarize).
func (s *Server) metricsSummary(c *gin.Context) {
	ss, ok := s.deps.Store.(store.SummaryStore)
	if !ok {
		writeError(c, http.StatusNotImplemented, "summary_unsupported", "this store does not summarise runs")
		return
	}
	since, until, ok := timeWindow(c, time.Time{}, s.now().UTC())
	if !ok {
		return
	}
	if since.IsZero() {
		since = until.Add(-defaultSummaryWindow)
	}
	f := store.RunSampleFilter{Since: since, Until: until, AgentID: c.Query("agent_id"), RoleID: c.Query("role_id"), GroupID: c.Query("group_id")}
	for name, v := range map[string]string{"agent_id": f.AgentID, "role_id": f.RoleID, "group_id": f.GroupID} {
		if len(v) > 128 {
			writeError(c, http.StatusBadRequest, "invalid_"+name, name+" must be at most 128 characters")
			return
		}
	}
	f.Limit = store.MaxSummaryRuns + 1
	runs, err := ss.RunSamples(c.Request.Context(), scopeOf(c), f)
	if err != nil {
		s.fail(c, err, "runs")
		return
	}
	truncated := len(runs) > store.MaxSummaryRuns
	if truncated {
		runs = runs[:store.MaxSummaryRuns]
	}
	c.JSON(http.StatusOK, store.Summarize(runs, f, truncated))
}
