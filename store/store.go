// Package store holds OpenIntern's durable entities (agents, inbox messages,
// runs, events, checkpoints) and the interfaces their stores implement.
//
// It imports no database driver: the embedded SQLite store lives in
// store/sqlite, the PostgreSQL store in store/postgres, and both pass the one
// conformance suite in store/storetest. Every tenant method takes a Scope, so a
// query without one cannot be written by accident.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Sentinel errors every store returns, whatever its driver says.
var (
	// ErrNotFound: no such row in this scope (another scope's row is also "not found").
	ErrNotFound = errors.New("not found")
	// ErrConflict: a row with that id already exists, or a state transition is not allowed.
	ErrConflict = errors.New("conflict")
	// ErrNoWork: ClaimNextRun found nothing for the agent to do.
	ErrNoWork = errors.New("no work")
	// ErrUnavailable: the database cannot be reached or is restarting; the
	// operation did not happen (or its outcome is unknown) and may be retried.
	ErrUnavailable = errors.New("store unavailable")
)

// Scope is the tenant boundary: every row, query, event and stream belongs to one.
// ProjectID is optional and stored as "" when absent.
type Scope struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
}

// Agent states.
const (
	AgentIdle       = "idle"
	AgentRunning    = "running"
	AgentPaused     = "paused"
	AgentError      = "error"
	AgentTerminated = "terminated"
)

// MainAgentID is the agent that exists implicitly in every scope.
const MainAgentID = "main"

// Agent is a persistent identity that is activated as an actor when it has work.
type Agent struct {
	Scope        Scope     `json:"-"`
	ID           string    `json:"agent_id"`
	Name         string    `json:"name"`
	SystemPrompt string    `json:"system_prompt"`
	Model        string    `json:"model"`
	Tools        []string  `json:"tools"`
	Skills       []string  `json:"skills"`              // names of the skills granted (see package skills)
	ParentID     string    `json:"parent_id,omitempty"` // the agent that spawned this one
	State        string    `json:"state"`
	Unread       int       `json:"unread"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// AgentPatch changes the non-nil fields of an agent.
type AgentPatch struct {
	Name         *string
	SystemPrompt *string
	Model        *string
	Tools        *[]string
	Skills       *[]string
}

// AgentRef names one agent across scopes; used by recovery at start-up.
type AgentRef struct {
	Scope   Scope
	AgentID string
}

// Message kinds and statuses.
const (
	MessageKindMessage = "message" // a plain inbox message; drained with its neighbours into one run
	MessageKindRun     = "run"     // the input of a run created through POST /api/runs; its own run

	MessageUnread = "unread"
	MessageRead   = "read"

	SenderUser   = "user"
	SenderAgent  = "agent"
	SenderSystem = "system"
	SenderGroup  = "group"
)

// Message is one durable inbox entry.
type Message struct {
	Scope      Scope      `json:"-"`
	ID         string     `json:"message_id"`
	Seq        int64      `json:"seq"`
	AgentID    string     `json:"agent_id"`
	SessionKey string     `json:"session_key"`
	GroupID    string     `json:"group_id,omitempty"` // a message to a group member: its run works in the group
	Kind       string     `json:"kind"`
	SenderType string     `json:"sender_type"`
	SenderID   string     `json:"sender_id"`
	Content    string     `json:"content"`
	RunID      string     `json:"run_id,omitempty"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	ReadAt     *time.Time `json:"read_at,omitempty"`
}

// Run statuses.
const (
	RunPending         = "pending"
	RunRunning         = "running"
	RunWaitingApproval = "waiting_approval"
	RunCompleted       = "completed"
	RunFailed          = "failed"
	RunCancelled       = "cancelled"
)

// RunFinished reports whether status is terminal.
func RunFinished(status string) bool {
	return status == RunCompleted || status == RunFailed || status == RunCancelled
}

// RunError is the reason a run failed.
type RunError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Usage counts LLM tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// Prompt tokens read from and written to the provider's prompt cache
	// (part of PromptTokens).
	CacheReadTokens  int `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int `json:"cache_write_tokens,omitempty"`
}

// Run is one unit of work of an agent: a claimed batch of inbox messages.
type Run struct {
	Scope           Scope      `json:"-"`
	ID              string     `json:"run_id"`
	AgentID         string     `json:"agent_id"`
	SessionKey      string     `json:"session_key"`
	GroupID         string     `json:"group_id,omitempty"`
	ParentRunID     string     `json:"parent_run_id,omitempty"` // a member's run names its group run
	RoleID          string     `json:"role_id,omitempty"`       // the role a member's run works in
	Input           string     `json:"input"`
	Status          string     `json:"status"`
	Output          string     `json:"output,omitempty"`
	Error           *RunError  `json:"error,omitempty"`
	Steps           int        `json:"steps"`
	Usage           Usage      `json:"usage"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
}

// Event is one entry of the append-only trace. ID is assigned by the store and
// increases monotonically; an event with ID 0 was never stored (live-only, e.g.
// llm.token).
type Event struct {
	Scope   Scope           `json:"-"`
	ID      int64           `json:"id"`
	RunID   string          `json:"run_id"`
	AgentID string          `json:"agent_id"`
	GroupID string          `json:"group_id"`
	StepID  string          `json:"step_id"`
	Type    string          `json:"type"`
	TS      time.Time       `json:"ts"`
	Payload json.RawMessage `json:"payload"`
	// RunPrev is the id of the same run's event stored just before this one,
	// -1 when this is the run's first event, 0 when the store does not say
	// (then nothing may be inferred). Only events a write returns carry it,
	// and it never leaves the daemon as part of the event: with it, a run's
	// stream can forward a live event without reading the store, knowing no
	// earlier event of the run is still on its way (see ChainRunPrev).
	RunPrev int64 `json:"-"`
}

// Checkpoint is a run's working state after a step.
type Checkpoint struct {
	RunID     string          `json:"run_id"`
	Step      int             `json:"step"`
	State     json.RawMessage `json:"state"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Page selects a window of a list. Limit 0 means the store's default (50).
type Page struct {
	Offset int
	Limit  int
}

// NewMessage is a message to enqueue.
type NewMessage struct {
	Scope      Scope
	ID         string // assigned by the caller (mailbox) so it can answer before a batch returns
	AgentID    string
	SessionKey string
	GroupID    string
	SenderType string
	SenderID   string
	Content    string
}

// NewRun is a run created through the runs API: a pending run and its inbox message.
type NewRun struct {
	Scope       Scope
	RunID       string
	MessageID   string
	AgentID     string
	SessionKey  string
	GroupID     string
	ParentRunID string
	RoleID      string
	Input       string
	SenderType  string
	SenderID    string
	// Events are appended in the same transaction (e.g. the group run's message.task).
	Events []Event
	// RequireAgent: CreateRun fails with ErrNotFound, storing nothing, when
	// the scope has no agent AgentID (the API checks it in the same statement
	// rather than in a read before it).
	RequireAgent bool
	// Audit, when set, is the record of the request that creates the run,
	// stored in the run's transaction: the run and its record are stored
	// together or not at all, and the request needs no audit write of its
	// own. A zero Time is the store's now.
	Audit *AuditRecord
}

// Claim is what an agent got from ClaimNextRun.
type Claim struct {
	Run        Run
	Messages   []Message
	Checkpoint *Checkpoint // nil when the run has no step stored yet
	Resumed    bool        // the run was already running (a restart or retry picks it up again)
	// Alone: the claimed message was the agent's only unread one when it was
	// claimed, so once the run ends the inbox holds only what arrived since
	// (and woke the agent). False when there were more, or the store did not
	// look: then the agent asks the store before it goes idle.
	Alone bool

	// What ClaimExtras asked for, when the store read it with the claim.
	History        []SessionTurn
	HistoryRead    bool
	CoreBlocks     []CoreBlock
	CoreBlocksRead bool
}

// ClaimExtras asks a claim to read, with the run it claims and in the same
// round trip where the store can, what the turn reads right after it: the
// run's session history and the agent's core memory blocks. A store may
// leave any of them unread (Claim.HistoryRead, Claim.CoreBlocksRead false):
// the turn then reads them itself.
type ClaimExtras struct {
	// SessionHistory > 0: Claim.History is what SessionHistory(scope, agent,
	// the claimed run's session, SessionHistory) returns, when the run has a
	// session.
	SessionHistory int
	// CoreBlocks: Claim.CoreBlocks are the agent's stored core memory
	// blocks, by label.
	CoreBlocks bool
}

// CoreBlock is one named block of an agent's core memory.
type CoreBlock struct {
	Label     string    `json:"label"`
	Value     string    `json:"value"`
	Limit     int       `json:"limit"` // in runes
	UpdatedAt time.Time `json:"updated_at"`
}

// RunResult is how a run ended.
type RunResult struct {
	Status string // completed, failed or cancelled
	Output string
	Error  *RunError
	Steps  int
	Usage  Usage
	// Outbox is enqueued in the same transaction (e.g. a child agent's report
	// to its parent); the caller wakes the recipients after the commit.
	Outbox []NewMessage
	// Remember queues a completed agent run for an episodic summary in the
	// same transaction (see RunStore.PendingSummaries), so a summary is
	// neither lost in a crash nor dropped when its writer falls behind.
	Remember bool
}

// EventFilter selects events within a scope. Empty fields match everything.
type EventFilter struct {
	RunID   string
	AgentID string
	GroupID string
	Types   []string
	AfterID int64
	Limit   int // 0: default 100
	// NoTotal: the caller does not need the count of all matching events
	// (a stream catching up), so ListEvents returns 0 and saves the count.
	NoTotal bool
}

// RunFilter selects runs within a scope.
type RunFilter struct {
	AgentID     string
	SessionKey  string
	Status      string
	GroupID     string
	ParentRunID string
	RoleID      string
	Kind        string // RunKindAgent, RunKindGroup or "" for both
}

// Run kinds a RunFilter can select.
const (
	RunKindAgent = "agent" // an agent's run (agent_id set)
	RunKindGroup = "group" // a group run (agent_id empty)
)

// SessionTurn is one earlier exchange of a session: what was asked and answered.
type SessionTurn struct {
	RunID  string
	Input  string
	Output string
}

// Session summarises one session of a scope: the runs with its key,
// whatever their agent (a group run has none).
type Session struct {
	Key          string         `json:"session_key"`
	AgentIDs     []string       `json:"agent_ids"` // the agents with runs in it, sorted
	Runs         int            `json:"runs"`
	RunsByStatus map[string]int `json:"runs_by_status"` // only the statuses it has
	CreatedAt    time.Time      `json:"created_at"`     // its first run's
	// LastActivityAt is when a run of it was last created, started or ended.
	LastActivityAt time.Time `json:"last_activity_at"`
}

// AddRuns counts n runs of agentID with status into the session.
func (s *Session) AddRuns(agentID, status string, n int) {
	if s.RunsByStatus == nil {
		s.RunsByStatus = map[string]int{}
		s.AgentIDs = []string{}
	}
	s.RunsByStatus[status] += n
	s.Runs += n
	if agentID != "" {
		if i, found := slices.BinarySearch(s.AgentIDs, agentID); !found {
			s.AgentIDs = slices.Insert(s.AgentIDs, i, agentID)
		}
	}
}

// AgentStore keeps agents.
type AgentStore interface {
	CreateAgent(ctx context.Context, a Agent) (Agent, error)
	// EnsureAgent returns the agent, creating it with the given defaults when missing.
	EnsureAgent(ctx context.Context, a Agent) (Agent, error)
	GetAgent(ctx context.Context, scope Scope, agentID string) (Agent, error)
	ListAgents(ctx context.Context, scope Scope, page Page) ([]Agent, int, error)
	UpdateAgent(ctx context.Context, scope Scope, agentID string, patch AgentPatch) (Agent, error)
	// DeleteAgent deletes the agent (its messages, runs and events stay as
	// its trace): ErrInUse when it is a member of a group, unless cascade,
	// which removes its memberships in the same transaction.
	DeleteAgent(ctx context.Context, scope Scope, agentID string, cascade bool) error
	// SetAgentState stores the state and appends its agent.state_changed event in one transaction.
	SetAgentState(ctx context.Context, scope Scope, agentID, state string, ev Event) (Event, error)
	// ListAgentsWithWork returns every agent, in every scope, that has unread messages
	// or a run left running. It is the one unscoped read, for recovery at start-up.
	ListAgentsWithWork(ctx context.Context) ([]AgentRef, error)
	// CountUnreadMessages counts the unread inbox messages of every agent in
	// every scope: the daemon-wide inbox depth, for metrics. A run's messages
	// are read when it ends.
	CountUnreadMessages(ctx context.Context) (int64, error)
}

// MessageStore keeps inboxes.
type MessageStore interface {
	// EnqueueMessages stores a batch in one transaction; all or nothing.
	EnqueueMessages(ctx context.Context, msgs []NewMessage) ([]Message, error)
	ListMessages(ctx context.Context, scope Scope, agentID, status string, page Page) ([]Message, int, error)
}

// RunStore keeps runs and checkpoints.
type RunStore interface {
	// CreateRun stores a pending run and its inbox message in one transaction.
	CreateRun(ctx context.Context, r NewRun) (Run, Message, error)
	GetRun(ctx context.Context, scope Scope, runID string) (Run, error)
	ListRuns(ctx context.Context, scope Scope, filter RunFilter, page Page) ([]Run, int, error)
	// ClaimNextRun gives the agent its next unit of work, in one transaction: a
	// run left running (Resumed), else the oldest unread message's pending run,
	// else a new running run made of all consecutive unread plain messages of the
	// same session. ErrNoWork when the inbox is empty. With extras, it also
	// reads what the turn it starts reads next (see ClaimExtras).
	ClaimNextRun(ctx context.Context, scope Scope, agentID string, newRunID string, extras ...ClaimExtras) (Claim, error)
	// HasWork reports whether the agent has unread messages or a run left
	// running: a cheap read that spares a claim transaction when the inbox is empty.
	HasWork(ctx context.Context, scope Scope, agentID string) (bool, error)
	// SaveStep appends events and, when cp is non-nil, stores the checkpoint, in one transaction.
	SaveStep(ctx context.Context, scope Scope, runID string, cp *Checkpoint, events []Event) ([]Event, error)
	// FinishRun ends a running run, appends its final events and marks its messages
	// read, in one transaction. ErrConflict when the run is not running.
	FinishRun(ctx context.Context, scope Scope, runID string, res RunResult, events []Event) ([]Event, error)
	// CancelRun cancels a pending run (its message is marked read) or flags a
	// running one (CancelRequested). ErrConflict when the run has already ended.
	CancelRun(ctx context.Context, scope Scope, runID string) (Run, error)
	// ListSessions returns a page of the scope's sessions, the most recently
	// active first, and how many there are.
	ListSessions(ctx context.Context, scope Scope, page Page) ([]Session, int, error)
	// GetSession summarises one session; ErrNotFound when it has no run.
	GetSession(ctx context.Context, scope Scope, sessionKey string) (Session, error)
	// SessionHistory returns the last `limit` finished turns of a session, oldest first.
	SessionHistory(ctx context.Context, scope Scope, agentID, sessionKey string, limit int) ([]SessionTurn, error)
	// PendingSummaries returns up to limit runs that FinishRun queued for a
	// summary (RunResult.Remember) and SummariesDone has not removed, from
	// every scope, by run id (the order runs are created in; each Run's
	// Scope, ID, AgentID, SessionKey, Input, Output, Status and EndedAt are
	// set; a run deleted since has only Scope and ID). Like
	// ListAgentsWithWork, an unscoped read for the daemon's own use.
	PendingSummaries(ctx context.Context, limit int) ([]Run, error)
	// SummariesDone takes runs (Scope and ID) off that queue.
	SummariesDone(ctx context.Context, runs []Run) error
}

// EventStore keeps the trace.
type EventStore interface {
	AppendEvents(ctx context.Context, events []Event) ([]Event, error)
	// ListEvents returns the events after filter.AfterID in id order, and how many
	// events match the filter in all (ignoring AfterID and Limit).
	ListEvents(ctx context.Context, scope Scope, filter EventFilter) ([]Event, int, error)
	// LatestEventID returns the id of the newest event the filter selects
	// (AfterID and Limit ignored), 0 when there is none: where a stream that
	// starts "now" resumes from.
	LatestEventID(ctx context.Context, scope Scope, filter EventFilter) (int64, error)
}

// Store is everything a daemon needs from its database.
type Store interface {
	AgentStore
	MessageStore
	RunStore
	EventStore
	TeamStore
	// RunWithEvents returns a run and its events after filter.AfterID in id
	// order (filter.RunID is runID; Limit as ListEvents'; no total), the run
	// read first: a run's stream opens with it, in one round trip where the
	// database is remote. ErrNotFound when the scope has no such run. It is
	// outside RunStore and EventStore: a caller given only those (or a
	// wrapper of them) reads the run and its events apart.
	RunWithEvents(ctx context.Context, scope Scope, runID string, filter EventFilter) (Run, []Event, error)
	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Dialect names the store: "sqlite" or "postgres".
	Dialect() string
	Close() error
}
