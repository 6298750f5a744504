package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/openintern/openintern/store"
)

const messageCols = `seq, org_id, user_id, project_id, message_id, agent_id, session_key, group_id, kind,
	sender_type, sender_id, content, run_id, status, created_at, read_at`

func scanMessage(row pgx.Row) (store.Message, error) {
	var m store.Message
	var runID *string
	err := row.Scan(&m.Seq, &m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.ID, &m.AgentID,
		&m.SessionKey, &m.GroupID, &m.Kind, &m.SenderType, &m.SenderID, &m.Content, &runID, &m.Status,
		&m.CreatedAt, &m.ReadAt)
	if err != nil {
		return store.Message{}, err
	}
	if runID != nil {
		m.RunID = *runID
	}
	m.CreatedAt = utc(m.CreatedAt)
	m.ReadAt = utcPtr(m.ReadAt)
	return m, nil
}

func collectMessages(rows pgx.Rows) ([]store.Message, error) {
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Message, error) { return scanMessage(row) })
	if msgs == nil && err == nil {
		msgs = []store.Message{}
	}
	return msgs, err
}

// messageArrays holds a batch of new messages column by column, for unnest.
type messageArrays struct {
	org, user, project, id, agent, session, group, senderType, senderID, content []string
}

// newMessageArrays checks a batch of new messages and returns it as arrays.
func newMessageArrays(msgs []store.NewMessage) (messageArrays, error) {
	n := len(msgs)
	a := messageArrays{
		org: make([]string, n), user: make([]string, n), project: make([]string, n),
		id: make([]string, n), agent: make([]string, n), session: make([]string, n), group: make([]string, n),
		senderType: make([]string, n), senderID: make([]string, n), content: make([]string, n),
	}
	for i, m := range msgs {
		if err := store.CheckScope(m.Scope); err != nil {
			return messageArrays{}, err
		}
		if m.ID == "" || m.AgentID == "" {
			return messageArrays{}, errors.New("a message needs an id and an agent id")
		}
		a.org[i], a.user[i], a.project[i] = m.Scope.OrgID, m.Scope.UserID, m.Scope.ProjectID
		a.id[i], a.agent[i], a.session[i], a.group[i] = m.ID, m.AgentID, m.SessionKey, m.GroupID
		a.senderType[i], a.senderID[i], a.content[i] = m.SenderType, m.SenderID, m.Content
	}
	return a, nil
}

// args returns the arrays as query arguments.
func (a messageArrays) args() []any {
	return []any{a.org, a.user, a.project, a.id, a.agent, a.session, a.group, a.senderType, a.senderID, a.content}
}

// insertMessages inserts a batch of plain unread messages given as arrays
// from parameter $n on, created at parameter $ts, in the caller's order
// (seq is drawn in insertion order), where cond (a condition, or "true")
// holds. It returns seq, the scope and message_id of each.
func insertMessages(n, ts int, cond string) string {
	p := func(i int) string { return fmt.Sprintf("$%d::text[]", n+i) }
	return fmt.Sprintf(`INSERT INTO messages (org_id, user_id, project_id, message_id, agent_id, session_key, group_id,
			kind, sender_type, sender_id, content, status, created_at)
		SELECT org_id, user_id, project_id, message_id, agent_id, session_key, group_id,
			'message', sender_type, sender_id, content, 'unread', $%d
		FROM unnest(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
			WITH ORDINALITY AS u(org_id, user_id, project_id, message_id, agent_id, session_key, group_id,
				sender_type, sender_id, content, ord)
		WHERE %s
		ORDER BY ord
		RETURNING seq, org_id, user_id, project_id, message_id`,
		ts, p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), cond)
}

// EnqueueMessages stores the batch, unread, in one statement, and returns it
// with the seqs it got, in the order given.
func (s *Store) EnqueueMessages(ctx context.Context, msgs []store.NewMessage) ([]store.Message, error) {
	if len(msgs) == 0 {
		return []store.Message{}, nil
	}
	n := len(msgs)
	arrays, err := newMessageArrays(msgs)
	if err != nil {
		return nil, fmt.Errorf("postgres: enqueue messages: %w", err)
	}
	ts := s.now()
	rows, err := s.pool.Query(ctx, `WITH ins AS (`+insertMessages(1, 11, "true")+`)
		SELECT seq, org_id, user_id, project_id, message_id FROM ins`,
		append(arrays.args(), ts)...)
	if err != nil {
		return nil, s.fail(ctx, "enqueue messages", err)
	}
	// Match the seqs to the batch by (scope, message id), which is unique.
	type key struct {
		scope store.Scope
		id    string
	}
	seqs := make(map[key]int64, n)
	var k key
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&seq, &k.scope.OrgID, &k.scope.UserID, &k.scope.ProjectID, &k.id}, func() error {
		seqs[k] = seq
		return nil
	})
	if err == nil && len(seqs) != n {
		err = fmt.Errorf("stored %d messages of %d", len(seqs), n)
	}
	if err != nil {
		return nil, s.fail(ctx, "enqueue messages", err)
	}
	out := make([]store.Message, n)
	for i, m := range msgs {
		out[i] = store.Message{
			Scope: m.Scope, ID: m.ID, Seq: seqs[key{m.Scope, m.ID}], AgentID: m.AgentID, SessionKey: m.SessionKey,
			GroupID: m.GroupID, Kind: store.MessageKindMessage, SenderType: m.SenderType, SenderID: m.SenderID,
			Content: m.Content, Status: store.MessageUnread, CreatedAt: ts,
		}
	}
	return out, nil
}

// ListMessages returns a page of an agent's inbox ("" agent: every agent of
// the scope) in seq order, filtered by status ("" for all), and how many
// messages match.
func (s *Store) ListMessages(ctx context.Context, scope store.Scope, agentID, status string, page store.Page) ([]store.Message, int, error) {
	limit, offset := store.PageBounds(page)
	cond := `org_id = $1 AND user_id = $2 AND project_id = $3`
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID}
	if agentID != "" {
		args = append(args, agentID)
		cond += fmt.Sprintf(" AND agent_id = $%d", len(args))
	}
	switch status {
	case "":
	case store.MessageUnread:
		cond += " AND status = 'unread'" // a literal, so the partial index applies
	default:
		args = append(args, status)
		cond += fmt.Sprintf(" AND status = $%d", len(args))
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT count(*) FROM messages WHERE `+cond, args...)
	b.Queue(fmt.Sprintf(`SELECT %s FROM messages WHERE %s ORDER BY seq LIMIT $%d OFFSET $%d`,
		messageCols, cond, len(args)+1, len(args)+2), append(append([]any{}, args...), limit, offset)...)
	var total int
	var msgs []store.Message
	err := func() error {
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		if err := br.QueryRow().Scan(&total); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		if msgs, err = collectMessages(rows); err != nil {
			return err
		}
		return br.Close()
	}()
	if err != nil {
		return nil, 0, s.fail(ctx, "list messages", err)
	}
	return msgs, total, nil
}
