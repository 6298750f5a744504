package storetest

import (
	"testing"

	"github.com/openintern/openintern/store"
)

var messageCases = []testCase{
	{"Message/Enqueue", testMessageEnqueue},
	{"Message/SeqGlobal", testMessageSeqGlobal},
	{"Message/EnqueueAtomic", testMessageEnqueueAtomic},
	{"Message/List", testMessageList},
	{"Message/Isolation", testMessageIsolation},
}

func testMessageEnqueue(t *testing.T, s store.Store) {
	ctx := t.Context()
	empty, err := s.EnqueueMessages(ctx, nil)
	must(t, err)
	if len(empty) != 0 {
		t.Fatalf("EnqueueMessages(nil) = %v", empty)
	}
	batch := []store.NewMessage{
		{Scope: scopeA, ID: "m1", AgentID: "a", SessionKey: "s1", SenderType: store.SenderUser, SenderID: "alice", Content: "one"},
		{Scope: scopeA, ID: "m2", AgentID: "b", SessionKey: "s2", SenderType: store.SenderAgent, SenderID: "a", Content: "two"},
		{Scope: scopeP, ID: "m3", AgentID: "a", SenderType: store.SenderSystem, Content: ""},
		{Scope: scopeA, ID: "m4", AgentID: "a", SessionKey: "s1", SenderType: store.SenderGroup, SenderID: "g", Content: "four ✓"},
	}
	msgs, err := s.EnqueueMessages(ctx, batch)
	must(t, err)
	if len(msgs) != len(batch) {
		t.Fatalf("got %d messages, want %d", len(msgs), len(batch))
	}
	for i, m := range msgs {
		b := batch[i]
		if m.Scope != b.Scope || m.ID != b.ID || m.AgentID != b.AgentID || m.SessionKey != b.SessionKey ||
			m.SenderType != b.SenderType || m.SenderID != b.SenderID || m.Content != b.Content {
			t.Fatalf("message %d = %+v, from %+v", i, m, b)
		}
		if m.Kind != store.MessageKindMessage || m.Status != store.MessageUnread || m.RunID != "" || m.ReadAt != nil {
			t.Fatalf("message %d = %+v, want an unread plain message", i, m)
		}
		checkTime(t, "CreatedAt", m.CreatedAt)
		if i > 0 && m.Seq <= msgs[i-1].Seq {
			t.Fatalf("seqs not increasing in batch order: %v", seqs(msgs))
		}
	}
	listed, total, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	if total != 2 {
		t.Fatalf("total = %d, want 2", total)
	}
	wantEqual(t, "ListMessages(a)", listed, []store.Message{msgs[0], msgs[3]})
	listed, _, err = s.ListMessages(ctx, scopeP, "a", "", store.Page{})
	must(t, err)
	wantEqual(t, "ListMessages(project)", listed, []store.Message{msgs[2]})
	// "" lists every agent of the scope.
	listed, total, err = s.ListMessages(ctx, scopeA, "", "", store.Page{})
	must(t, err)
	if total != 3 {
		t.Fatalf("total over all agents = %d, want 3", total)
	}
	wantEqual(t, "ListMessages(all agents)", listed, []store.Message{msgs[0], msgs[1], msgs[3]})

	for _, bad := range [][]store.NewMessage{
		{{Scope: scopeA, AgentID: "a", Content: "no id"}},
		{{Scope: scopeA, ID: "x", Content: "no agent"}},
		{{Scope: store.Scope{OrgID: "o"}, ID: "x", AgentID: "a"}},
	} {
		if _, err := s.EnqueueMessages(ctx, bad); err == nil {
			t.Fatalf("EnqueueMessages(%+v) succeeded", bad)
		}
	}
}

func testMessageSeqGlobal(t *testing.T, s store.Store) {
	var last int64
	for i := range 6 {
		sc := []store.Scope{scopeA, scopeB, scopeP}[i%3]
		msgs := enqueue(t, s, sc, "a", "s", "x", "y")
		for _, m := range msgs {
			if m.Seq <= last {
				t.Fatalf("seq %d after %d: not increasing across batches and scopes", m.Seq, last)
			}
			last = m.Seq
		}
	}
}

func testMessageEnqueueAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	enqueue(t, s, scopeA, "a", "s", "existing")
	existing, _, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{})
	must(t, err)
	// The last message of the batch reuses an id: nothing of the batch is stored.
	_, err = s.EnqueueMessages(ctx, []store.NewMessage{
		{Scope: scopeA, ID: newID("msg"), AgentID: "a", Content: "new 1"},
		{Scope: scopeA, ID: newID("msg"), AgentID: "b", Content: "new 2"},
		{Scope: scopeA, ID: existing[0].ID, AgentID: "a", Content: "dup"},
	})
	wantErr(t, err, store.ErrConflict)
	// Twice the same id in one batch: the same.
	id := newID("msg")
	_, err = s.EnqueueMessages(ctx, []store.NewMessage{
		{Scope: scopeA, ID: id, AgentID: "a", Content: "x"},
		{Scope: scopeA, ID: id, AgentID: "a", Content: "y"},
	})
	wantErr(t, err, store.ErrConflict)
	listed, total, err := s.ListMessages(ctx, scopeA, "", "", store.Page{})
	must(t, err)
	if total != 1 {
		t.Fatalf("after failed batches: %d messages %v, want only the first", total, contents(listed))
	}
	// The same id in another scope is another message.
	_, err = s.EnqueueMessages(ctx, []store.NewMessage{{Scope: scopeB, ID: existing[0].ID, AgentID: "a", Content: "b"}})
	must(t, err)
}

func testMessageList(t *testing.T, s store.Store) {
	ctx := t.Context()
	msgs := enqueue(t, s, scopeA, "a", "s", "1", "2", "3", "4", "5")
	enqueue(t, s, scopeA, "other", "s", "not a's")
	c := claim(t, s, scopeA, "a")
	finish(t, s, scopeA, c.Run.ID, "ok")
	more := enqueue(t, s, scopeA, "a", "s", "6", "7")

	page, total, err := s.ListMessages(ctx, scopeA, "a", "", store.Page{Offset: 2, Limit: 3})
	must(t, err)
	if total != 7 {
		t.Fatalf("total = %d, want 7", total)
	}
	wantEqual(t, "page seqs", seqs(page), []int64{msgs[2].Seq, msgs[3].Seq, msgs[4].Seq})

	read, total, err := s.ListMessages(ctx, scopeA, "a", store.MessageRead, store.Page{})
	must(t, err)
	if total != 5 || len(read) != 5 {
		t.Fatalf("read = %d (total %d), want 5", len(read), total)
	}
	for i, m := range read {
		if m.Status != store.MessageRead || m.RunID != c.Run.ID || m.Seq != msgs[i].Seq {
			t.Fatalf("read message %d = %+v", i, m)
		}
		checkTimePtr(t, "ReadAt", m.ReadAt)
	}
	unread, total, err := s.ListMessages(ctx, scopeA, "a", store.MessageUnread, store.Page{})
	must(t, err)
	if total != 2 {
		t.Fatalf("unread total = %d, want 2", total)
	}
	wantEqual(t, "unread", unread, more)
	unread, total, err = s.ListMessages(ctx, scopeA, "a", store.MessageUnread, store.Page{Limit: 1})
	must(t, err)
	if total != 2 || len(unread) != 1 || unread[0].Seq != more[0].Seq {
		t.Fatalf("first unread page = %v (total %d)", seqs(unread), total)
	}
}

func testMessageIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	enqueue(t, s, scopeA, "a", "s", "secret")
	for _, sc := range otherScopes {
		msgs, total, err := s.ListMessages(ctx, sc, "a", "", store.Page{})
		must(t, err)
		if total != 0 || len(msgs) != 0 {
			t.Fatalf("scope %+v sees %d messages of scope A", sc, total)
		}
		msgs, total, err = s.ListMessages(ctx, sc, "", "", store.Page{})
		must(t, err)
		if total != 0 || len(msgs) != 0 {
			t.Fatalf("scope %+v sees %d messages of scope A (all agents)", sc, total)
		}
		_, err = s.ClaimNextRun(ctx, sc, "a", newID("run"))
		wantErr(t, err, store.ErrNoWork)
	}
}
