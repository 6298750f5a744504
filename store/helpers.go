package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Helpers both stores use, so that what they accept and how they fill in
// what a caller left out cannot drift apart.

// Page defaults: a Page with Limit 0 gets DefaultPageLimit; no page is
// longer than MaxPageLimit.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 1000
)

// PageBounds is the limit and offset a store reads for p.
func PageBounds(p Page) (limit, offset int) {
	limit, offset = p.Limit, p.Offset
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	if offset < 0 {
		offset = 0
	}
	return limit, offset
}

// CheckScope refuses a scope without an org or a user.
func CheckScope(scope Scope) error {
	if scope.OrgID == "" || scope.UserID == "" {
		return errors.New("scope needs an org_id and a user_id")
	}
	return nil
}

// ToolsJSON is the stored form of an agent's tool list (nil stores as []).
func ToolsJSON(tools []string) (string, error) {
	if tools == nil {
		tools = []string{}
	}
	b, err := json.Marshal(tools)
	return string(b), err
}

// ApplyRolePatch sets the fields patch names. ClearTools wins over AllowedTools.
func ApplyRolePatch(r *Role, patch RolePatch) {
	if patch.Name != nil {
		r.Name = *patch.Name
	}
	if patch.Description != nil {
		r.Description = *patch.Description
	}
	if patch.SystemPrompt != nil {
		r.SystemPrompt = *patch.SystemPrompt
	}
	if patch.Model != nil {
		r.Model = *patch.Model
	}
	switch {
	case patch.ClearTools:
		r.AllowedTools = nil
	case patch.AllowedTools != nil:
		r.AllowedTools = append([]string{}, *patch.AllowedTools...)
	}
	if patch.Skills != nil {
		r.Skills = append([]string{}, *patch.Skills...)
	}
	if patch.IsLead != nil {
		r.IsLead = *patch.IsLead
	}
}

// NormaliseEvent checks ev and gives it the time ts when it has none; a time
// given is truncated to the microseconds both databases keep. The id is the
// store's to assign.
func NormaliseEvent(ev Event, ts time.Time) (Event, error) {
	if err := CheckScope(ev.Scope); err != nil {
		return ev, err
	}
	if ev.Type == "" {
		return ev, errors.New("event type is empty")
	}
	if len(ev.Payload) == 0 {
		ev.Payload = nil
	} else if !json.Valid(ev.Payload) {
		return ev, fmt.Errorf("event %s: payload is not valid JSON", ev.Type)
	}
	if ev.TS.IsZero() {
		ev.TS = ts
	} else {
		ev.TS = ev.TS.UTC().Truncate(time.Microsecond)
	}
	ev.ID, ev.RunPrev = 0, 0
	return ev, nil
}

// RunEvents checks the events of a run and gives them the call's scope, the
// run id where missing and the time ts where they have none.
func RunEvents(scope Scope, runID string, events []Event, ts time.Time) ([]Event, error) {
	out := make([]Event, len(events))
	for i, e := range events {
		e.Scope = scope
		if e.RunID == "" {
			e.RunID = runID
		}
		var err error
		if out[i], err = NormaliseEvent(e, ts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// FillFromRun gives events without an agent or group those of their run, as
// the statement that stores them does.
func FillFromRun(events []Event, agentID, groupID string) {
	for i := range events {
		if events[i].AgentID == "" {
			events[i].AgentID = agentID
		}
		if events[i].GroupID == "" {
			events[i].GroupID = groupID
		}
	}
}

// ChainRunPrev sets RunPrev on the events of run runID among events, a batch
// just stored in order by one statement or transaction, given the id of the
// run's newest event stored before the batch (0: the run had none). The store
// must have read last under the same ordering that drew the batch's ids (its
// scope's event lock, or the single writer), so no event of the run can
// commit between last and the batch. Events of other runs get 0: the batch
// says nothing about their runs.
func ChainRunPrev(events []Event, runID string, last int64) {
	prev := last
	if prev <= 0 {
		prev = -1
	}
	for i := range events {
		if events[i].RunID != runID {
			events[i].RunPrev = 0
			continue
		}
		events[i].RunPrev = prev
		prev = events[i].ID
	}
}

// Clock is a store's source of time; nil is the wall clock. Stores keep
// times in UTC at microsecond precision, so Now truncates to it.
type Clock func() time.Time

// Now is the clock's time as a store keeps it.
func (c Clock) Now() time.Time {
	t := time.Now()
	if c != nil {
		t = c()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// PrefixColumns qualifies each of a comma-separated column list with prefix
// ("t." makes "a, b" "t.a, t.b"), for a join that selects a shared column list.
func PrefixColumns(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
