package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

type posting struct {
	term   string
	impact float64
	chunk  int64
}

func postings(t *testing.T, s *Store, sc store.Scope) map[posting]bool {
	t.Helper()
	out := map[posting]bool{}
	err := queryRows(context.Background(), s.r, `SELECT term, impact, chunk_id FROM memory_postings WHERE `+scopeCond, scopeArgs(sc),
		func(rows *sql.Rows) error {
			var p posting
			if err := rows.Scan(&p.term, &p.impact, &p.chunk); err != nil {
				return err
			}
			out[p] = true
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMemoryPostingsFollowChunks checks that memory_postings holds exactly
// one row per distinct term of each stored chunk, weighted by memory.Impact,
// and that deleting a memory removes its rows (a search would hide
// leftovers, so count them).
func TestMemoryPostingsFollowChunks(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "oi.db"))
	svc, err := memory.New(memory.Config{Store: s.Memory(), Embedder: memory.NewHashEmbedder(64)})
	if err != nil {
		t.Fatal(err)
	}
	scope := store.Scope{OrgID: "o", UserID: "u"}
	other := store.Scope{OrgID: "o", UserID: "v"}
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
	got := postings(t, s, scope)
	if len(got) != want {
		t.Fatalf("%d postings, want %d", len(got), want)
	}
	// "deploy" is twice in the first chunk.
	distinct := len(memory.UniqueTokens(memory.Tokenize(texts[0])))
	found := false
	for p := range got {
		if p.term == "deploy" {
			found = true
			if p.impact != memory.Impact(2, distinct) {
				t.Fatalf("deploy's impact %v, want %v", p.impact, memory.Impact(2, distinct))
			}
		}
	}
	if !found {
		t.Fatal("no posting for deploy")
	}
	if err := svc.Delete(ctx, scope, ids[0]); err != nil {
		t.Fatal(err)
	}
	want -= len(memory.UniqueTokens(memory.Tokenize(texts[0])))
	if got := postings(t, s, scope); len(got) != want {
		t.Fatalf("after delete: %d postings, want %d", len(got), want)
	}
	for _, id := range ids[1:] {
		if err := svc.Delete(ctx, scope, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := postings(t, s, scope); len(got) != 0 {
		t.Fatalf("after deleting all: %d postings", len(got))
	}
	if got := postings(t, s, other); len(got) != len(memory.UniqueTokens(memory.Tokenize(texts[0]))) {
		t.Fatalf("the other scope lost postings: %d", len(got))
	}
}

// TestPostingsMigrationBackfillsFromFTS: a database written before
// memory_postings existed (chunks indexed in FTS5 only) gets the postings a
// write makes today, with bit-identical weights, so deletes find them by
// their key; and FTS5 is gone afterwards.
func TestPostingsMigrationBackfillsFromFTS(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "oi.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := memory.New(memory.Config{Store: s.Memory(), Embedder: memory.NewHashEmbedder(64)})
	if err != nil {
		t.Fatal(err)
	}
	scopes := []store.Scope{{OrgID: "o", UserID: "u"}, {OrgID: "o", UserID: "v", ProjectID: "p"}}
	texts := []string{
		"the deploy key lives in vault, the deploy key rotates monthly",
		"测试数据库在上海机房，数据库每天备份",
		strings.Repeat("tomatoes need sun and water, ", 30) + "and basil",
		"one",
	}
	var ids []string
	for _, sc := range scopes {
		for _, text := range texts {
			m, err := svc.Write(ctx, memory.WriteRequest{Scope: sc, Text: text})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
	}
	want := map[store.Scope]map[posting]bool{}
	for _, sc := range scopes {
		want[sc] = postings(t, s, sc)
	}
	// Back to the schema before 0009: FTS5 holds the tokens, no postings.
	for _, q := range []string{
		`CREATE VIRTUAL TABLE memory_fts USING fts5(tokens, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 0')`,
		`DROP TABLE memory_postings`,
		`DELETE FROM schema_migrations WHERE version = 9`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	err = queryRows(ctx, s.r, `SELECT id, text FROM memory_chunks`, nil, func(rows *sql.Rows) error {
		var id int64
		var text string
		if err := rows.Scan(&id, &text); err != nil {
			return err
		}
		_, err := s.w.ExecContext(ctx, `INSERT INTO memory_fts (rowid, tokens) VALUES (?, ?)`, id, strings.Join(memory.Tokenize(text), " "))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	for _, sc := range scopes {
		got := postings(t, s, sc)
		if len(got) != len(want[sc]) {
			t.Fatalf("%v: %d postings after the migration, want %d", sc, len(got), len(want[sc]))
		}
		for p := range want[sc] {
			if !got[p] {
				t.Fatalf("%v: posting %+v missing or weighted differently after the migration", sc, p)
			}
		}
	}
	var fts int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name LIKE 'memory_fts%'`).Scan(&fts); err != nil {
		t.Fatal(err)
	}
	if fts != 0 {
		t.Fatalf("%d FTS5 tables left", fts)
	}
	svc, err = memory.New(memory.Config{Store: s.Memory(), Embedder: memory.NewHashEmbedder(64)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Search(ctx, memory.SearchRequest{Scope: scopes[0], Query: "数据库备份", Mode: memory.ModeFullText})
	if err != nil || len(res) == 0 || res[0].ID != ids[1] {
		t.Fatalf("search after the migration: %+v %v", res, err)
	}
	for i, id := range ids {
		if err := svc.Delete(ctx, scopes[i/len(texts)], id); err != nil {
			t.Fatal(err)
		}
	}
	var left int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM memory_postings`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("%d postings left after deleting every memory", left)
	}
}
