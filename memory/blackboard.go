package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/openintern/openintern/store"
)

// Blackboard entry kinds.
const (
	KindFact     = "fact"
	KindProposal = "proposal"
	KindDecision = "decision"
	KindTodo     = "todo"
)

// ValidKind reports whether k is a blackboard entry kind.
func ValidKind(k string) bool {
	return k == KindFact || k == KindProposal || k == KindDecision || k == KindTodo
}

// Entry is one blackboard entry: an episodic memory of the group.
type Entry struct {
	ID        string    `json:"memory_id"`
	GroupID   string    `json:"group_id"`
	Kind      string    `json:"kind"`
	Author    string    `json:"author"`             // an agent id, or user:<user_id>
	AgentID   string    `json:"agent_id,omitempty"` // set when an agent wrote it
	RunID     string    `json:"run_id,omitempty"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

// EventRecorder stores events and publishes them live.
type EventRecorder interface {
	RecordEvents(ctx context.Context, events []store.Event) error
}

// Blackboard is the groups' shared memory on top of the memory service:
// entries are episodic memories with the group's id and a kind, found by the
// same hybrid search as any memory. Every new entry is also a
// blackboard.written event of the group, so the group's stream shows it live.
type Blackboard struct {
	svc *Service
	rec EventRecorder
}

// NewBlackboard returns the blackboard over svc; rec may be nil (no events).
func NewBlackboard(svc *Service, rec EventRecorder) *Blackboard {
	return &Blackboard{svc: svc, rec: rec}
}

// Post is an entry to write.
type Post struct {
	ID      string // optional: a fixed id makes the post idempotent
	AgentID string // the writing agent, if any
	Author  string // defaults to AgentID
	RunID   string
	// EvidenceFor names a group run: the entry is also announced there as
	// message.evidence from its author.
	EvidenceFor string
	Kind        string
	Text        string
}

// maxEntryBytes bounds one entry; longer documents belong in archival memory.
const maxEntryBytes = 64 << 10

// Post writes an entry. With a fixed ID that exists already it returns the
// existing entry and created false.
func (b *Blackboard) Post(ctx context.Context, scope store.Scope, groupID string, p Post) (Entry, bool, error) {
	if !ValidKind(p.Kind) {
		return Entry{}, false, fmt.Errorf("blackboard: kind %q is not fact, proposal, decision or todo: %w", p.Kind, ErrInvalid)
	}
	text := strings.TrimSpace(p.Text)
	if text == "" || len(text) > maxEntryBytes || !utf8.ValidString(text) {
		return Entry{}, false, fmt.Errorf("blackboard: text must be 1 byte to 64 KiB of UTF-8: %w", ErrInvalid)
	}
	if p.Author == "" {
		p.Author = p.AgentID
	}
	md := map[string]string{"kind": p.Kind, "author": p.Author}
	if p.RunID != "" {
		md["run_id"] = p.RunID
	}
	m, err := b.svc.Write(ctx, WriteRequest{
		ID: p.ID, Scope: scope, Type: TypeEpisodic, AgentID: p.AgentID, GroupID: groupID,
		Text: text, Metadata: md, Importance: kindImportance[p.Kind],
	})
	if errors.Is(err, store.ErrConflict) && p.ID != "" {
		e, gerr := b.Get(ctx, scope, groupID, p.ID)
		return e, false, gerr
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("blackboard: %w", err)
	}
	e := entryOf(m)
	if b.rec != nil {
		evs := []store.Event{boardEvent(scope, e, p.RunID, "blackboard.written", e)}
		if p.EvidenceFor != "" {
			evs = append(evs, boardEvent(scope, e, p.EvidenceFor, "message.evidence", map[string]any{
				"from": e.Author, "kind": e.Kind, "content": e.Text, "memory_id": e.ID, "run_id": p.RunID,
			}))
		}
		// The entry is stored; a lost announcement only costs the live view.
		if err := b.rec.RecordEvents(ctx, evs); err != nil {
			b.svc.logger.Warn("blackboard: entry event not stored", "group", groupID, "memory_id", e.ID, "err", err)
		}
	}
	return e, true, nil
}

var kindImportance = map[string]float64{KindDecision: 0.9, KindProposal: 0.6, KindFact: 0.5, KindTodo: 0.5}

func boardEvent(scope store.Scope, e Entry, runID, typ string, payload any) store.Event {
	raw, _ := json.Marshal(payload)
	return store.Event{Scope: scope, RunID: runID, AgentID: e.AgentID, GroupID: e.GroupID, Type: typ, TS: time.Now().UTC(), Payload: raw}
}

func entryOf(m Memory) Entry {
	return Entry{
		ID: m.ID, GroupID: m.GroupID, Kind: m.Metadata["kind"], Author: m.Metadata["author"], AgentID: m.AgentID,
		RunID: m.Metadata["run_id"], Text: m.Text, CreatedAt: m.CreatedAt,
	}
}

// BoardQuery selects entries.
type BoardQuery struct {
	Kind   string
	Author string
	Page   store.Page
}

// List returns the group's entries, newest first, and how many match.
func (b *Blackboard) List(ctx context.Context, scope store.Scope, groupID string, q BoardQuery) ([]Entry, int, error) {
	f := Filter{GroupID: groupID, Types: []string{TypeEpisodic}, Metadata: map[string]string{}}
	if q.Kind != "" {
		f.Metadata["kind"] = q.Kind
	}
	if q.Author != "" {
		f.Metadata["author"] = q.Author
	}
	ms, total, err := b.svc.List(ctx, scope, f, q.Page)
	if err != nil {
		return nil, 0, fmt.Errorf("blackboard: %w", err)
	}
	out := make([]Entry, len(ms))
	for i, m := range ms {
		out[i] = entryOf(m)
	}
	return out, total, nil
}

// Get returns one entry of the group; another group's memory is not found.
func (b *Blackboard) Get(ctx context.Context, scope store.Scope, groupID, id string) (Entry, error) {
	m, err := b.svc.Get(ctx, scope, id)
	if err != nil {
		return Entry{}, fmt.Errorf("blackboard: %w", err)
	}
	if m.GroupID != groupID || m.Metadata["kind"] == "" {
		return Entry{}, fmt.Errorf("blackboard: memory %s: %w", id, store.ErrNotFound)
	}
	return entryOf(m), nil
}

// BoardHit is an entry a search found, with the snippet and the legs that found it.
type BoardHit struct {
	Result
	Kind   string `json:"kind"`
	Author string `json:"author"`
}

// Search finds the group's entries by meaning and keywords.
func (b *Blackboard) Search(ctx context.Context, scope store.Scope, groupID, query, kind string, topK int) ([]BoardHit, error) {
	f := Filter{GroupID: groupID, Types: []string{TypeEpisodic}}
	if kind != "" {
		f.Metadata = map[string]string{"kind": kind}
	}
	res, err := b.svc.Search(ctx, SearchRequest{Scope: scope, Query: query, TopK: topK, Filter: f})
	if err != nil {
		return nil, fmt.Errorf("blackboard: %w", err)
	}
	out := make([]BoardHit, 0, len(res))
	for _, r := range res {
		h := BoardHit{Result: r}
		if e, err := b.Get(ctx, scope, groupID, r.ID); err == nil {
			h.Kind, h.Author = e.Kind, e.Author
		}
		out = append(out, h)
	}
	return out, nil
}

// Digest renders the latest entries, oldest first, for a prompt.
func (b *Blackboard) Digest(ctx context.Context, scope store.Scope, groupID string, limit int) (string, error) {
	entries, _, err := b.List(ctx, scope, groupID, BoardQuery{Page: store.Page{Limit: limit}})
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		fmt.Fprintf(&sb, "- [%s] %s: %s\n", e.Kind, e.Author, Snippet(e.Text, nil, 400))
	}
	return sb.String(), nil
}
