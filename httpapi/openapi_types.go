package httpapi

import (
	"time"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// The types below exist for the API document only: they spell out the
// answers handlers build as gin.H, and the bodies handlers decode into
// anonymous structs, so that their schemas can be reflected like the rest.
// TestOpenAPIBodies sends every documented body field to the real handler;
// answers are checked against these in TestOpenAPIResponses.

// listOf describes a paged list answer: {<Field>: [Item...], total, page, limit}.
type listOf struct {
	Field string
	Item  any
}

// eitherOf describes an answer of one of several shapes (say, by the query).
type eitherOf []any

// answerEnums are the values some answer fields take, by package.Type.field;
// TestOpenAPIAnswersMatchDocument checks real answers against them.
func answerEnums() map[string][]string {
	return map[string][]string{
		"store.Agent.state":            {store.AgentIdle, store.AgentRunning, store.AgentPaused, store.AgentError, store.AgentTerminated},
		"store.Run.status":             {store.RunPending, store.RunRunning, store.RunWaitingApproval, store.RunCompleted, store.RunFailed, store.RunCancelled},
		"store.Message.status":         {store.MessageUnread, store.MessageRead},
		"store.Message.kind":           {store.MessageKindMessage, store.MessageKindRun},
		"store.Message.sender_type":    {store.SenderUser, store.SenderAgent, store.SenderSystem, store.SenderGroup},
		"memory.Memory.type":           {memory.TypeEpisodic, memory.TypeArchival},
		"memory.Result.type":           {memory.TypeEpisodic, memory.TypeArchival},
		"memory.Entry.kind":            {memory.KindFact, memory.KindProposal, memory.KindDecision, memory.KindTodo},
		"httpapi.groupRunCreated.mode": {actors.ModeSerial, actors.ModeParallel},
	}
}

// upload is a multipart/form-data body with a text or markdown file.
type upload struct{}

type healthAnswer struct {
	Status string `json:"status"`
}

// drainingAnswer is /readyz's 503 while the node drains (see MountCluster).
type drainingAnswer struct {
	Status string `json:"status"` // "draining"
}

type readyAnswer struct {
	Status string       `json:"status"`
	Agents actors.Stats `json:"agents"`
}

type tokenList struct {
	Tokens []store.APIToken `json:"tokens"`
}

type messageQueued struct {
	MessageID string `json:"message_id"`
	AgentID   string `json:"agent_id"`
	Status    string `json:"status"`
	Seq       int64  `json:"seq"`
}

type agentStateAnswer struct {
	AgentID string `json:"agent_id"`
	State   string `json:"state"`
}

type runCreated struct {
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	AgentID    string    `json:"agent_id"`
	SessionKey string    `json:"session_key"`
}

type runEventsPage struct {
	Events []store.Event `json:"events"`
	Total  int           `json:"total"`
	// NextCursor is the cursor of the next page; null on the last page.
	NextCursor *string `json:"next_cursor"`
}

type runCancelAnswer struct {
	RunID           string `json:"run_id"`
	Status          string `json:"status"`
	CancelRequested bool   `json:"cancel_requested"`
}

type roleStatsAnswer struct {
	RoleID string         `json:"role_id"`
	Stats  store.RunStats `json:"stats"`
}

type batchDeleteAnswer struct {
	Deleted []string       `json:"deleted"`
	Failed  []batchFailure `json:"failed"`
}

// groupAnswer is groupView's shape.
type groupAnswer struct {
	GroupID     string              `json:"group_id"`
	Name        string              `json:"name"`
	Description string              `json:"description"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	Members     []store.GroupMember `json:"members"`
	MemberCount int                 `json:"member_count"`
	LeadAgentID string              `json:"lead_agent_id"`
}

type groupStatsAnswer struct {
	GroupID    string         `json:"group_id"`
	Members    int            `json:"members"`
	Stats      store.RunStats `json:"stats"`
	MemberRuns store.RunStats `json:"member_runs"`
	// BlackboardEntries is there when the daemon has a blackboard.
	BlackboardEntries int `json:"blackboard_entries,omitempty"`
}

type groupRunCreated struct {
	RunID      string    `json:"run_id"`
	GroupID    string    `json:"group_id"`
	Status     string    `json:"status"`
	Mode       string    `json:"mode"`
	SessionKey string    `json:"session_key"`
	CreatedAt  time.Time `json:"created_at"`
}

type queuedMessage struct {
	MessageID string `json:"message_id"`
	AgentID   string `json:"agent_id"`
	Status    string `json:"status"`
}

type groupMessagesQueued struct {
	GroupID  string          `json:"group_id"`
	Messages []queuedMessage `json:"messages"`
}

type memoryDeleted struct {
	Deleted bool `json:"deleted"`
}

type memorySearchAnswer struct {
	Results []memory.Result `json:"results"`
}

type ingestAnswer struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"`
	Chunks   int               `json:"chunks"`
	Metadata map[string]string `json:"metadata"`
}

type coreMemoryAnswer struct {
	AgentID string             `json:"agent_id"`
	Blocks  []memory.CoreBlock `json:"blocks"`
}

type blackboardSearchAnswer struct {
	Results []memory.BoardHit `json:"results"`
	Query   string            `json:"query"`
}

// Request bodies the handlers decode into anonymous structs.

type addMemberBody struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
	memberBody
}

type updateMemberBody struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
	RoleID    string `json:"role_id"`
}

type groupMessageBody struct {
	OrgID      string `json:"org_id"`
	UserID     string `json:"user_id"`
	ProjectID  string `json:"project_id"`
	Content    string `json:"content"`
	To         string `json:"to"`
	SessionKey string `json:"session_key"`
}

type blackboardPostBody struct {
	OrgID     string `json:"org_id"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id"`
	Kind      string `json:"kind"`
	Text      string `json:"text"`
	AgentID   string `json:"agent_id"`
	Author    string `json:"author"`
}
