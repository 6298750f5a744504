package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/openintern/openintern/internal/testenv"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/vecindex"
	"github.com/openintern/openintern/store"
)

// TestMemoryPostingsFollowChunks checks that memory_postings holds exactly
// one row per distinct term of each stored chunk, and that deleting a memory
// removes its rows (a search would hide leftovers, so count them).
func TestMemoryPostingsFollowChunks(t *testing.T) {
	ctx := context.Background()
	s := open(t, testenv.PostgresURL(t))
	svc, err := memory.New(memory.Config{Store: s.Memory(), Embedder: memory.NewHashEmbedder(64)})
	if err != nil {
		t.Fatal(err)
	}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	other := store.Scope{OrgID: "o", UserID: "v"}
	count := func(sc store.Scope) int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM memory_postings WHERE org_id = $1 AND user_id = $2 AND project_id = $3`,
			sc.OrgID, sc.UserID, sc.ProjectID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	texts := []string{"the deploy key lives in vault, the deploy key rotates monthly", "测试数据库在上海机房", "tomatoes need sun and water"}
	want := 0
	var ids []string
	for _, text := range texts {
		m, err := svc.Write(ctx, memory.WriteRequest{Scope: scope, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
		want += len(memory.UniqueTokens(memory.Tokenize(text)))
	}
	if _, err := svc.Write(ctx, memory.WriteRequest{Scope: other, Text: texts[0]}); err != nil {
		t.Fatal(err)
	}
	if got := count(scope); got != want {
		t.Fatalf("%d postings, want %d", got, want)
	}
	if err := svc.Delete(ctx, scope, ids[0]); err != nil {
		t.Fatal(err)
	}
	want -= len(memory.UniqueTokens(memory.Tokenize(texts[0])))
	if got := count(scope); got != want {
		t.Fatalf("after delete: %d postings, want %d", got, want)
	}
	for _, id := range ids[1:] {
		if err := svc.Delete(ctx, scope, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(scope); got != 0 {
		t.Fatalf("after deleting all: %d postings", got)
	}
	if got := count(other); got != len(memory.UniqueTokens(memory.Tokenize(texts[0]))) {
		t.Fatalf("the other scope lost postings: %d", got)
	}
}

// TestVectorIndexSeesOtherWriters: two daemons on one database. B loads a
// scope into its in-memory index; what A writes there afterwards reaches B's
// searches within syncEvery, and what B writes itself at once; what A
// deletes drops out of B's results.
func TestVectorIndexSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	a, b := open(t, url).Memory(), open(t, url).Memory()
	emb := memory.NewHashEmbedder(64)
	svcA, _ := memory.New(memory.Config{Store: a, Embedder: emb})
	svcB, _ := memory.New(memory.Config{Store: b, Embedder: emb})
	scope := store.Scope{OrgID: "o", UserID: "u"}
	vsearch := func(svc *memory.Service, q string) []string {
		t.Helper()
		res, err := svc.Search(ctx, memory.SearchRequest{Scope: scope, Query: q, Mode: memory.ModeVector, TopK: 3})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range res {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := vsearch(svcB, "boiler"); len(got) != 0 { // B loads the scope while it is empty
		t.Fatalf("B on an empty scope: %v", got)
	}
	first, err := svcA.Write(ctx, memory.WriteRequest{Scope: scope, Text: "the boiler leaks near the valve"})
	if err != nil {
		t.Fatal(err)
	}
	// B reads rows other daemons wrote at most syncEvery ago: wait a few
	// syncs at most (slow under -race), not a fixed time.
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * syncEvery)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, 5*syncEvery)
			}
			time.Sleep(syncEvery / 10)
		}
	}
	within("B finds A's first write", func() bool {
		got := vsearch(svcB, "boiler leaking")
		return len(got) == 1 && got[0] == first.ID
	})
	if n, loaded := b.vi.Len(vecindex.Key{Scope: scope, Model: emb.Model()}); !loaded || n != 1 {
		t.Fatalf("B's index: %d vectors, loaded %v", n, loaded)
	}
	mine, err := svcB.Write(ctx, memory.WriteRequest{Scope: scope, Text: "tomatoes ripen in august"})
	if err != nil {
		t.Fatal(err)
	}
	if got := vsearch(svcB, "ripe tomatoes"); len(got) == 0 || got[0] != mine.ID {
		t.Fatalf("B's own write not found at once: %v", got)
	}
	theirs, err := svcA.Write(ctx, memory.WriteRequest{Scope: scope, Text: "the dentist appointment moved to friday"})
	if err != nil {
		t.Fatal(err)
	}
	within("B finds A's write", func() bool {
		got := vsearch(svcB, "dentist appointment")
		return len(got) > 0 && got[0] == theirs.ID
	})
	if err := svcA.Delete(ctx, scope, theirs.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range vsearch(svcB, "dentist appointment") {
		if id == theirs.ID {
			t.Fatal("B still finds the memory A deleted")
		}
	}
}
