package memorytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Open returns a fresh, empty store for one test.
type Open func(t *testing.T) memory.Store

var (
	scopeA = store.Scope{OrgID: "org_a", UserID: "u1"}
	scopeB = store.Scope{OrgID: "org_b", UserID: "u1"}
	scopeP = store.Scope{OrgID: "org_a", UserID: "u1", ProjectID: "p1"}
)

func newService(t *testing.T, st memory.Store, emb memory.Embedder) *memory.Service {
	t.Helper()
	svc, err := memory.New(memory.Config{Store: st, Embedder: emb})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func write(t *testing.T, svc *memory.Service, req memory.WriteRequest) memory.Memory {
	t.Helper()
	m, err := svc.Write(context.Background(), req)
	if err != nil {
		t.Fatalf("write %q: %v", req.Text, err)
	}
	return m
}

func search(t *testing.T, svc *memory.Service, req memory.SearchRequest) []memory.Result {
	t.Helper()
	res, err := svc.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %q: %v", req.Query, err)
	}
	return res
}

func ids(rs []memory.Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// Run runs the whole suite.
func Run(t *testing.T, open Open) {
	t.Run("WriteGetDelete", func(t *testing.T) { testWriteGetDelete(t, open(t)) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, open(t)) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, open(t)) })
	t.Run("Chinese", func(t *testing.T) { testChinese(t, open(t)) })
	t.Run("Dedupe", func(t *testing.T) { testDedupe(t, open(t)) })
	t.Run("ModelsDoNotMix", func(t *testing.T) { testModels(t, open(t)) })
	t.Run("CoreBlocks", func(t *testing.T) { testCore(t, open(t)) })
	t.Run("CoreEditsOncePerKey", func(t *testing.T) { testCoreOnce(t, open(t)) })
	t.Run("Quality", func(t *testing.T) { testQuality(t, open(t)) })
	t.Run("ListMemories", func(t *testing.T) { testListMemories(t, open(t)) })
	t.Run("InsertConflict", func(t *testing.T) { testInsertConflict(t, open(t)) })
	t.Run("WriteBatch", func(t *testing.T) { testWriteBatch(t, open(t)) })
	t.Run("EmbedderDown", func(t *testing.T) { testEmbedderDown(t, open(t)) })
	t.Run("ReEmbedRejected", func(t *testing.T) { testReEmbedRejected(t, open(t)) })
	t.Run("VectorNeedsSimilarity", func(t *testing.T) { testVectorNeedsSimilarity(t, open(t)) })
	t.Run("LargeDimension", func(t *testing.T) { testLargeDimension(t, open(t)) })
	t.Run("TextSearchPathsAgree", func(t *testing.T) { testTextSearchPathsAgree(t, open(t)) })
	t.Run("FusedSearchAgrees", func(t *testing.T) { testFusedSearchAgrees(t, open(t)) })
	t.Run("LazySearchAgrees", func(t *testing.T) { testLazySearchAgrees(t, open(t)) })
	t.Run("Quota", func(t *testing.T) { testQuota(t, open(t)) })
	t.Run("QuotaConcurrent", func(t *testing.T) { testQuotaConcurrent(t, open(t)) })
}

// DownEmbedder is the default embedder whose server went away.
type DownEmbedder struct{ *memory.HashEmbedder }

// Embed fails as a refused connection does.
func (DownEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errors.New("embeddings: connection refused")
}

// testEmbedderDown: with the embedder failing, a hybrid search still finds
// by full text (found_by says so), a vector search fails, and a write fails
// without storing anything.
func testEmbedderDown(t *testing.T, st memory.Store) {
	ctx := context.Background()
	up := newService(t, st, memory.NewHashEmbedder(0))
	m := write(t, up, memory.WriteRequest{Scope: scopeA, Text: "The staging database runs on port 5433."})
	down := newService(t, st, DownEmbedder{memory.NewHashEmbedder(0)})
	res := search(t, down, memory.SearchRequest{Scope: scopeA, Query: "staging database port"})
	if len(res) != 1 || res[0].ID != m.ID || strings.Join(res[0].FoundBy, ",") != memory.ModeFullText {
		t.Fatalf("hybrid with the embedder down = %+v", res)
	}
	if _, err := down.Search(ctx, memory.SearchRequest{Scope: scopeA, Query: "staging database", Mode: memory.ModeVector}); !errors.Is(err, memory.ErrEmbedder) {
		t.Fatalf("vector search with the embedder down: %v", err)
	}
	if _, err := down.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: "lost note about kiwis"}); !errors.Is(err, memory.ErrEmbedder) {
		t.Fatalf("write with the embedder down: %v", err)
	}
	if res := search(t, up, memory.SearchRequest{Scope: scopeA, Query: "kiwis", Mode: memory.ModeFullText}); len(res) != 0 {
		t.Fatalf("a failed write left %+v", res)
	}
}

// testWriteBatch: a batch across scopes is stored whole and searchable by
// both legs (term counts included); a batch with a taken id stores nothing.
func testWriteBatch(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc := newService(t, st, memory.NewHashEmbedder(0))
	ms, err := svc.WriteBatch(ctx, []memory.WriteRequest{
		{Scope: scopeA, AgentID: "a1", Text: "The staging database moved to the new cluster on Monday."},
		{Scope: scopeA, AgentID: "a2", Text: "周一把测试数据库迁移到了新集群。", Importance: 0.7},
		{Scope: scopeB, AgentID: "a1", Text: "The staging database of B is private to B."},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[0].ID == "" || ms[0].ID == ms[1].ID {
		t.Fatalf("batch = %+v", ms)
	}
	res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "staging database cluster", Mode: memory.ModeFullText})
	if len(res) != 1 || res[0].ID != ms[0].ID {
		t.Fatalf("full-text after a batch = %+v", res)
	}
	res = search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "测试数据库", TopK: 5})
	if len(res) == 0 || res[0].ID != ms[1].ID {
		t.Fatalf("Chinese after a batch = %+v", res)
	}
	if got, err := svc.Get(ctx, scopeB, ms[2].ID); err != nil || got.Text != ms[2].Text {
		t.Fatalf("scope B's memory: %+v %v", got, err)
	}
	if _, err := svc.Get(ctx, scopeA, ms[2].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("scope A reads B's batch memory: %v", err)
	}
	// All or nothing.
	_, err = svc.WriteBatch(ctx, []memory.WriteRequest{
		{Scope: scopeA, ID: "mem_fresh_one", Text: "a fresh fact about kiwis"},
		{Scope: scopeA, ID: ms[0].ID, Text: "a duplicate id"},
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("batch with a taken id: %v", err)
	}
	if _, err := svc.Get(ctx, scopeA, "mem_fresh_one"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed batch stored part of itself: %v", err)
	}
	if res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "kiwis", Mode: memory.ModeFullText}); len(res) != 0 {
		t.Fatalf("a failed batch left searchable chunks: %+v", res)
	}
	if _, err := svc.WriteBatch(ctx, []memory.WriteRequest{{Scope: scopeA, Text: " "}}); !errors.Is(err, memory.ErrInvalid) {
		t.Fatalf("batch with an empty text: %v", err)
	}
}

func testWriteGetDelete(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc := newService(t, st, memory.NewHashEmbedder(0))
	m := write(t, svc, memory.WriteRequest{Scope: scopeA, Type: memory.TypeArchival, AgentID: "main", Text: "The deploy key lives in vault path secret/deploy.",
		Metadata: map[string]string{"source": "wiki"}, Importance: 0.5})
	got, err := svc.Get(ctx, scopeA, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != m.Text || got.Type != memory.TypeArchival || got.AgentID != "main" || got.Metadata["source"] != "wiki" ||
		got.Importance != 0.5 || got.Chunks != 1 || !got.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("get = %+v, wrote %+v", got, m)
	}
	res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "where is the deploy key"})
	if len(res) != 1 || res[0].ID != m.ID || len(res[0].FoundBy) != 2 {
		t.Fatalf("search = %+v", res)
	}
	if _, err := svc.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: "  "}); !errors.Is(err, memory.ErrInvalid) {
		t.Fatalf("empty write: %v", err)
	}
	if _, err := svc.Write(ctx, memory.WriteRequest{Scope: scopeA, Text: "x", Type: "core"}); !errors.Is(err, memory.ErrInvalid) {
		t.Fatalf("bad type: %v", err)
	}
	if err := svc.Delete(ctx, scopeA, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, scopeA, m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := svc.Delete(ctx, scopeA, m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "deploy key vault"}); len(res) != 0 {
		t.Fatalf("search after delete = %+v", res)
	}
	// A long text becomes several chunks; the snippet is shorter than the text.
	long := strings.Repeat("Paragraph about gardening and tomatoes in the spring. ", 60) + "\n\nThe secret word is aubergine."
	lm := write(t, svc, memory.WriteRequest{Scope: scopeA, Text: long})
	if lm.Chunks < 2 {
		t.Fatalf("long memory has %d chunks", lm.Chunks)
	}
	res = search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "aubergine"})
	if len(res) != 1 || !strings.Contains(res[0].Snippet, "aubergine") || len([]rune(res[0].Snippet)) > 260 {
		t.Fatalf("long search = %+v", res)
	}
}

func testIsolation(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc := newService(t, st, memory.NewHashEmbedder(0))
	a := write(t, svc, memory.WriteRequest{Scope: scopeA, Text: "Project Falcon launches on Tuesday."})
	b := write(t, svc, memory.WriteRequest{Scope: scopeB, Text: "Project Falcon launches on Friday."})
	p := write(t, svc, memory.WriteRequest{Scope: scopeP, Text: "Project Falcon launches on Sunday."})
	for _, c := range []struct {
		scope store.Scope
		want  string
	}{{scopeA, a.ID}, {scopeB, b.ID}, {scopeP, p.ID}} {
		for _, mode := range []string{memory.ModeHybrid, memory.ModeVector, memory.ModeFullText} {
			res := search(t, svc, memory.SearchRequest{Scope: c.scope, Query: "when does project falcon launch", Mode: mode, TopK: 10})
			if !slices.Equal(ids(res), []string{c.want}) {
				t.Fatalf("scope %+v mode %s: %v, want only %s", c.scope, mode, ids(res), c.want)
			}
		}
	}
	if _, err := svc.Get(ctx, scopeB, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get from another scope: %v", err)
	}
	if err := svc.Delete(ctx, scopeB, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete from another scope: %v", err)
	}
	if _, err := svc.Get(ctx, scopeA, a.ID); err != nil {
		t.Fatalf("memory gone after a foreign delete: %v", err)
	}
}

func testFilters(t *testing.T, st memory.Store) {
	svc := newService(t, st, memory.NewHashEmbedder(0))
	old := time.Now().Add(-48 * time.Hour)
	e := write(t, svc, memory.WriteRequest{Scope: scopeA, Type: memory.TypeEpisodic, AgentID: "alice", Text: "Alice fixed the billing bug.", CreatedAt: old})
	ar := write(t, svc, memory.WriteRequest{Scope: scopeA, Type: memory.TypeArchival, AgentID: "bob", GroupID: "g1", Text: "The billing bug runbook.",
		Metadata: map[string]string{"source": "runbook", "lang": "en"}, Importance: 1})
	q := "billing bug"
	check := func(name string, f memory.Filter, want ...string) {
		t.Helper()
		got := ids(search(t, svc, memory.SearchRequest{Scope: scopeA, Query: q, Filter: f, TopK: 10}))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
	}
	check("none", memory.Filter{}, e.ID, ar.ID)
	check("type", memory.Filter{Types: []string{memory.TypeEpisodic}}, e.ID)
	check("agent", memory.Filter{AgentID: "bob"}, ar.ID)
	check("group", memory.Filter{GroupID: "g1"}, ar.ID)
	check("metadata", memory.Filter{Metadata: map[string]string{"source": "runbook"}}, ar.ID)
	check("metadata miss", memory.Filter{Metadata: map[string]string{"source": "wiki"}})
	check("after", memory.Filter{After: time.Now().Add(-time.Hour)}, ar.ID)
	check("before", memory.Filter{Before: time.Now().Add(-time.Hour)}, e.ID)
	// Importance and recency weighting put the newer, important memory first.
	res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: q, ImportanceWeight: 1, RecencyHalfLife: time.Hour})
	if len(res) != 2 || res[0].ID != ar.ID {
		t.Fatalf("weighted = %+v", res)
	}
}

func testChinese(t *testing.T, st memory.Store) {
	svc := newService(t, st, memory.NewHashEmbedder(0))
	docs := []string{
		"北京今天的天气晴朗，最高气温二十五度。",
		"上海地铁十四号线将于年底开通运营。",
		"我们团队决定下周三发布新版本的移动应用。",
		"Alice 喜欢喝绿茶，不喜欢咖啡。",
	}
	var ms []memory.Memory
	for _, d := range docs {
		ms = append(ms, write(t, svc, memory.WriteRequest{Scope: scopeA, Text: d}))
	}
	for _, c := range []struct {
		q    string
		want int
	}{{"北京天气怎么样", 0}, {"地铁什么时候开通", 1}, {"新版本发布时间", 2}, {"Alice 喝什么茶", 3}} {
		for _, mode := range []string{memory.ModeHybrid, memory.ModeVector, memory.ModeFullText} {
			res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: c.q, Mode: mode})
			if len(res) == 0 || res[0].ID != ms[c.want].ID {
				t.Fatalf("%s %q: %+v, want %s", mode, c.q, res, ms[c.want].ID)
			}
		}
	}
}

func testDedupe(t *testing.T, st memory.Store) {
	svc := newService(t, st, memory.NewHashEmbedder(0))
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "Note %d: the espresso machine needs descaling every month.\n\n", i)
	}
	m := write(t, svc, memory.WriteRequest{Scope: scopeA, Text: b.String()})
	other := write(t, svc, memory.WriteRequest{Scope: scopeA, Text: "Descaling the kettle is quarterly."})
	res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "espresso machine descaling", TopK: 10})
	if m.Chunks < 2 || len(res) != 2 || res[0].ID != m.ID || res[1].ID != other.ID {
		t.Fatalf("chunks %d, results %+v", m.Chunks, res)
	}
}

// otherEmbedder is a second model: same features, another name and dimension.
type otherEmbedder struct{ *memory.HashEmbedder }

func (o otherEmbedder) Model() string { return "other-" + o.HashEmbedder.Model() }

func testModels(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc1 := newService(t, st, memory.NewHashEmbedder(0))
	m := write(t, svc1, memory.WriteRequest{Scope: scopeA, Text: "Quarterly revenue grew eleven percent."})
	svc2 := newService(t, st, otherEmbedder{memory.NewHashEmbedder(128)})
	if res := search(t, svc2, memory.SearchRequest{Scope: scopeA, Query: "revenue growth", Mode: memory.ModeVector}); len(res) != 0 {
		t.Fatalf("vectors of another model were compared: %+v", res)
	}
	res, err := svc2.ReEmbed(ctx)
	if err != nil || res.Embedded != 1 || res.Rejected != 0 {
		t.Fatalf("re-embed = %+v, %v", res, err)
	}
	if res := search(t, svc2, memory.SearchRequest{Scope: scopeA, Query: "revenue growth", Mode: memory.ModeVector}); len(res) != 1 || res[0].ID != m.ID {
		t.Fatalf("after re-embed: %+v", res)
	}
	if res := search(t, svc1, memory.SearchRequest{Scope: scopeA, Query: "revenue growth", Mode: memory.ModeVector}); len(res) != 1 {
		t.Fatalf("old model after re-embed: %+v", res)
	}
	if res, err := svc2.ReEmbed(ctx); err != nil || res.Embedded != 0 {
		t.Fatalf("second re-embed = %+v, %v", res, err)
	}
}

func testCore(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc, err := memory.New(memory.Config{Store: st, Embedder: memory.NewHashEmbedder(0), CoreBlockLimit: 40})
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := svc.CoreBlocks(ctx, scopeA, "main")
	if err != nil || len(blocks) != len(memory.DefaultCoreLabels) {
		t.Fatalf("defaults = %+v, %v", blocks, err)
	}
	if _, err := svc.AppendCore(ctx, scopeA, "main", "", "human", "Name: Ada."); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AppendCore(ctx, scopeA, "main", "", "human", "Likes tea."); err != nil {
		t.Fatal(err)
	}
	b, err := svc.ReplaceCore(ctx, scopeA, "main", "", "human", "tea", "green tea")
	if err != nil || b.Value != "Name: Ada.\nLikes green tea." {
		t.Fatalf("replace = %+v, %v", b, err)
	}
	if _, err := svc.ReplaceCore(ctx, scopeA, "main", "", "human", "coffee", "x"); !errors.Is(err, memory.ErrInvalid) {
		t.Fatalf("replace missing: %v", err)
	}
	if _, err := svc.AppendCore(ctx, scopeA, "main", "", "human", strings.Repeat("x", 40)); !errors.Is(err, memory.ErrInvalid) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := svc.SetCoreBlock(ctx, scopeA, "main", "Bad Label", "x"); !errors.Is(err, memory.ErrInvalid) {
		t.Fatalf("bad label: %v", err)
	}
	other, err := svc.CoreBlocks(ctx, scopeB, "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, ob := range other {
		if ob.Value != "" {
			t.Fatalf("another scope sees %+v", ob)
		}
	}
	blocks, _ = svc.CoreBlocks(ctx, scopeA, "main")
	if r := memory.RenderCore(blocks); !strings.Contains(r, "Likes green tea.") || !strings.Contains(r, "<persona") {
		t.Fatalf("render = %s", r)
	}
	if err := st.DeleteCoreBlock(ctx, scopeA, "main", "human"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteCoreBlock(ctx, scopeA, "main", "human"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

// A core edit with a key (a tool call's) run again, as after a crash
// between the edit and storing the call's result, leaves the block as it is
// and answers it; the key is per agent and scope, and edits without a key
// apply every time.
func testCoreOnce(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc := newService(t, st, memory.NewHashEmbedder(0))
	for range 2 {
		b, err := svc.AppendCore(ctx, scopeA, "main", "k1", "notes", "Ada likes tea.")
		if err != nil || b.Value != "Ada likes tea." {
			t.Fatalf("append with a key = %+v, %v", b, err)
		}
	}
	for range 2 {
		b, err := svc.ReplaceCore(ctx, scopeA, "main", "k2", "notes", "tea", "green tea")
		if err != nil || b.Value != "Ada likes green tea." {
			t.Fatalf("replace with a key = %+v, %v", b, err)
		}
	}
	// The same key for another agent or scope is another edit.
	if b, err := svc.AppendCore(ctx, scopeA, "other", "k1", "notes", "Bo."); err != nil || b.Value != "Bo." {
		t.Fatalf("same key, other agent = %+v, %v", b, err)
	}
	if b, err := svc.AppendCore(ctx, scopeB, "main", "k1", "notes", "Cy."); err != nil || b.Value != "Cy." {
		t.Fatalf("same key, other scope = %+v, %v", b, err)
	}
	// A refused edit does not use up its key.
	if _, err := svc.ReplaceCore(ctx, scopeA, "main", "k3", "notes", "coffee", "x"); !errors.Is(err, memory.ErrNoMatch) {
		t.Fatalf("replace missing with a key: %v", err)
	}
	if _, err := svc.AppendCore(ctx, scopeA, "main", "k3", "notes", "Likes coffee."); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := svc.AppendCore(ctx, scopeA, "main", "", "notes", "Again."); err != nil {
			t.Fatal(err)
		}
	}
	blocks, err := svc.CoreBlocks(ctx, scopeA, "main")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if want := "Ada likes green tea.\nLikes coffee.\nAgain.\nAgain."; b.Label == "notes" && b.Value != want {
			t.Fatalf("notes = %q, want %q", b.Value, want)
		}
	}
}

// rejectingEmbeddings is an OpenAI-compatible embeddings server that answers
// 400, as real servers do for input they refuse, to any batch holding
// "POISON", and 401 when told to.
func rejectingEmbeddings(t *testing.T, unauthorized *atomic.Bool, requests *atomic.Int64) *httptest.Server {
	local := memory.NewHashEmbedder(32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		var req struct {
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if unauthorized.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided"}}`))
			return
		}
		for _, in := range req.Input {
			if strings.Contains(in, "POISON") {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"message":"This input was rejected by the content filter."}}`))
				return
			}
		}
		vecs, _ := local.Embed(r.Context(), req.Input)
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		out := struct {
			Data []item `json:"data"`
		}{}
		for i, v := range vecs {
			out.Data = append(out.Data, item{Index: i, Embedding: v})
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// testReEmbedRejected: chunks the embeddings server refuses are stepped over
// (the rest get vectors) instead of stalling re-embedding for ever; a refusal
// of the request itself (a bad key) stops the pass with an error.
func testReEmbedRejected(t *testing.T, st memory.Store) {
	ctx := context.Background()
	svc1 := newService(t, st, memory.NewHashEmbedder(0))
	const total = 300 // more than one re-embed batch
	poisoned := map[int]bool{5: true, 270: true}
	for i := range total {
		text := fmt.Sprintf("Ticket %d: the build agent in rack %d ran out of disk.", i, i)
		if poisoned[i] {
			text = fmt.Sprintf("Ticket %d: POISON pill in rack %d.", i, i)
		}
		write(t, svc1, memory.WriteRequest{Scope: scopeA, Text: text})
	}
	var unauthorized atomic.Bool
	var requests atomic.Int64
	srv := rejectingEmbeddings(t, &unauthorized, &requests)
	remote := &memory.OpenAIEmbedder{BaseURL: srv.URL + "/v1", ModelName: "rejecting", Dimension: 32, BatchSize: 512, MaxRetries: -1}
	svc2 := newService(t, st, remote)

	unauthorized.Store(true)
	res, err := svc2.ReEmbed(ctx)
	if err == nil || res.Embedded != 0 || res.Rejected != 0 {
		t.Fatalf("re-embed with a refused key = %+v, %v; want an error and nothing done", res, err)
	}
	unauthorized.Store(false)

	requests.Store(0)
	res, err = svc2.ReEmbed(ctx)
	if err != nil || res.Embedded != total-len(poisoned) || res.Rejected != len(poisoned) {
		t.Fatalf("re-embed = %+v, %v; want %d embedded, %d rejected", res, err, total-len(poisoned), len(poisoned))
	}
	if res.FirstReject == nil || !strings.Contains(res.FirstReject.Error(), "content filter") {
		t.Fatalf("first rejection %v should carry the server's message", res.FirstReject)
	}
	// Halving finds each bad chunk in about log2(batch) requests.
	if n := requests.Load(); n > 40 {
		t.Fatalf("%d embeddings requests for %d chunks with 2 rejected", n, total)
	}
	hits := search(t, svc2, memory.SearchRequest{Scope: scopeA, Query: "build agent ran out of disk rack 17", Mode: memory.ModeVector, TopK: 5})
	if len(hits) == 0 {
		t.Fatalf("no vector hits after re-embedding")
	}
	hits = search(t, svc2, memory.SearchRequest{Scope: scopeA, Query: "POISON pill", Mode: memory.ModeFullText})
	if len(hits) != len(poisoned) {
		t.Fatalf("rejected chunks must stay findable by full text: %+v", hits)
	}
	res, err = svc2.ReEmbed(ctx)
	if err != nil || res.Embedded != 0 || res.Rejected != len(poisoned) {
		t.Fatalf("second pass = %+v, %v; want only the rejected chunks tried again", res, err)
	}
}

// testVectorNeedsSimilarity: the vector leg returns only memories whose
// vectors point at least a little towards the query; a note sharing nothing
// with it is not "the best of the rest".
func testVectorNeedsSimilarity(t *testing.T, st memory.Store) {
	ctx := context.Background()
	emb := memory.NewHashEmbedder(0)
	svc := newService(t, st, emb)
	texts := []string{
		"The boiler in the basement leaks water near the pressure valve.",
		"Plant tomatoes in the garden after the last frost of spring.",
		"Quarterly revenue grew eleven percent.",
		"猫在窗台上晒太阳。",
	}
	ids := map[string]string{}
	for _, text := range texts {
		ids[write(t, svc, memory.WriteRequest{Scope: scopeA, Text: text}).ID] = text
	}
	const query = "leaking boilers"
	vecs, err := emb.Embed(ctx, append([]string{query}, texts...))
	if err != nil {
		t.Fatal(err)
	}
	similar := map[string]bool{}
	for i, text := range texts {
		if cosine(vecs[0], vecs[i+1]) > 0 {
			similar[text] = true
		}
	}
	if !similar[texts[0]] || len(similar) == len(texts) {
		t.Fatalf("the test needs a similar and an unrelated memory: %v", similar)
	}
	res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: query, Mode: memory.ModeVector, TopK: 10})
	got := map[string]bool{}
	for _, r := range res {
		got[ids[r.ID]] = true
		if r.Score <= 0 {
			t.Errorf("result %q with score %v", ids[r.ID], r.Score)
		}
	}
	if len(got) != len(similar) || res[0].ID == "" || ids[res[0].ID] != texts[0] {
		t.Fatalf("vector search %q found %v, want exactly the similar %v", query, got, similar)
	}
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// testLargeDimension: a model with 3072 dimensions (text-embedding-3-large)
// is stored and searched like any other; PostgreSQL indexes it as halfvec.
func testLargeDimension(t *testing.T, st memory.Store) {
	svc := newService(t, st, memory.NewHashEmbedder(3072))
	boiler := write(t, svc, memory.WriteRequest{Scope: scopeA, Text: "The boiler in the basement leaks water near the pressure valve."})
	write(t, svc, memory.WriteRequest{Scope: scopeA, Text: "Plant tomatoes in the garden after the last frost of spring."})
	write(t, svc, memory.WriteRequest{Scope: scopeB, Text: "The boiler at the other office leaks too."})
	res := search(t, svc, memory.SearchRequest{Scope: scopeA, Query: "leaking boiler valve", Mode: memory.ModeVector})
	if len(res) == 0 || res[0].ID != boiler.ID || res[0].Score <= 0.2 {
		t.Fatalf("3072-dimension vector search: %+v, want %s first", res, boiler.ID)
	}
	for _, r := range res {
		if r.ID != boiler.ID && r.Score >= res[0].Score {
			t.Fatalf("an unrelated memory ranks with the boiler: %+v", res)
		}
	}
}
