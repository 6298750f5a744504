package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Feishu source types: a docx document, a wiki space's node tree (from its
// root or from one node), a drive folder (recursively).
const (
	FeishuSourceDocx  = "docx"
	FeishuSourceWiki  = "wiki"
	FeishuSourceDrive = "drive"
)

// KindFeishuSync is the job kind of a connector's sync.
const KindFeishuSync = "feishu_sync"

// MaxFeishuSources bounds a connector's sources, so one row stays small.
const MaxFeishuSources = 100

// FeishuSource is one thing a connector syncs. Token is the document token
// (docx), the space id (wiki) or the folder token (drive); RootNode, for a
// wiki, limits the sync to that node's subtree.
type FeishuSource struct {
	Type     string `json:"type"`
	Token    string `json:"token"`
	RootNode string `json:"root_node,omitempty"`
}

// FeishuConnector syncs Feishu documents into its scope's archival memory.
// It holds no secret: the app's credentials are the daemon's configuration.
type FeishuConnector struct {
	Scope   Scope          `json:"-"`
	ID      string         `json:"connector_id"`
	Name    string         `json:"name"`
	Enabled bool           `json:"enabled"`
	Sources []FeishuSource `json:"sources"`
	// LastJobID is the connector's latest sync job; LastQueuedAt when it was queued.
	LastJobID    string     `json:"last_job_id,omitempty"`
	LastQueuedAt *time.Time `json:"last_queued_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// FeishuConnectorPatch changes the fields that are set.
type FeishuConnectorPatch struct {
	Name    *string
	Enabled *bool
	Sources *[]FeishuSource
}

// Outcomes a sync recorded for a document (FeishuDoc.Outcome).
const (
	FeishuDocNew       = "new"
	FeishuDocChanged   = "changed"
	FeishuDocUnchanged = "unchanged"
	FeishuDocDeleted   = "deleted"
)

// FeishuDoc is what a connector's syncs know of one document: the version
// last ingested (a revision id or a modified time, whatever its listing
// says), where its memories came from (URL and content hash, from which
// ingest derives their ids) and which job last touched it with what outcome,
// so a job resumed after a crash counts a document it did before the crash
// as it did then. A document deleted at its source stays as a tombstone
// (Deleted) until the next job starts.
type FeishuDoc struct {
	ConnectorID string    `json:"connector_id"`
	Token       string    `json:"token"`
	ObjType     string    `json:"obj_type"`
	Title       string    `json:"title"`
	URL         string    `json:"url"`
	Version     string    `json:"version"`
	ContentHash string    `json:"content_hash"`
	Sections    int       `json:"sections"`
	JobID       string    `json:"job_id"`
	Outcome     string    `json:"outcome"`
	Deleted     bool      `json:"deleted"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// FeishuStore keeps Feishu connectors and what their syncs saw.
type FeishuStore interface {
	// CreateFeishuConnector stores c; ErrConflict when its scope has one of that id.
	CreateFeishuConnector(ctx context.Context, c FeishuConnector) (FeishuConnector, error)
	GetFeishuConnector(ctx context.Context, scope Scope, id string) (FeishuConnector, error)
	// ListFeishuConnectors returns a page of the scope's connectors, oldest first, and how many there are.
	ListFeishuConnectors(ctx context.Context, scope Scope, page Page) ([]FeishuConnector, int, error)
	UpdateFeishuConnector(ctx context.Context, scope Scope, id string, p FeishuConnectorPatch) (FeishuConnector, error)
	// QueueFeishuSync creates j (a feishu_sync job) for the connector and
	// records it as the connector's last, in one transaction that first
	// locks the connector, unless a job of the connector is queued or
	// running (ErrSyncActive, with that job). With minInterval > 0 (a
	// scheduled poll) it also queues nothing for a disabled connector or
	// one queued less than minInterval ago (ErrNotDue), so daemons polling
	// at once queue one job between them.
	QueueFeishuSync(ctx context.Context, scope Scope, connectorID string, j NewJob, minInterval time.Duration) (Job, error)
	// ListDueFeishuConnectors lists up to limit enabled connectors of every
	// scope never queued or last queued before before, least recent first.
	ListDueFeishuConnectors(ctx context.Context, before time.Time, limit int) ([]FeishuConnector, error)
	// ListFeishuConnectorJobs returns a page of the connector's sync jobs, newest first.
	ListFeishuConnectorJobs(ctx context.Context, scope Scope, connectorID string, page Page) ([]Job, int, error)
	// ListFeishuDocs returns every document the connector's syncs know, tombstones included, by token.
	ListFeishuDocs(ctx context.Context, scope Scope, connectorID string) ([]FeishuDoc, error)
	// PutFeishuDoc inserts or replaces the connector's record of d.Token.
	PutFeishuDoc(ctx context.Context, scope Scope, d FeishuDoc) error
	// PurgeFeishuTombstones deletes the connector's tombstones left by jobs other than keepJob.
	PurgeFeishuTombstones(ctx context.Context, scope Scope, connectorID, keepJob string) error
}

// ErrSyncActive: the connector already has a sync queued or running.
var ErrSyncActive = fmt.Errorf("a sync of the connector is already queued or running: %w", ErrConflict)

// ErrNotDue: a scheduled poll found the connector disabled or synced recently.
var ErrNotDue = errors.New("the connector is not due for a sync")

// CheckFeishuSources refuses sources a sync cannot read.
func CheckFeishuSources(srcs []FeishuSource) error {
	if len(srcs) > MaxFeishuSources {
		return fmt.Errorf("a connector has at most %d sources", MaxFeishuSources)
	}
	seen := map[FeishuSource]bool{}
	for i, s := range srcs {
		switch s.Type {
		case FeishuSourceDocx, FeishuSourceDrive:
			if s.RootNode != "" {
				return fmt.Errorf("sources[%d]: root_node is for wiki sources only", i)
			}
		case FeishuSourceWiki:
		default:
			return fmt.Errorf("sources[%d]: type must be docx, wiki or drive, not %q", i, s.Type)
		}
		if !feishuToken(s.Token) || (s.RootNode != "" && !feishuToken(s.RootNode)) {
			return fmt.Errorf("sources[%d]: a token is 1 to 128 letters, digits, '_' or '-'", i)
		}
		if seen[s] {
			return fmt.Errorf("sources[%d]: listed twice", i)
		}
		seen[s] = true
	}
	return nil
}

// feishuToken: Feishu's tokens are alphanumeric; anything else would be
// pasted into a request path.
func feishuToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}

// CheckFeishuConnector refuses a connector the stores must not keep.
func CheckFeishuConnector(c FeishuConnector) error {
	if err := CheckScope(c.Scope); err != nil {
		return err
	}
	if c.ID == "" {
		return errors.New("a connector needs an id")
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > 200 {
		return errors.New("a connector's name is 1 to 200 bytes")
	}
	return CheckFeishuSources(c.Sources)
}

// ApplyFeishuPatch is c with p applied, checked.
func ApplyFeishuPatch(c FeishuConnector, p FeishuConnectorPatch) (FeishuConnector, error) {
	if p.Name != nil {
		c.Name = *p.Name
	}
	if p.Enabled != nil {
		c.Enabled = *p.Enabled
	}
	if p.Sources != nil {
		c.Sources = *p.Sources
	}
	if c.Sources == nil {
		c.Sources = []FeishuSource{}
	}
	return c, CheckFeishuConnector(c)
}

// EncodeFeishuSources is the sources column's text.
func EncodeFeishuSources(s []FeishuSource) string {
	if s == nil {
		s = []FeishuSource{}
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// DecodeFeishuSources reads the sources column.
func DecodeFeishuSources(s string) ([]FeishuSource, error) {
	out := []FeishuSource{}
	if s == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("feishu connector sources: %w", err)
	}
	return out, nil
}

// FeishuSyncDue reports whether a scheduled poll may queue a sync of c now.
func FeishuSyncDue(c FeishuConnector, now time.Time, minInterval time.Duration) bool {
	if minInterval <= 0 {
		return true
	}
	return c.Enabled && (c.LastQueuedAt == nil || !c.LastQueuedAt.After(now.Add(-minInterval)))
}
