package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/openintern/openintern/store"
)

const messageCols = `seq, org_id, user_id, project_id, message_id, agent_id, session_key, group_id, kind,
	sender_type, sender_id, content, run_id, status, created_at, read_at`

// scanMessage reads messageCols, then extra.
func scanMessage(row scanner, extra ...any) (store.Message, error) {
	var m store.Message
	var runID sql.NullString
	var created int64
	var read sql.NullInt64
	dest := append([]any{&m.Seq, &m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.ID, &m.AgentID,
		&m.SessionKey, &m.GroupID, &m.Kind, &m.SenderType, &m.SenderID, &m.Content, &runID, &m.Status,
		&created, &read}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.Message{}, err
	}
	m.RunID = runID.String
	m.CreatedAt = fromMicros(created)
	m.ReadAt = fromNullMicros(read)
	return m, nil
}

func queryMessages(ctx context.Context, tx *sql.Tx, query string, args []any) ([]store.Message, error) {
	msgs := []store.Message{}
	err := queryRows(ctx, tx, query, args, func(rows *sql.Rows) error {
		m, err := scanMessage(rows)
		msgs = append(msgs, m)
		return err
	})
	return msgs, err
}

// EnqueueMessages stores the batch, unread, in one transaction, and returns
// it with the seqs it got, in the order given.
func (s *Store) EnqueueMessages(ctx context.Context, msgs []store.NewMessage) ([]store.Message, error) {
	if len(msgs) == 0 {
		return []store.Message{}, nil
	}
	out, err := newMessages(msgs, s.now())
	if err != nil {
		return nil, fmt.Errorf("sqlite: enqueue messages: %w", err)
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) error { return insertMessages(ctx, tx, out) })
	if err != nil {
		return nil, fail("enqueue messages", err)
	}
	return out, nil
}

// newMessages checks a batch and returns the messages it will store, unread
// and created at ts, without their seqs.
func newMessages(msgs []store.NewMessage, ts time.Time) ([]store.Message, error) {
	out := make([]store.Message, len(msgs))
	for i, m := range msgs {
		if err := store.CheckScope(m.Scope); err != nil {
			return nil, err
		}
		if m.ID == "" || m.AgentID == "" {
			return nil, errors.New("a message needs an id and an agent id")
		}
		out[i] = store.Message{
			Scope: m.Scope, ID: m.ID, AgentID: m.AgentID, SessionKey: m.SessionKey, GroupID: m.GroupID,
			Kind: store.MessageKindMessage, SenderType: m.SenderType, SenderID: m.SenderID,
			Content: m.Content, Status: store.MessageUnread, CreatedAt: ts,
		}
	}
	return out, nil
}

// insertMessages inserts plain messages made by newMessages, in order, and
// sets their seqs.
func insertMessages(ctx context.Context, tx *sql.Tx, msgs []store.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO messages (org_id, user_id, project_id, message_id,
			agent_id, session_key, group_id, kind, sender_type, sender_id, content, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'message', ?, ?, ?, 'unread', ?) RETURNING seq`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range msgs {
		m := &msgs[i]
		if err := stmt.QueryRowContext(ctx, scopeArgs(m.Scope, m.ID, m.AgentID, m.SessionKey, m.GroupID,
			m.SenderType, m.SenderID, m.Content, micros(m.CreatedAt))...).Scan(&m.Seq); err != nil {
			return err
		}
	}
	return nil
}

// ListMessages returns a page of an agent's inbox ("" agent: every agent of
// the scope) in seq order, filtered by status ("" for all), and how many
// messages match.
func (s *Store) ListMessages(ctx context.Context, scope store.Scope, agentID, status string, page store.Page) ([]store.Message, int, error) {
	limit, offset := store.PageBounds(page)
	cond := scopeCond
	args := scopeArgs(scope)
	if agentID != "" {
		cond += " AND agent_id = ?"
		args = append(args, agentID)
	}
	switch status {
	case "":
	case store.MessageUnread:
		cond += " AND status = 'unread'" // a literal, so the partial index applies
	default:
		cond += " AND status = ?"
		args = append(args, status)
	}
	var total int
	var msgs []store.Message
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE `+cond, args...).Scan(&total); err != nil {
			return err
		}
		var err error
		msgs, err = queryMessages(ctx, tx, `SELECT `+messageCols+` FROM messages WHERE `+cond+`
			ORDER BY seq LIMIT ? OFFSET ?`, append(append([]any{}, args...), limit, offset))
		return err
	})
	if err != nil {
		return nil, 0, fail("list messages", err)
	}
	return msgs, total, nil
}
