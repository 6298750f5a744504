package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The audit log: who did what to which resource, and how it ended. It is
// append-only. No store method changes or deletes a record except
// DeleteAuditBefore (retention), and the database itself refuses anything
// else: triggers refuse UPDATE (and TRUNCATE on PostgreSQL) and any DELETE
// of a record not older than a cut-off in audit_log_retention, a row that
// only the retention transaction writes and deletes again before it commits,
// so no other statement ever sees one.
//
// Actions are named by what was called, so the vocabulary never lags behind
// the API:
//   - an API call: "<METHOD> <route>", e.g. "POST /api/agents/:agent_id/messages";
//   - a tool call: "tool:<name>", e.g. "tool:memory_write".
//
// Outcome is the HTTP status of an API call ("201", "403") and "ok",
// "error" or "refused" for a tool call.

// Outcomes of an audited tool call.
const (
	AuditOK      = "ok"
	AuditError   = "error"
	AuditRefused = "refused"
)

// Actors and vias of records that no token made.
const (
	AuditAnonymous = "anonymous" // a request while auth is off, or with no token
	AuditViaTool   = "tool"      // an agent's tool call
)

// AuditAgentActor names an agent as the actor of its tool calls.
func AuditAgentActor(agentID string) string { return "agent:" + agentID }

// AuditRecord is one entry of the audit log.
type AuditRecord struct {
	ID   int64     `json:"id"` // assigned by the store, increasing
	Time time.Time `json:"time"`
	// Scope is the tenant the request acted in; empty for a refused request
	// that named no valid one.
	Scope     Scope  `json:"scope"`
	Actor     string `json:"actor"`      // "token:<id>", "anonymous" or "agent:<agent_id>"
	ActorName string `json:"actor_name"` // the token's name
	Via       string `json:"via"`        // token, cookie, none (auth off) or tool
	Action    string `json:"action"`
	// Target is the resource acted on: the path's ids joined by "/" (a
	// member: "<group_id>/<agent_id>"), the id a create made, the ids a
	// batch delete deleted (joined by ","), or a tool call's run.
	Target string `json:"target"`
	// ArgsHash is the hex SHA-256 of the request body or the tool call's
	// arguments ("" when there were none): what was asked can be matched
	// against a copy without the log keeping it.
	ArgsHash  string `json:"args_hash"`
	Outcome   string `json:"outcome"`
	RequestID string `json:"request_id"` // the X-Request-Id, or a tool call's id
	// Detail is a short code: the API's error code, "idempotent_replay", or
	// why a token or tool call was refused.
	Detail string `json:"detail"`
}

// AuditFilter selects records of a scope. Empty fields match everything.
type AuditFilter struct {
	Actor, Action, Target string
	Since                 time.Time // inclusive; zero: no lower bound
	Until                 time.Time // exclusive; zero: no upper bound
	// BeforeID is the cursor: only records with a smaller id (0: from the newest).
	BeforeID int64
	Limit    int // 0: DefaultPageLimit; at most MaxPageLimit
}

// AuditStore keeps the audit log.
type AuditStore interface {
	// AppendAudit stores the records in one transaction; a zero Time is the
	// store's now.
	AppendAudit(ctx context.Context, recs []AuditRecord) error
	// ListAudit returns the scope's records the filter selects, newest (the
	// highest id) first.
	ListAudit(ctx context.Context, scope Scope, f AuditFilter) ([]AuditRecord, error)
	// DeleteAuditBefore deletes the records of every scope older than t
	// (retention) and returns how many, in transactions of at most
	// AuditDeleteBatch records: when ctx ends, what was deleted stays so.
	DeleteAuditBefore(ctx context.Context, t time.Time) (int64, error)
}

// AuditDeleteBatch is the most records one retention transaction deletes.
const AuditDeleteBatch = 5000

// Bounds of a record's fields, so a client cannot make the log grow by what it sends.
const (
	maxAuditField  = 512
	maxAuditDetail = 128
)

// CheckAuditRecords refuses records a store cannot keep and cuts over-long
// fields (a path id or a request id is the client's), in place.
func CheckAuditRecords(recs []AuditRecord) error {
	for i := range recs {
		r := &recs[i]
		// Both stores keep microseconds; a record reads back as it was given.
		if !r.Time.IsZero() {
			r.Time = r.Time.UTC().Truncate(time.Microsecond)
		}
		if r.Actor == "" || r.Action == "" || r.Outcome == "" {
			return errors.New("an audit record needs an actor, an action and an outcome")
		}
		if (r.Scope.OrgID == "") != (r.Scope.UserID == "") {
			return fmt.Errorf("audit record scope %+v: org and user are both set or both empty", r.Scope)
		}
		for _, f := range []*string{&r.Actor, &r.ActorName, &r.Via, &r.Action, &r.Target, &r.ArgsHash, &r.Outcome, &r.RequestID} {
			*f = cut(*f, maxAuditField)
		}
		r.Detail = cut(r.Detail, maxAuditDetail)
	}
	return nil
}

// cut shortens s to at most n bytes on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// AuditLimit is the number of records a ListAudit reads for f.
func AuditLimit(f AuditFilter) int {
	l, _ := PageBounds(Page{Limit: f.Limit})
	return l
}

// HashArgs is a record's ArgsHash of b: "" for nothing.
func HashArgs(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
