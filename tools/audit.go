package tools

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/openintern/openintern/store"
)

// ReadOnly is implemented by a tool that changes nothing (it only reads):
// its calls are not audited. A tool without it is taken to change something,
// so a new tool is audited until it says otherwise.
type ReadOnly interface {
	ReadOnly() bool
}

// IsReadOnly reports whether t declares that it changes nothing.
func IsReadOnly(t Tool) bool {
	ro, ok := t.(ReadOnly)
	return ok && ro.ReadOnly()
}

// ReadOnly: read_file reads the workspace.
func (t *ReadFile) ReadOnly() bool { return true }

// ReadOnly: export_trace reads stored events.
func (t *ExportTrace) ReadOnly() bool { return true }

// Auditor records the calls of the tools that are not read-only, once each
// time one is routed: outcome is store.AuditOK, AuditError or AuditRefused
// (the agent may not use the tool), detail a short code.
type Auditor interface {
	AuditToolCall(ctx context.Context, call Call, outcome, detail string)
}

// Details of audited tool calls.
const (
	auditNotPermitted = "not_permitted"
	auditInvalidArgs  = "invalid_arguments"
	auditToolFailed   = "tool_failed"
	auditPolicyDenied = "denied_by_policy"
)

// WithAuditor makes the registry record every call of a tool that is not
// read-only (see ReadOnly) with a.
func WithAuditor(a Auditor) Option {
	return func(r *Registry) { r.auditor = a }
}

// audit records a routed call of reg's tool unless the tool is read-only.
func (r *Registry) audit(ctx context.Context, reg *registered, call Call, outcome Outcome) {
	if r.auditor == nil || reg.readOnly {
		return
	}
	var result, detail string
	switch outcome {
	case OutcomeOK:
		result = store.AuditOK
	case OutcomeBlocked:
		result, detail = store.AuditRefused, auditNotPermitted
	default:
		result, detail = store.AuditError, auditToolFailed
	}
	r.auditor.AuditToolCall(ctx, call, result, detail)
}

// auditDenied records a call the policy refused: the tool did not run.
func (r *Registry) auditDenied(ctx context.Context, reg *registered, call Call) {
	if r.auditor != nil && !reg.readOnly {
		r.auditor.AuditToolCall(ctx, call, store.AuditRefused, auditPolicyDenied)
	}
}

// auditInvalid records a call refused for its arguments: the tool did not run.
func (r *Registry) auditInvalid(ctx context.Context, reg *registered, call Call) {
	if r.auditor != nil && !reg.readOnly {
		r.auditor.AuditToolCall(ctx, call, store.AuditError, auditInvalidArgs)
	}
}

// auditWriteTimeout bounds writing a tool call's record, which happens even
// when the run was cancelled.
const auditWriteTimeout = 5 * time.Second

// StoreAuditor writes the records of tool calls to an audit log: the actor
// is the calling agent, the target its run, the request id the call's id. A
// record that cannot be written is logged and counted; the call's result
// stands (the call has happened, and failing it would only make the model
// try again).
type StoreAuditor struct {
	log      store.AuditStore
	logger   *slog.Logger
	failures atomic.Int64
}

// NewStoreAuditor returns an auditor writing to log (logger nil: slog.Default()).
func NewStoreAuditor(log store.AuditStore, logger *slog.Logger) *StoreAuditor {
	if logger == nil {
		logger = slog.Default()
	}
	return &StoreAuditor{log: log, logger: logger}
}

// AuditToolCall writes the call's record.
func (a *StoreAuditor) AuditToolCall(ctx context.Context, call Call, outcome, detail string) {
	rec := store.AuditRecord{
		Scope: call.Scope, Actor: store.AuditAgentActor(call.AgentID), Via: store.AuditViaTool,
		Action: "tool:" + call.Name, Target: call.RunID, ArgsHash: store.HashArgs(call.Args),
		Outcome: outcome, RequestID: call.CallID, Detail: detail,
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	defer cancel()
	if err := a.log.AppendAudit(wctx, []store.AuditRecord{rec}); err != nil {
		a.failures.Add(1)
		a.logger.Error("audit record of a tool call not written", "tool", call.Name, "agent_id", call.AgentID,
			"run_id", call.RunID, "call_id", call.CallID, "err", err)
	}
}

// Failures counts the records that could not be written.
func (a *StoreAuditor) Failures() int64 { return a.failures.Load() }

// ReadOnly: list_files lists the workspace.
func (t *ListFiles) ReadOnly() bool { return true }
