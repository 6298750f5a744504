package memorytest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// insert stores a one-chunk memory (with tokens and a vector) directly in st.
func insert(t *testing.T, st memory.Store, m memory.Memory) memory.Memory {
	t.Helper()
	if err := st.InsertMemory(context.Background(), m, chunksOf(t, m)); err != nil {
		t.Fatalf("insert %s: %v", m.ID, err)
	}
	return m
}

func chunksOf(t *testing.T, m memory.Memory) []memory.Chunk {
	t.Helper()
	emb := memory.NewHashEmbedder(0)
	vecs, err := emb.Embed(context.Background(), []string{m.Text})
	if err != nil {
		t.Fatal(err)
	}
	return []memory.Chunk{{MemoryID: m.ID, Seq: 0, Text: m.Text, Tokens: memory.Tokenize(m.Text),
		Vector: vecs[0], Model: emb.Model()}}
}

func memIDs(ms []memory.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testListMemories(t *testing.T, st memory.Store) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	ms := map[string]memory.Memory{}
	for _, m := range []memory.Memory{
		{ID: "m1", Type: memory.TypeEpisodic, AgentID: "alice", Text: "alice fixed the login bug", CreatedAt: at(1)},
		{ID: "m2", Type: memory.TypeArchival, AgentID: "bob", GroupID: "g1", Text: "the runbook for deploys",
			Metadata: map[string]string{"source": "wiki", "lang": "en"}, Importance: 0.8, CreatedAt: at(2)},
		{ID: "m3", Type: memory.TypeArchival, GroupID: "g1", Text: "blackboard: plan step one",
			Metadata: map[string]string{"source": "plan"}, CreatedAt: at(3)},
		{ID: "m5", Type: memory.TypeEpisodic, AgentID: "bob", GroupID: "g1", Text: "bob reviewed step one",
			Metadata: map[string]string{"source": "wiki"}, CreatedAt: at(4)},
		{ID: "m4", Type: memory.TypeEpisodic, AgentID: "bob", GroupID: "g1", Text: "bob reviewed step two",
			CreatedAt: at(4)}, // the same time as m5: ties go by id
		{ID: "m6", Type: memory.TypeArchival, AgentID: "alice", GroupID: "g2", Text: "another team's note", CreatedAt: at(5)},
	} {
		m.Scope = scopeA
		ms[m.ID] = insert(t, st, m)
	}
	insert(t, st, memory.Memory{Scope: scopeB, ID: "b1", Type: memory.TypeArchival, GroupID: "g1", Text: "B's note", CreatedAt: at(9)})
	insert(t, st, memory.Memory{Scope: scopeP, ID: "p1", Type: memory.TypeArchival, GroupID: "g1", Text: "P's note", CreatedAt: at(9)})

	list := func(scope store.Scope, f memory.Filter, page store.Page) ([]memory.Memory, int) {
		t.Helper()
		got, total, err := st.ListMemories(ctx, scope, f, page)
		if err != nil {
			t.Fatalf("ListMemories(%+v): %v", f, err)
		}
		return got, total
	}
	for _, c := range []struct {
		name string
		f    memory.Filter
		want []string
	}{
		{"all", memory.Filter{}, []string{"m6", "m4", "m5", "m3", "m2", "m1"}},
		{"blackboard", memory.Filter{GroupID: "g1"}, []string{"m4", "m5", "m3", "m2"}},
		{"agent", memory.Filter{AgentID: "bob"}, []string{"m4", "m5", "m2"}},
		{"agent and group", memory.Filter{AgentID: "alice", GroupID: "g2"}, []string{"m6"}},
		{"type", memory.Filter{Types: []string{memory.TypeEpisodic}}, []string{"m4", "m5", "m1"}},
		{"types", memory.Filter{Types: []string{memory.TypeEpisodic, memory.TypeArchival}}, []string{"m6", "m4", "m5", "m3", "m2", "m1"}},
		{"metadata", memory.Filter{Metadata: map[string]string{"source": "wiki"}}, []string{"m5", "m2"}},
		{"metadata, two keys", memory.Filter{Metadata: map[string]string{"source": "wiki", "lang": "en"}}, []string{"m2"}},
		{"metadata miss", memory.Filter{Metadata: map[string]string{"source": "email"}}, []string{}},
		{"after", memory.Filter{After: at(4)}, []string{"m6", "m4", "m5"}},
		{"before", memory.Filter{Before: at(3)}, []string{"m2", "m1"}},
		{"window", memory.Filter{After: at(2), Before: at(4), GroupID: "g1"}, []string{"m3", "m2"}},
	} {
		got, total := list(scopeA, c.f, store.Page{})
		if !slices.Equal(memIDs(got), c.want) || total != len(c.want) {
			t.Fatalf("%s: %v (total %d), want %v", c.name, memIDs(got), total, c.want)
		}
	}
	// Pages, with the total of all matches.
	got, total := list(scopeA, memory.Filter{GroupID: "g1"}, store.Page{Offset: 1, Limit: 2})
	if !slices.Equal(memIDs(got), []string{"m5", "m3"}) || total != 4 {
		t.Fatalf("page: %v (total %d)", memIDs(got), total)
	}
	got, total = list(scopeA, memory.Filter{}, store.Page{Offset: 6, Limit: 2})
	if len(got) != 0 || total != 6 {
		t.Fatalf("page past the end: %v (total %d)", memIDs(got), total)
	}
	// Listed memories are whole.
	got, _ = list(scopeA, memory.Filter{AgentID: "bob", Types: []string{memory.TypeArchival}}, store.Page{})
	want := ms["m2"]
	if len(got) != 1 || got[0].Scope != scopeA || got[0].ID != "m2" || got[0].Type != memory.TypeArchival ||
		got[0].AgentID != "bob" || got[0].GroupID != "g1" || got[0].Text != want.Text || got[0].Importance != 0.8 ||
		got[0].Chunks != 1 || !got[0].CreatedAt.Equal(want.CreatedAt) || !maps.Equal(got[0].Metadata, want.Metadata) {
		t.Fatalf("listed m2 = %+v", got)
	}
	one, err := st.GetMemory(ctx, scopeA, "m2")
	if err != nil {
		t.Fatal(err)
	}
	if one.CreatedAt != got[0].CreatedAt || one.Text != got[0].Text {
		t.Fatalf("GetMemory %+v != listed %+v", one, got[0])
	}
	// Other scopes see their own memories only.
	for _, c := range []struct {
		scope store.Scope
		want  []string
	}{{scopeB, []string{"b1"}}, {scopeP, []string{"p1"}}, {store.Scope{OrgID: "org_c", UserID: "u1"}, []string{}}} {
		got, total := list(c.scope, memory.Filter{GroupID: "g1"}, store.Page{})
		if !slices.Equal(memIDs(got), c.want) || total != len(c.want) {
			t.Fatalf("scope %+v: %v (total %d), want %v", c.scope, memIDs(got), total, c.want)
		}
	}
	// A deleted memory is not listed.
	if err := st.DeleteMemory(ctx, scopeA, "m3"); err != nil {
		t.Fatal(err)
	}
	got, total = list(scopeA, memory.Filter{GroupID: "g1"}, store.Page{})
	if !slices.Equal(memIDs(got), []string{"m4", "m5", "m2"}) || total != 3 {
		t.Fatalf("after a delete: %v (total %d)", memIDs(got), total)
	}
}

func testInsertConflict(t *testing.T, st memory.Store) {
	ctx := context.Background()
	created := time.Now().UTC().Truncate(time.Microsecond)
	orig := insert(t, st, memory.Memory{Scope: scopeA, ID: "dup", Type: memory.TypeArchival, AgentID: "alice",
		Text: "the original zeppelin note", CreatedAt: created})
	dup := memory.Memory{Scope: scopeA, ID: "dup", Type: memory.TypeEpisodic, AgentID: "bob",
		Text: "a replacement about quokkas", CreatedAt: created.Add(time.Minute)}
	err := st.InsertMemory(ctx, dup, chunksOf(t, dup))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("insert of a taken id: %v, want store.ErrConflict", err)
	}
	got, err := st.GetMemory(ctx, scopeA, "dup")
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != orig.Text || got.Type != orig.Type || got.AgentID != "alice" || got.Chunks != 1 ||
		!got.CreatedAt.Equal(orig.CreatedAt) {
		t.Fatalf("memory after a conflicting insert = %+v", got)
	}
	// None of the duplicate's chunks, tokens or vectors were stored.
	if hits, err := st.TextSearch(ctx, scopeA, memory.Tokenize("quokkas replacement"), memory.Filter{}, 10); err != nil || len(hits) != 0 {
		t.Fatalf("text search for the refused memory: %+v, %v", hits, err)
	}
	hits, err := st.TextSearch(ctx, scopeA, memory.Tokenize("zeppelin"), memory.Filter{}, 10)
	if err != nil || len(hits) != 1 || hits[0].MemoryID != "dup" || hits[0].Text != orig.Text {
		t.Fatalf("text search for the original: %+v, %v", hits, err)
	}
	emb := memory.NewHashEmbedder(0)
	vecs, err := emb.Embed(ctx, []string{dup.Text})
	if err != nil {
		t.Fatal(err)
	}
	vhits, err := st.VectorSearch(ctx, scopeA, emb.Model(), vecs[0], memory.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(vhits) != 1 || vhits[0].Text != orig.Text {
		t.Fatalf("vector search after a conflicting insert: %+v", vhits)
	}
	all, total, err := st.ListMemories(ctx, scopeA, memory.Filter{}, store.Page{})
	if err != nil || total != 1 || len(all) != 1 {
		t.Fatalf("ListMemories after a conflicting insert: %+v, %d, %v", all, total, err)
	}
	// The same id in another scope is another memory.
	other := memory.Memory{Scope: scopeB, ID: "dup", Type: memory.TypeArchival, Text: "B's quokkas", CreatedAt: created}
	if err := st.InsertMemory(ctx, other, chunksOf(t, other)); err != nil {
		t.Fatalf("same id in another scope: %v", err)
	}
}
