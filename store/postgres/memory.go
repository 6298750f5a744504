package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openintern/openintern/memory/vecindex"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgvector/pgvector-go"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// MemoryStore is memory.Store on PostgreSQL: an impact-ordered inverted
// index (memory_postings) of the Go tokens, ranked by BM25 with per-scope
// idf, and vector search from an exact in-memory index of each searched
// scope (memory/vecindex) kept in step with the table, with pgvector's HNSW
// index (one partial index per embedding model) for scopes too big for it.
type MemoryStore struct {
	s  *Store
	vi *vecindex.Index

	efSearch atomic.Int64 // hnsw.ef_search of HNSW scans

	mu       sync.Mutex
	indexed  map[string]bool            // model/dim pairs whose HNSW index is known to exist
	building map[string]bool            // model/dim pairs whose HNSW index is being built
	synced   map[vecindex.Key]time.Time // when a loaded scope last read rows written elsewhere
	loading  map[vecindex.Key]chan struct{}
}

var (
	_ memory.Store         = (*MemoryStore)(nil)
	_ memory.LazySearcher  = (*MemoryStore)(nil)
	_ memory.FusedSearcher = (*MemoryStore)(nil)
)

// Memory returns a memory store sharing s's pool. Keep one per daemon: it
// remembers which vector indexes exist.
func (s *Store) Memory() *MemoryStore {
	ms := &MemoryStore{s: s, vi: vecindex.New(vecindex.DefaultBudget), indexed: map[string]bool{}, building: map[string]bool{}, synced: map[vecindex.Key]time.Time{},
		loading: map[vecindex.Key]chan struct{}{}}
	ms.efSearch.Store(hnswEfSearch)
	return ms
}

// SetHNSWEfSearch changes ef_search of HNSW scans (at least 10): recall
// against latency, for the scopes the in-memory index does not hold.
func (ms *MemoryStore) SetHNSWEfSearch(n int) { ms.efSearch.Store(int64(max(n, 10))) }

// SetVectorIndexBytes changes the in-memory vector index's budget (0 turns
// it off: every vector search uses HNSW).
func (ms *MemoryStore) SetVectorIndexBytes(n int64) { ms.vi.SetBudget(n) }

// hnswEfSearch is ef_search of the HNSW scan (candidates per search, higher
// is more exact and slower). Measured recall@10 against exact search at 10k
// chunks of the local embedder: 0.85 at 100, 0.94 at 200, 0.96 at 400; the
// vector leg stays a small part of a hybrid search's time.
const hnswEfSearch = 400

// modelRE: model names go into index predicates as literals (a partial index
// is only used when the query repeats its predicate verbatim), so they are
// restricted to characters that need no quoting.
var modelRE = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,100}$`)

func checkModel(model string, dim int) error {
	if !modelRE.MatchString(model) {
		return fmt.Errorf("embedding model name %q must be 1-100 of A-Z a-z 0-9 . _ : / -", model)
	}
	if dim < 1 || dim > maxHalfvecDim {
		return fmt.Errorf("embedding dimension %d is not in [1, %d]", dim, maxHalfvecDim)
	}
	return nil
}

// pgvector's HNSW index takes vector up to 2000 dimensions and halfvec up to
// 4000: a larger model (text-embedding-3-large has 3072) is indexed as
// halfvec, whose 16-bit floats cost nothing measurable in ranking.
const (
	maxVectorIndexDim = 2000
	maxHalfvecDim     = 4000
)

// indexedType is the type a model's vectors are cast to for its HNSW index
// and for the searches that use it; both must say the same.
func indexedType(dim int) (typ, ops string) {
	if dim > maxVectorIndexDim {
		return fmt.Sprintf("halfvec(%d)", dim), "halfvec_cosine_ops"
	}
	return fmt.Sprintf("vector(%d)", dim), "vector_cosine_ops"
}

// hnswName is the name of the model's HNSW index (a partial index per model).
func hnswName(model string, dim int) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(model + "/" + strconv.Itoa(dim)))
	return fmt.Sprintf("memory_vectors_hnsw_%x", h.Sum64())
}

func hnswSQL(model string, dim int, concurrently bool) string {
	typ, ops := indexedType(dim)
	how := "INDEX"
	if concurrently {
		how = "INDEX CONCURRENTLY"
	}
	return fmt.Sprintf(`CREATE %s IF NOT EXISTS %s ON memory_vectors USING hnsw ((embedding::%s) %s) WHERE model = '%s'`,
		how, hnswName(model, dim), typ, ops, model)
}

// ensureIndex creates the model's HNSW index once per process.
func (ms *MemoryStore) ensureIndex(ctx context.Context, model string, dim int) error {
	key := model + "/" + strconv.Itoa(dim)
	ms.mu.Lock()
	done := ms.indexed[key]
	ms.mu.Unlock()
	if done {
		return nil
	}
	if _, err := ms.s.pool.Exec(ctx, hnswSQL(model, dim, false)); err != nil {
		var pgErr *pgconn.PgError
		// Another daemon created it at the same moment.
		if !errors.As(err, &pgErr) || (pgErr.Code != "42P07" && pgErr.Code != "23505") {
			return ms.s.fail(ctx, "create vector index", err)
		}
	}
	ms.mu.Lock()
	ms.indexed[key] = true
	ms.mu.Unlock()
	return nil
}

// EnsureVectorIndex builds the model's HNSW index now (it is otherwise
// built when a search first needs it) and waits for it.
func (ms *MemoryStore) EnsureVectorIndex(ctx context.Context, model string, dim int) error {
	if err := checkModel(model, dim); err != nil {
		return fmt.Errorf("postgres: vector index: %w", err)
	}
	return ms.ensureIndex(ctx, model, dim)
}

// writeIndex prepares the model's vector index for a write. With the
// in-memory index on, the HNSW index is not created here: maintaining it
// was most of PostgreSQL's work per remembered run (3 ms of CPU an insert of
// a 1024-dimension vector at a few hundred rows, 11 ms under load) and
// searches of scopes that fit in memory never read it. It is built, once,
// when a search first needs it (hnswReady).
func (ms *MemoryStore) writeIndex(ctx context.Context, model string, dim int) error {
	if ms.vi.Budget() > 0 {
		return nil
	}
	return ms.ensureIndex(ctx, model, dim)
}

// hnswReady reports whether the model's HNSW index exists and is valid.
// When it does not and build is set, it starts building it in the
// background (CREATE INDEX CONCURRENTLY: writes go on meanwhile); searches
// are exact until it is ready.
func (ms *MemoryStore) hnswReady(ctx context.Context, model string, dim int, build bool) (bool, error) {
	key := model + "/" + strconv.Itoa(dim)
	ms.mu.Lock()
	done, building := ms.indexed[key], ms.building[key]
	ms.mu.Unlock()
	if done {
		return true, nil
	}
	var valid bool
	err := ms.s.pool.QueryRow(ctx, `SELECT coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)), false)`,
		hnswName(model, dim)).Scan(&valid)
	if err != nil {
		return false, err
	}
	if valid {
		ms.mu.Lock()
		ms.indexed[key] = true
		ms.mu.Unlock()
		return true, nil
	}
	if !build || building {
		return false, nil
	}
	ms.mu.Lock()
	if ms.building[key] {
		ms.mu.Unlock()
		return false, nil
	}
	ms.building[key] = true
	ms.mu.Unlock()
	started := ms.s.goBackground(func(bg context.Context) {
		defer func() {
			ms.mu.Lock()
			delete(ms.building, key)
			ms.mu.Unlock()
		}()
		start := time.Now()
		// Not dropped on failure: the index may be another daemon's build
		// in progress. A failed build leaves an invalid index that IF NOT
		// EXISTS keeps; searches stay exact until an operator drops it.
		if _, err := ms.s.pool.Exec(bg, hnswSQL(model, dim, true)); err != nil {
			if bg.Err() == nil {
				ms.s.logger.Warn("postgres: building a vector index failed; vector search stays exact", "model", model, "err", err)
			}
			return
		}
		var valid bool
		if err := ms.s.pool.QueryRow(bg, `SELECT coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)), false)`,
			hnswName(model, dim)).Scan(&valid); err == nil && !valid {
			ms.s.logger.Warn("postgres: a vector index is invalid (a failed build); vector search stays exact until it is dropped",
				"index", hnswName(model, dim))
			return
		}
		ms.s.logger.Info("postgres: built a vector index", "model", model, "duration", time.Since(start).Round(time.Millisecond))
	})
	if !started {
		ms.mu.Lock()
		delete(ms.building, key)
		ms.mu.Unlock()
	}
	return false, nil
}

// tsvectorLiteral is the tsvector input of tokens with their positions, so
// that ts_rank sees term frequencies and no text search parser runs.
func tsvectorLiteral(tokens []string) string {
	pos := map[string][]int{}
	var order []string
	for i, t := range tokens {
		p := min(i+1, 16383) // tsvector's largest position
		if _, ok := pos[t]; !ok {
			order = append(order, t)
		}
		if len(pos[t]) < 255 { // positions per lexeme are capped at 256
			pos[t] = append(pos[t], p)
		}
	}
	var b strings.Builder
	for i, t := range order {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteLexeme(t))
		b.WriteByte(':')
		for j, p := range pos[t] {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(p))
		}
	}
	return b.String()
}

func quoteLexeme(t string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(t, `\`, `\\`), "'", "''") + "'"
}

// Analyze refreshes the planner's statistics of the memory tables and marks
// the postings' pages all-visible (index-only scans then skip the heap).
// Autovacuum does both on a live system; a bulk load (a benchmark, an
// import) should call it before measuring, or the planner picks plans for
// empty tables.
func (ms *MemoryStore) Analyze(ctx context.Context) error {
	if _, err := ms.s.pool.Exec(ctx, `VACUUM (ANALYZE) memory_postings`); err != nil {
		return ms.s.fail(ctx, "analyze", err)
	}
	_, err := ms.s.pool.Exec(ctx, `ANALYZE memories, memory_chunks, memory_vectors, memory_terms`)
	return ms.s.fail(ctx, "analyze", err)
}

// InsertMemory stores the memory, chunks, vectors and term counts in one
// transaction; ErrConflict, with nothing stored, when the id is taken.
func (ms *MemoryStore) InsertMemory(ctx context.Context, m memory.Memory, chunks []memory.Chunk) error {
	return ms.InsertMemories(ctx, []memory.NewMemory{{Memory: m, Chunks: chunks}})
}

// InsertMemories stores the memories in one transaction sent as one batch:
// each chunk and its vector are one statement, and the term counts of each
// scope are one upsert, taken in a fixed order so writers never deadlock.
func (ms *MemoryStore) InsertMemories(ctx context.Context, batch []memory.NewMemory) error {
	if len(batch) == 0 {
		return nil
	}
	for _, nm := range batch {
		if err := store.CheckScope(nm.Memory.Scope); err != nil {
			return fmt.Errorf("postgres: insert memory: %w", err)
		}
		for _, c := range nm.Chunks {
			if c.Vector != nil {
				if err := checkModel(c.Model, len(c.Vector)); err != nil {
					return fmt.Errorf("postgres: insert memory: %w", err)
				}
				if err := ms.writeIndex(ctx, c.Model, len(c.Vector)); err != nil {
					return err
				}
			}
		}
	}
	dfs := memory.TermCounts(batch)
	scopes := make([]store.Scope, 0, len(dfs))
	for sc := range dfs {
		scopes = append(scopes, sc)
	}
	sort.Slice(scopes, func(i, j int) bool {
		a, b := scopes[i], scopes[j]
		if a.OrgID != b.OrgID {
			return a.OrgID < b.OrgID
		}
		if a.UserID != b.UserID {
			return a.UserID < b.UserID
		}
		return a.ProjectID < b.ProjectID
	})
	// The chunks' ids come back so that their vectors go into the loaded
	// scopes' in-memory index at once, without reading them back.
	nChunks := 0
	for _, nm := range batch {
		nChunks += len(nm.Chunks)
	}
	chunkIDs := make([]int64, nChunks)
	next := 0
	b := &pgx.Batch{}
	for _, nm := range batch {
		m, sc := nm.Memory, nm.Memory.Scope
		b.Queue(`INSERT INTO memories (org_id, user_id, project_id, memory_id, type, agent_id, group_id, text,
			metadata, importance, chunks, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			sc.OrgID, sc.UserID, sc.ProjectID, m.ID, m.Type, m.AgentID, m.GroupID, m.Text,
			string(memory.MetadataJSON(m.Metadata)), m.Importance, len(nm.Chunks), m.CreatedAt)
		for _, c := range nm.Chunks {
			// The chunk, its postings (weights from the stored tsvector,
			// computed by the same SQL function a delete uses) and its
			// vector are one statement.
			const insChunk = `WITH c AS (INSERT INTO memory_chunks (org_id, user_id, project_id, memory_id, seq, text, tsv)
					VALUES ($1, $2, $3, $4, $5, $6, $7::tsvector) RETURNING id, tsv),
				p AS (INSERT INTO memory_postings (org_id, user_id, project_id, term, impact, chunk_id)
					SELECT $1, $2, $3, u.lexeme, memory_impact(cardinality(u.positions), length(c.tsv)), c.id FROM c, unnest(c.tsv) AS u)`
			id := &chunkIDs[next]
			next++
			scan := func(row pgx.Row) error { return row.Scan(id) }
			if c.Vector == nil {
				b.Queue(insChunk+` SELECT id FROM c`, sc.OrgID, sc.UserID, sc.ProjectID, m.ID, c.Seq, c.Text, tsvectorLiteral(c.Tokens)).QueryRow(scan)
				continue
			}
			b.Queue(insChunk+`
				INSERT INTO memory_vectors (chunk_id, org_id, user_id, project_id, model, dim, embedding)
				SELECT c.id, $1, $2, $3, $8::text, $9::int, $10::vector FROM c RETURNING chunk_id`,
				sc.OrgID, sc.UserID, sc.ProjectID, m.ID, c.Seq, c.Text, tsvectorLiteral(c.Tokens),
				c.Model, len(c.Vector), pgvector.NewVector(c.Vector)).QueryRow(scan)
		}
	}
	for _, sc := range scopes {
		df := dfs[sc]
		terms := make([]string, 0, len(df))
		for t := range df {
			terms = append(terms, t)
		}
		sort.Strings(terms) // one lock order for every writer: no deadlocks between them
		counts := make([]int64, len(terms))
		for i, t := range terms {
			counts[i] = df[t]
		}
		b.Queue(`INSERT INTO memory_terms (org_id, user_id, project_id, term, df)
			SELECT $1, $2, $3, t, d FROM unnest($4::text[], $5::bigint[]) AS x(t, d)
			ON CONFLICT (org_id, user_id, project_id, term) DO UPDATE SET df = memory_terms.df + EXCLUDED.df`,
			sc.OrgID, sc.UserID, sc.ProjectID, terms, counts)
	}
	// Usage last, after every memory_terms row (deletes take them in that
	// order too): the row lock serialises the scope's writers, and the
	// count it returns includes every write committed before this one.
	limit := ms.s.Quotas().MemoryBytesPerScope
	usage := memory.UsageOf(batch)
	for _, sc := range scopes {
		u := usage[sc]
		b.Queue(`INSERT INTO memory_usage (org_id, user_id, project_id, memories, text_bytes) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (org_id, user_id, project_id) DO UPDATE
			SET memories = memory_usage.memories + EXCLUDED.memories, text_bytes = memory_usage.text_bytes + EXCLUDED.text_bytes
			RETURNING text_bytes`,
			sc.OrgID, sc.UserID, sc.ProjectID, u.Memories, u.TextBytes).QueryRow(func(row pgx.Row) error {
			var total int64
			if err := row.Scan(&total); err != nil {
				return err
			}
			return store.CheckMemoryQuota(limit, total, u.TextBytes)
		})
	}
	err := ms.s.inTx(ctx, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return ms.s.fail(ctx, "insert memory", err)
	}
	next = 0
	for _, nm := range batch {
		ms.vi.InsertMemory(nm.Memory, nm.Chunks, chunkIDs[next:next+len(nm.Chunks)])
		next += len(nm.Chunks)
	}
	return nil
}

// memoryCols are the columns of memories m that scanMemory reads.
const memoryCols = `m.org_id, m.user_id, m.project_id, m.memory_id, m.type, m.agent_id, m.group_id, m.text,
	m.metadata, m.importance, m.chunks, m.created_at`

func scanMemory(row pgx.Row) (memory.Memory, error) {
	var m memory.Memory
	var md []byte
	err := row.Scan(&m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.ID, &m.Type, &m.AgentID, &m.GroupID,
		&m.Text, &md, &m.Importance, &m.Chunks, &m.CreatedAt)
	if err != nil {
		return memory.Memory{}, err
	}
	m.CreatedAt = utc(m.CreatedAt)
	if len(md) > 0 && string(md) != "{}" {
		if err := json.Unmarshal(md, &m.Metadata); err != nil {
			return memory.Memory{}, fmt.Errorf("metadata: %w", err)
		}
	}
	return m, nil
}

// GetMemory returns one memory of the scope.
func (ms *MemoryStore) GetMemory(ctx context.Context, scope store.Scope, id string) (memory.Memory, error) {
	m, err := scanMemory(ms.s.pool.QueryRow(ctx, `SELECT `+memoryCols+`
		FROM memories m WHERE m.org_id = $1 AND m.user_id = $2 AND m.project_id = $3 AND m.memory_id = $4`,
		scope.OrgID, scope.UserID, scope.ProjectID, id))
	if err != nil {
		return memory.Memory{}, ms.s.fail(ctx, "get memory", err)
	}
	return m, nil
}

// ListMemories returns a page of the scope's memories that f selects, newest
// first (ties by id), and how many match.
func (ms *MemoryStore) ListMemories(ctx context.Context, scope store.Scope, f memory.Filter, page store.Page) ([]memory.Memory, int, error) {
	limit, offset := store.PageBounds(page)
	cond, fargs := filterSQL(f, 4)
	where := `m.org_id = $1 AND m.user_id = $2 AND m.project_id = $3` + cond
	if f.GroupID != "" {
		// The literal lets the planner use the partial index of group
		// memories (a blackboard), even in a generic plan.
		where += ` AND m.group_id <> ''`
	}
	args := append([]any{scope.OrgID, scope.UserID, scope.ProjectID}, fargs...)
	n := len(args)
	out, total, err := listPage(ctx, ms.s, `SELECT count(*) FROM memories m WHERE `+where,
		fmt.Sprintf(`SELECT %s FROM memories m WHERE %s ORDER BY m.created_at DESC, m.memory_id LIMIT $%d OFFSET $%d`,
			memoryCols, where, n+1, n+2),
		args, append(append([]any{}, args...), limit, offset), scanMemory)
	if err != nil {
		return nil, 0, ms.s.fail(ctx, "list memories", err)
	}
	return out, total, nil
}

// DeleteMemory removes a memory, its chunks and vectors, and its term counts.
func (ms *MemoryStore) DeleteMemory(ctx context.Context, scope store.Scope, id string) error {
	args := []any{scope.OrgID, scope.UserID, scope.ProjectID, id}
	const chunkCond = `org_id = $1 AND user_id = $2 AND project_id = $3 AND memory_id = $4`
	var chunkIDs []int64
	err := ms.s.inTx(ctx, func(tx pgx.Tx) error {
		var textBytes int64
		if err := tx.QueryRow(ctx, `DELETE FROM memories WHERE `+chunkCond+` RETURNING octet_length(text)`, args...).Scan(&textBytes); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE memory_terms mt SET df = mt.df - x.c FROM (
				SELECT lex, count(*) AS c FROM memory_chunks, unnest(tsvector_to_array(tsv)) AS lex WHERE `+chunkCond+` GROUP BY lex
				UNION ALL SELECT '', count(*) FROM memory_chunks WHERE `+chunkCond+`
			) x WHERE mt.org_id = $1 AND mt.user_id = $2 AND mt.project_id = $3 AND mt.term = x.lex`, args...); err != nil {
			return err
		}
		// A posting's whole index key is recomputed from the chunk's terms,
		// so each is one index probe (the table has no index by chunk).
		if _, err := tx.Exec(ctx, `DELETE FROM memory_postings p USING (
				SELECT c.id, u.lexeme, memory_impact(cardinality(u.positions), length(c.tsv)) AS impact
				FROM memory_chunks c, unnest(c.tsv) AS u WHERE `+chunkCond+`
			) x WHERE p.org_id = $1 AND p.user_id = $2 AND p.project_id = $3 AND p.term = x.lexeme
				AND p.impact = x.impact AND p.chunk_id = x.id`, args...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM memory_vectors WHERE chunk_id IN (SELECT id FROM memory_chunks WHERE `+chunkCond+`)`, args...); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM memory_chunks WHERE `+chunkCond+` RETURNING id`, args...)
		if err != nil {
			return err
		}
		chunkIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return err
		}
		// After memory_terms, as inserts take them.
		_, err = tx.Exec(ctx, `UPDATE memory_usage SET memories = memories - 1, text_bytes = text_bytes - $4
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3`, scope.OrgID, scope.UserID, scope.ProjectID, textBytes)
		return err
	})
	if err != nil {
		return ms.s.fail(ctx, "delete memory", err)
	}
	ms.vi.Remove(scope, chunkIDs)
	return nil
}

// filterSQL is the condition on memories m that f asks for; its parameters
// are numbered from next.
func filterSQL(f memory.Filter, next int) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(next+len(args)-1)
	}
	if len(f.Types) > 0 {
		conds = append(conds, "m.type = ANY("+arg(f.Types)+"::text[])")
	}
	if f.AgentID != "" {
		conds = append(conds, "m.agent_id = "+arg(f.AgentID))
	}
	if f.GroupID != "" {
		conds = append(conds, "m.group_id = "+arg(f.GroupID))
	}
	if len(f.Metadata) > 0 {
		conds = append(conds, "m.metadata @> "+arg(string(memory.MetadataJSON(f.Metadata)))+"::jsonb")
	}
	if !f.After.IsZero() {
		conds = append(conds, "m.created_at >= "+arg(f.After))
	}
	if !f.Before.IsZero() {
		conds = append(conds, "m.created_at < "+arg(f.Before))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " AND " + strings.Join(conds, " AND "), args
}

// termDFQuery reads the document frequencies of the terms $4 in the scope
// $1..$3 (see textSearch).
const termDFQuery = `SELECT t.term, d.df FROM unnest($4::text[]) AS t(term)
		CROSS JOIN LATERAL (SELECT df FROM memory_terms WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND term = t.term LIMIT 1) d`

// rankedTextSearchQuery is memory.SelectRankTerms and memory.IDF in SQL, so
// that an unfiltered text search reads the terms' counts and their postings
// in one statement: of the tokens $4 present in the scope $1..$3, the rarest
// first (ties in the tokens' order), at most $5, without those in more than
// a share $6 of the chunks (the rarest is always kept), each with its BM25
// inverse document frequency. Term counts are read by key through LIMIT-1
// laterals (see termDFQuery).
const rankedTextSearchQuery = `n AS (SELECT COALESCE((SELECT df FROM memory_terms
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND term = '' LIMIT 1), 0)::float8 AS n),
		t AS (SELECT u.term, d.df, u.ord FROM unnest($4::text[]) WITH ORDINALITY AS u(term, ord)
			CROSS JOIN LATERAL (SELECT df FROM memory_terms
				WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND term = u.term LIMIT 1) d
			WHERE d.df > 0),
		k AS (SELECT t.term, ln(1 + (n.n - t.df + 0.5) / (t.df + 0.5)) AS idf
			FROM (SELECT term, df, row_number() OVER (ORDER BY df, ord) AS rn FROM t) t, n
			WHERE t.rn = 1 OR (t.rn <= $5 AND t.df <= $6 * n.n))`

// rankedPostings scores chunks by the best $7 postings of each term of k
// (rankedTextSearchQuery), best first, the best $8 of them; with one term
// in k, by its best $8 postings (memory.RankDepth).
const rankedPostings = `SELECT p.chunk_id, sum(k.idf * p.impact) AS s FROM k
		CROSS JOIN LATERAL (SELECT chunk_id, impact FROM memory_postings
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND term = k.term
			ORDER BY impact DESC, chunk_id DESC
			LIMIT CASE WHEN (SELECT count(*) FROM k) = 1 THEN least($7::int, $8::int) ELSE $7::int END) p
		GROUP BY p.chunk_id ORDER BY s DESC, p.chunk_id DESC LIMIT $8`

// fillHitsByIDQuery reads the texts, importance and metadata of the chunks
// $6 (ids; $4 their memory ids, $5 their seqs) in the scope $1..$3 (see
// FillHits). Chunks are read by id alone, the scope checked as in
// eventWhere: read by (memory_id, seq), a generic plan made on stale
// statistics walked the scope's chunks (see fusedSearchQuery).
const fillHitsByIDQuery = `SELECT c.memory_id, c.seq, c.text, m.importance, m.metadata
		FROM unnest($4::text[], $5::int[], $6::bigint[]) AS k(memory_id, seq, chunk_id)
		CROSS JOIN LATERAL (SELECT memory_id, seq, text FROM memory_chunks
			WHERE id = k.chunk_id AND (org_id, user_id, project_id) IS NOT DISTINCT FROM ($1::text, $2::text, $3::text)
			  AND memory_id = k.memory_id AND seq = k.seq LIMIT 1) c
		CROSS JOIN LATERAL (SELECT importance, metadata FROM memories
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND memory_id = k.memory_id LIMIT 1) m`

// fillHitsQuery is fillHitsByIDQuery for hits without their chunk ids
// ($4 memory ids, $5 seqs).
const fillHitsQuery = `SELECT c.memory_id, c.seq, c.text, m.importance, m.metadata
		FROM unnest($4::text[], $5::int[]) AS k(memory_id, seq)
		CROSS JOIN LATERAL (SELECT memory_id, seq, text FROM memory_chunks
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND memory_id = k.memory_id AND seq = k.seq LIMIT 1) c
		CROSS JOIN LATERAL (SELECT importance, metadata FROM memories
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND memory_id = k.memory_id LIMIT 1) m`

// fusedSearchQuery is a hybrid search's full-text leg, its fusion with the
// vector leg's hits and the read of the kept hits, in one statement (see
// memory.FusedSearcher): the ranked text search ($1..$7, limit $8), then the
// vector hits ($9 memory ids, $10 seqs, $11 scores, $17 chunk ids, best
// first), fused as
// memory.Service.Search does in Go with RRF when $13 (constant $14) or by
// score otherwise, weights $15 (text) and $16 (vector), cut to $12.
//
// Each leg ranks memories by their first chunk in it (ord is the leg's
// order: for text, the order its rows come in Go); the vector leg skips
// scores <= 0 first, and normalizes by its first score as given. A memory's
// chunk is the one of the leg where it ranks better, the text leg's on a tie.
// The fused score is the text part plus the vector part, in Go's order of
// operations, so that the floats are equal, not just close; ties are broken
// by first sight in Go's fusion: text memories by text rank, then the others
// by vector rank. The kept hits' chunks are read by their ids alone (by
// (memory_id, seq), a generic plan made while the scope's statistics were
// stale walked the scope's chunks through memory_chunks_scope_id_idx, a cost
// that grew with every memory; the scope is checked as in eventWhere, which
// no index serves), their memories by key, after the cut; a chunk deleted
// since the vector leg drops out there, as FillHits drops it.
const fusedSearchQuery = `WITH ` + rankedTextSearchQuery + `,
		r AS (` + rankedPostings + `),
		tc AS (SELECT c.memory_id, c.seq, r.chunk_id, r.s,
				row_number() OVER w AS ord, first_value(r.s) OVER w AS top
			FROM r CROSS JOIN LATERAL (SELECT memory_id, seq FROM memory_chunks WHERE id = r.chunk_id LIMIT 1) c
			WINDOW w AS (ORDER BY r.s DESC, r.chunk_id DESC)),
		tr AS (SELECT memory_id, seq, chunk_id, s, top, row_number() OVER (ORDER BY ord) AS rank
			FROM (SELECT DISTINCT ON (memory_id) memory_id, seq, chunk_id, s, top, ord FROM tc ORDER BY memory_id, ord) x),
		vr AS (SELECT memory_id, seq, chunk_id, score, row_number() OVER (ORDER BY ord) AS rank
			FROM (SELECT DISTINCT ON (memory_id) memory_id, seq, chunk_id, score, ord
				FROM unnest($9::text[], $10::int[], $11::float8[], $17::bigint[]) WITH ORDINALITY AS v(memory_id, seq, score, chunk_id, ord)
				WHERE score > 0 ORDER BY memory_id, ord) x),
		f AS (SELECT coalesce(tr.memory_id, vr.memory_id) AS memory_id,
				CASE WHEN vr.rank IS NULL OR tr.rank <= vr.rank THEN tr.seq ELSE vr.seq END AS seq,
				CASE WHEN vr.rank IS NULL OR tr.rank <= vr.rank THEN tr.chunk_id ELSE vr.chunk_id END AS chunk_id,
				coalesce(CASE WHEN $13::bool THEN $15::float8 / ($14::float8 + tr.rank::float8)
					WHEN tr.top > 0 THEN $15::float8 * greatest(tr.s, 0) / tr.top END, 0)
				+ coalesce(CASE WHEN $13::bool THEN $16::float8 / ($14::float8 + vr.rank::float8)
					WHEN ($11::float8[])[1] > 0 THEN $16::float8 * greatest(vr.score, 0) / ($11::float8[])[1] END, 0) AS score,
				tr.rank IS NOT NULL AS by_text, vr.rank IS NOT NULL AS by_vector,
				coalesce(tr.rank, vr.rank) AS rank
			FROM tr FULL JOIN vr ON vr.memory_id = tr.memory_id),
		kept AS MATERIALIZED (SELECT * FROM f ORDER BY score DESC, by_text DESC, rank LIMIT $12)
	SELECT kept.memory_id, kept.seq, c.text, m.type, m.agent_id, m.group_id, m.importance, m.created_at, m.metadata,
			kept.score, kept.by_text, kept.by_vector
		FROM kept
		CROSS JOIN LATERAL (SELECT text FROM memory_chunks
			WHERE id = kept.chunk_id AND (org_id, user_id, project_id) IS NOT DISTINCT FROM ($1::text, $2::text, $3::text)
			  AND memory_id = kept.memory_id AND seq = kept.seq LIMIT 1) c
		CROSS JOIN LATERAL (SELECT type, agent_id, group_id, importance, created_at, metadata FROM memories
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND memory_id = kept.memory_id LIMIT 1) m
		ORDER BY kept.score DESC, kept.by_text DESC, kept.rank`

const memJoin = ` JOIN memories m ON m.org_id = c.org_id AND m.user_id = c.user_id AND m.project_id = c.project_id AND m.memory_id = c.memory_id`

// VectorSearch is exact from the in-memory index when the scope fits in it
// and the filter is one it can apply, else it uses the model's HNSW index
// (an iterative scan, so filters that drop candidates still leave limit
// results when there are that many).
func (ms *MemoryStore) VectorSearch(ctx context.Context, scope store.Scope, model string, vec []float32, f memory.Filter, limit int) ([]memory.Hit, error) {
	return ms.vectorSearch(ctx, scope, model, vec, f, limit, false)
}

// VectorSearchLazy is VectorSearch whose hits from the in-memory index come
// from it alone, with no round trip: without the chunks' texts, importance
// and metadata (memory.LazySearcher).
func (ms *MemoryStore) VectorSearchLazy(ctx context.Context, scope store.Scope, model string, vec []float32, f memory.Filter, limit int) ([]memory.Hit, error) {
	return ms.vectorSearch(ctx, scope, model, vec, f, limit, true)
}

func (ms *MemoryStore) vectorSearch(ctx context.Context, scope store.Scope, model string, vec []float32, f memory.Filter, limit int, lazy bool) ([]memory.Hit, error) {
	if err := checkModel(model, len(vec)); err != nil {
		return nil, fmt.Errorf("postgres: vector search: %w", err)
	}
	if vecindex.Searchable(f) {
		hits, ok, err := ms.indexedSearch(ctx, vecindex.Key{Scope: scope, Model: model}, vec, f, limit, lazy)
		if err != nil {
			return nil, ms.s.fail(ctx, "vector search", err)
		}
		if ok {
			return hits, nil
		}
	}
	// HNSW is built for scopes the in-memory index cannot hold or filters
	// it cannot apply, not for a scope whose load is still under way.
	// With the in-memory index off, writes create HNSW themselves
	// (writeIndex): a build here would race theirs.
	build := ms.vi.Budget() > 0 && (!vecindex.Searchable(f) || !ms.vi.Loadable(vecindex.Key{Scope: scope, Model: model}))
	ready, err := ms.hnswReady(ctx, model, len(vec), build)
	if err != nil {
		return nil, ms.s.fail(ctx, "vector search", err)
	}
	cond, fargs := filterSQL(f, 5)
	typ, _ := indexedType(len(vec))
	dist := fmt.Sprintf("v.embedding::%s <=> $4::%s", typ, typ)
	var q string
	if ready {
		q = `SELECT v.chunk_id, 1 - (` + dist + `) FROM memory_vectors v`
		if cond != "" {
			q += ` JOIN memory_chunks c ON c.id = v.chunk_id` + memJoin
		}
		q += ` WHERE v.org_id = $1 AND v.user_id = $2 AND v.project_id = $3 AND v.model = '` + model + `'` + cond
	} else {
		// Exact, through the scope's chunks: O(the scope), not O(the table).
		q = `SELECT v.chunk_id, 1 - (` + dist + `) FROM memory_chunks c
			JOIN memory_vectors v ON v.chunk_id = c.id AND v.model = '` + model + `'`
		if cond != "" {
			q += memJoin
		}
		q += ` WHERE c.org_id = $1 AND c.user_id = $2 AND c.project_id = $3` + cond
	}
	q += ` ORDER BY ` + dist + ` LIMIT ` + strconv.Itoa(limit)
	args := append([]any{scope.OrgID, scope.UserID, scope.ProjectID, pgvector.NewVector(vec)}, fargs...)

	b := &pgx.Batch{}
	if ready {
		b.Queue(`SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'strict_order', true)`,
			strconv.FormatInt(max(ms.efSearch.Load(), int64(limit)), 10))
	}
	b.Queue(q, args...)
	br := ms.s.pool.SendBatch(ctx, b)
	var ids []int64
	scores := map[int64]float64{}
	err = func() error {
		defer func() { _ = br.Close() }()
		if ready {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var sim float64
			if err := rows.Scan(&id, &sim); err != nil {
				return err
			}
			ids = append(ids, id)
			scores[id] = sim
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, ms.s.fail(ctx, "vector search", err)
	}
	return ms.hits(ctx, "vector search", ids, scores)
}

func (ms *MemoryStore) hits(ctx context.Context, op string, ids []int64, scores map[int64]float64) ([]memory.Hit, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := ms.s.pool.Query(ctx, `SELECT c.id, c.memory_id, c.seq, c.text, m.type, m.agent_id, m.group_id, m.importance, m.created_at, m.metadata
		FROM memory_chunks c`+memJoin+` WHERE c.id = ANY($1)`, ids)
	if err != nil {
		return nil, ms.s.fail(ctx, op, err)
	}
	byID := make(map[int64]memory.Hit, len(ids))
	for rows.Next() {
		var h memory.Hit
		var id int64
		var md []byte
		if err := rows.Scan(&id, &h.MemoryID, &h.Seq, &h.Text, &h.Type, &h.AgentID, &h.GroupID, &h.Importance, &h.CreatedAt, &md); err != nil {
			rows.Close()
			return nil, ms.s.fail(ctx, op, err)
		}
		if err := decodeHitMetadata(md, &h); err != nil {
			rows.Close()
			return nil, ms.s.fail(ctx, op, err)
		}
		h.CreatedAt = utc(h.CreatedAt)
		h.Score, h.ChunkID = scores[id], id
		byID[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, ms.s.fail(ctx, op, err)
	}
	out := make([]memory.Hit, 0, len(ids))
	for _, id := range ids {
		if h, ok := byID[id]; ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// TextSearch ranks chunks by BM25, the sum over the query's terms of idf ×
// the stored impact, from memory_postings. Without a filter it keeps the
// rarest terms (memory.SelectRankTerms) and reads the best memory.PostingsDepth
// postings of each with an index-only scan, so its cost does not grow with
// the scope; with a filter it keeps terms whose posting lists add up to a
// bounded size (memory.SelectTerms) and reads them whole, joined to the
// memories the filter selects.
func (ms *MemoryStore) TextSearch(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	return ms.textSearch(ctx, scope, tokens, f, limit, false)
}

// TextSearchLazy is TextSearch without the chunks' texts, importance and
// metadata (memory.LazySearcher).
func (ms *MemoryStore) TextSearchLazy(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	return ms.textSearch(ctx, scope, tokens, f, limit, true)
}

// textSearch is, without a filter, one round trip (rankedTextSearchQuery);
// with one, two: the terms' counts, then the postings that memory.SelectTerms
// plans, joined to their chunks and memories (with the texts unless lazy).
func (ms *MemoryStore) textSearch(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int, lazy bool) ([]memory.Hit, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	if cond, _ := filterSQL(f, 7); cond == "" {
		text, md := `c.text`, `m.metadata`
		if lazy {
			text, md = `''`, `NULL::jsonb`
		}
		q := `WITH ` + rankedTextSearchQuery + `, r AS (` + rankedPostings + `)
			SELECT c.id, c.memory_id, c.seq, ` + text + `, m.type, m.agent_id, m.group_id, m.importance, m.created_at, ` + md + `, r.s
			FROM r JOIN memory_chunks c ON c.id = r.chunk_id` + memJoin + ` ORDER BY r.s DESC, r.chunk_id DESC`
		_, depth := memory.PostingsPlan(nil, 0, false, limit)
		rows, err := ms.s.pool.Query(ctx, q, scope.OrgID, scope.UserID, scope.ProjectID, tokens,
			memory.MaxQueryTerms, memory.CommonTermShare, depth, limit)
		if err != nil {
			return nil, ms.s.fail(ctx, "text search", err)
		}
		hits, err := scanHits(rows)
		if err != nil {
			return nil, ms.s.fail(ctx, "text search", err)
		}
		return hits, nil
	}
	// One primary-key probe per term. Written as term = ANY($4), the
	// generic plan pgx's prepared statement settles on filtered the
	// scope's whole vocabulary instead (28 ms at 9,000 terms, growing with
	// every memory: a turn's latency grew over a long run). The LIMIT keeps
	// the lateral read from being flattened into a hash join over that same
	// vocabulary, which the generic plan chose while the statistics were
	// stale (13 ms at 9,000 terms).
	rows, err := ms.s.pool.Query(ctx, termDFQuery,
		scope.OrgID, scope.UserID, scope.ProjectID, append([]string{""}, tokens...))
	if err != nil {
		return nil, ms.s.fail(ctx, "text search", err)
	}
	var n int64
	var cand []memory.TermDF
	var term string
	var df int64
	if _, err := pgx.ForEachRow(rows, []any{&term, &df}, func() error {
		if term == "" {
			n = df
		} else {
			cand = append(cand, memory.TermDF{Term: term, DF: df})
		}
		return nil
	}); err != nil {
		return nil, ms.s.fail(ctx, "text search", err)
	}
	cond, fargs := filterSQL(f, 7)
	kept, depth := memory.PostingsPlan(cand, n, cond != "", limit)
	if len(kept) == 0 {
		return nil, nil
	}
	terms := make([]string, len(kept))
	idfs := make([]float64, len(kept))
	for i, t := range kept {
		terms[i], idfs[i] = t.Term, memory.IDF(t.DF, n)
	}
	q := `SELECT p.chunk_id, sum(t.idf * p.impact) AS s FROM unnest($4::text[], $5::float8[]) AS t(term, idf)
		CROSS JOIN LATERAL (SELECT chunk_id, impact FROM memory_postings
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND term = t.term
			ORDER BY impact DESC, chunk_id DESC LIMIT $6) p`
	if cond != "" {
		q += ` JOIN memory_chunks c ON c.id = p.chunk_id` + memJoin + ` WHERE true` + cond
	}
	q += ` GROUP BY p.chunk_id ORDER BY s DESC, p.chunk_id DESC LIMIT ` + strconv.Itoa(limit)
	text, md := `c.text`, `m.metadata`
	if lazy {
		text, md = `''`, `NULL::jsonb`
	}
	q = `WITH r AS (` + q + `) SELECT c.id, c.memory_id, c.seq, ` + text + `, m.type, m.agent_id, m.group_id, m.importance, m.created_at, ` + md + `, r.s
		FROM r JOIN memory_chunks c ON c.id = r.chunk_id` + memJoin + ` ORDER BY r.s DESC, r.chunk_id DESC`
	args := append([]any{scope.OrgID, scope.UserID, scope.ProjectID, terms, idfs, depth}, fargs...)
	rows, err = ms.s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, ms.s.fail(ctx, "text search", err)
	}
	hits, err := scanHits(rows)
	if err != nil {
		return nil, ms.s.fail(ctx, "text search", err)
	}
	return hits, nil
}

// FusedSearch runs the full-text leg, fuses it with the vector leg's hits
// vec and reads the best topK memories' chunks, in one round trip
// (memory.FusedSearcher, fusedSearchQuery).
func (ms *MemoryStore) FusedSearch(ctx context.Context, scope store.Scope, tokens []string, vec []memory.Hit, limit, topK int, fu memory.Fusion) ([]memory.FusedHit, error) {
	if tokens == nil {
		tokens = []string{} // an empty array, not NULL
	}
	mids := make([]string, len(vec))
	seqs := make([]int32, len(vec))
	scores := make([]float64, len(vec))
	chunks := make([]int64, len(vec))
	for i, h := range vec {
		if h.ChunkID == 0 {
			return nil, fmt.Errorf("postgres: fused search: vector hit %s/%d has no chunk id", h.MemoryID, h.Seq)
		}
		mids[i], seqs[i], scores[i], chunks[i] = h.MemoryID, int32(h.Seq), h.Score, h.ChunkID
	}
	_, depth := memory.PostingsPlan(nil, 0, false, limit)
	rows, err := ms.s.pool.Query(ctx, fusedSearchQuery, scope.OrgID, scope.UserID, scope.ProjectID, tokens,
		memory.MaxQueryTerms, memory.CommonTermShare, depth, limit, mids, seqs, scores, topK,
		fu.Method == memory.FusionRRF, fu.RRFK, fu.TextWeight, fu.VectorWeight, chunks)
	if err != nil {
		return nil, ms.s.fail(ctx, "fused search", err)
	}
	defer rows.Close()
	var out []memory.FusedHit
	for rows.Next() {
		var h memory.FusedHit
		var md []byte
		if err := rows.Scan(&h.MemoryID, &h.Seq, &h.Text, &h.Type, &h.AgentID, &h.GroupID, &h.Importance, &h.CreatedAt, &md,
			&h.Score, &h.ByText, &h.ByVector); err != nil {
			return nil, ms.s.fail(ctx, "fused search", err)
		}
		if err := decodeHitMetadata(md, &h.Hit); err != nil {
			return nil, ms.s.fail(ctx, "fused search", err)
		}
		h.CreatedAt = utc(h.CreatedAt)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, ms.s.fail(ctx, "fused search", err)
	}
	return out, nil
}

// scanHits reads rows of chunk id, memory_id, seq, text, type, agent_id,
// group_id, importance, created_at, metadata and score.
func scanHits(rows pgx.Rows) ([]memory.Hit, error) {
	defer rows.Close()
	var out []memory.Hit
	for rows.Next() {
		var h memory.Hit
		var md []byte
		if err := rows.Scan(&h.ChunkID, &h.MemoryID, &h.Seq, &h.Text, &h.Type, &h.AgentID, &h.GroupID, &h.Importance, &h.CreatedAt, &md, &h.Score); err != nil {
			return nil, err
		}
		if err := decodeHitMetadata(md, &h); err != nil {
			return nil, err
		}
		h.CreatedAt = utc(h.CreatedAt)
		out = append(out, h)
	}
	return out, rows.Err()
}

// FillHits reads the texts, importance and metadata of the hits that lack
// their text (memory.LazySearcher), in one round trip.
func (ms *MemoryStore) FillHits(ctx context.Context, scope store.Scope, hits []memory.Hit) ([]memory.Hit, error) {
	var mids []string
	var seqs []int32
	var ids []int64
	byID := true
	for _, h := range hits {
		if h.Text == "" {
			mids, seqs, ids = append(mids, h.MemoryID), append(seqs, int32(h.Seq)), append(ids, h.ChunkID)
			byID = byID && h.ChunkID != 0
		}
	}
	if len(mids) == 0 {
		return hits, nil
	}
	// One key probe per hit: the LIMITs keep the planner from flattening the
	// lateral reads into a join over the scope's chunks and memories, which
	// the generic plan did while the tables' statistics said the scope was
	// small (7 ms at 2,000 memories, growing with every run).
	q, args := fillHitsQuery, []any{scope.OrgID, scope.UserID, scope.ProjectID, mids, seqs}
	if byID {
		q, args = fillHitsByIDQuery, append(args, ids)
	}
	rows, err := ms.s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, ms.s.fail(ctx, "fill hits", err)
	}
	found := map[memory.ChunkKey]memory.Hit{}
	for rows.Next() {
		var h memory.Hit
		var md []byte
		if err := rows.Scan(&h.MemoryID, &h.Seq, &h.Text, &h.Importance, &md); err != nil {
			rows.Close()
			return nil, ms.s.fail(ctx, "fill hits", err)
		}
		if err := decodeHitMetadata(md, &h); err != nil {
			rows.Close()
			return nil, ms.s.fail(ctx, "fill hits", err)
		}
		found[memory.ChunkKey{MemoryID: h.MemoryID, Seq: h.Seq}] = h
	}
	if err := rows.Err(); err != nil {
		return nil, ms.s.fail(ctx, "fill hits", err)
	}
	return memory.FilledHits(hits, found), nil
}

// ChunksWithoutVector lists chunks (any scope) after afterID lacking a vector of model.
func (ms *MemoryStore) ChunksWithoutVector(ctx context.Context, model string, afterID int64, limit int) ([]memory.ChunkRef, error) {
	rows, err := ms.s.pool.Query(ctx, `SELECT c.id, c.org_id, c.user_id, c.project_id, c.memory_id, c.seq, c.text FROM memory_chunks c
		WHERE c.id > $2 AND NOT EXISTS (SELECT 1 FROM memory_vectors v WHERE v.chunk_id = c.id AND v.model = $1) ORDER BY c.id LIMIT $3`, model, afterID, limit)
	if err != nil {
		return nil, ms.s.fail(ctx, "chunks without vector", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.ChunkRef, error) {
		var c memory.ChunkRef
		err := r.Scan(&c.ID, &c.Scope.OrgID, &c.Scope.UserID, &c.Scope.ProjectID, &c.MemoryID, &c.Seq, &c.Text)
		return c, err
	})
	return out, ms.s.fail(ctx, "chunks without vector", err)
}

// PutVectors stores (or replaces) vectors of model.
func (ms *MemoryStore) PutVectors(ctx context.Context, model string, refs []memory.ChunkRef, vecs [][]float32) error {
	if len(refs) != len(vecs) {
		return fmt.Errorf("postgres: put vectors: %d refs, %d vectors", len(refs), len(vecs))
	}
	if len(vecs) == 0 {
		return nil
	}
	if err := checkModel(model, len(vecs[0])); err != nil {
		return fmt.Errorf("postgres: put vectors: %w", err)
	}
	if err := ms.writeIndex(ctx, model, len(vecs[0])); err != nil {
		return err
	}
	defer ms.vi.DropModel(model) // the loaded vectors of model may be stale now
	err := ms.s.inTx(ctx, func(tx pgx.Tx) error {
		for i, r := range refs {
			if _, err := tx.Exec(ctx, `INSERT INTO memory_vectors (chunk_id, org_id, user_id, project_id, model, dim, embedding)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chunk_id, model) DO UPDATE SET dim = EXCLUDED.dim, embedding = EXCLUDED.embedding`,
				r.ID, r.Scope.OrgID, r.Scope.UserID, r.Scope.ProjectID, model, len(vecs[i]), pgvector.NewVector(vecs[i])); err != nil {
				return err
			}
		}
		return nil
	})
	return ms.s.fail(ctx, "put vectors", err)
}

// CoreBlocks returns an agent's stored blocks.
func (ms *MemoryStore) CoreBlocks(ctx context.Context, scope store.Scope, agentID string) ([]memory.CoreBlock, error) {
	rows, err := ms.s.pool.Query(ctx, coreBlocksOfAgent, scope.OrgID, scope.UserID, scope.ProjectID, agentID)
	if err != nil {
		return nil, ms.s.fail(ctx, "core blocks", err)
	}
	out, err := collectCoreBlocks(rows)
	return out, ms.s.fail(ctx, "core blocks", err)
}

// coreBlocksOfAgent reads the blocks of the agent $4 of the scope $1..$3.
const coreBlocksOfAgent = `SELECT label, value, lim, updated_at FROM core_blocks
	WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 ORDER BY label`

func collectCoreBlocks(rows pgx.Rows) ([]memory.CoreBlock, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (memory.CoreBlock, error) {
		var b memory.CoreBlock
		err := r.Scan(&b.Label, &b.Value, &b.Limit, &b.UpdatedAt)
		b.UpdatedAt = utc(b.UpdatedAt)
		return b, err
	})
}

// UpdateCoreBlock writes the block update makes of the agent's blocks, and
// records key, in one transaction. The agent's blocks are read FOR UPDATE,
// so two edits of a stored block do not lose one; a second call with the
// same key waits on the first one's row of core_memory_applied and then
// finds it.
func (ms *MemoryStore) UpdateCoreBlock(ctx context.Context, scope store.Scope, agentID, key string, update func([]memory.CoreBlock) (memory.CoreBlock, error)) (memory.CoreBlock, bool, error) {
	if err := store.CheckScope(scope); err != nil {
		return memory.CoreBlock{}, false, fmt.Errorf("postgres: update core block: %w", err)
	}
	var out memory.CoreBlock
	var applied bool
	var refused error
	err := ms.s.inTx(ctx, func(tx pgx.Tx) error {
		if key != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO core_memory_applied (org_id, user_id, project_id, agent_id, key, applied_at)
				VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING`, scope.OrgID, scope.UserID, scope.ProjectID, agentID, key)
			if err != nil || tag.RowsAffected() == 0 {
				return err // applied before when err is nil
			}
		}
		rows, err := tx.Query(ctx, `SELECT label, value, lim, updated_at FROM core_blocks
			WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 ORDER BY label FOR UPDATE`,
			scope.OrgID, scope.UserID, scope.ProjectID, agentID)
		if err != nil {
			return err
		}
		blocks, err := collectCoreBlocks(rows)
		if err != nil {
			return err
		}
		b, err := update(blocks)
		if err != nil {
			refused = err
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO core_blocks (org_id, user_id, project_id, agent_id, label, value, lim, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, user_id, project_id, agent_id, label)
			DO UPDATE SET value = EXCLUDED.value, lim = EXCLUDED.lim, updated_at = EXCLUDED.updated_at`,
			scope.OrgID, scope.UserID, scope.ProjectID, agentID, b.Label, b.Value, b.Limit, b.UpdatedAt); err != nil {
			return err
		}
		out, applied = b, true
		return nil
	})
	if refused != nil {
		return memory.CoreBlock{}, false, refused
	}
	if err != nil {
		return memory.CoreBlock{}, false, ms.s.fail(ctx, "update core block", err)
	}
	return out, applied, nil
}

// DeleteCoreBlock removes one block.
func (ms *MemoryStore) DeleteCoreBlock(ctx context.Context, scope store.Scope, agentID, label string) error {
	tag, err := ms.s.pool.Exec(ctx, `DELETE FROM core_blocks WHERE org_id = $1 AND user_id = $2 AND project_id = $3 AND agent_id = $4 AND label = $5`,
		scope.OrgID, scope.UserID, scope.ProjectID, agentID, label)
	if err != nil {
		return ms.s.fail(ctx, "delete core block", err)
	}
	if tag.RowsAffected() == 0 {
		return ms.s.fail(ctx, "delete core block", pgx.ErrNoRows)
	}
	return nil
}

// syncEvery is how often a search of a loaded scope looks for rows that
// another process wrote (this store's own writes are read by the next search).
const syncEvery = time.Second

// syncWindow: rows are looked for from this many ids below the largest id
// loaded, since concurrent writers commit ids out of order.
const syncWindow = 4096

// indexedSearch searches the scope in the in-memory index, loading it on its
// first search and reading the rows written since at most syncEvery ago.
// Its scores are the index's rounded ones (within about 1e-3): reading the
// exact vectors back would cost more than the search itself.
func (ms *MemoryStore) indexedSearch(ctx context.Context, k vecindex.Key, vec []float32, f memory.Filter, limit int, lazy bool) ([]memory.Hit, bool, error) {
	if err := ms.sync(ctx, k); err != nil {
		return nil, false, err
	}
	cand, ok, err := ms.vi.Search(ctx, k, vec, f, limit, nil)
	if err == nil && !ok && ms.vi.Loadable(k) {
		// Loading a big scope takes seconds (14 s at 100k chunks): the load
		// goes on in the background and HNSW answers until it is done.
		t := time.NewTimer(loadWait)
		select {
		case <-ms.startLoad(k, len(vec)):
			cand, ok, err = ms.vi.Search(ctx, k, vec, f, limit, nil)
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
	}
	if err != nil || !ok {
		return nil, false, err
	}
	ms.mu.Lock()
	if _, seen := ms.synced[k]; !seen {
		ms.synced[k] = time.Now()
	}
	ms.mu.Unlock()
	if lazy && len(cand) > 0 && cand[0].Meta.MemoryID != "" {
		hits := make([]memory.Hit, len(cand))
		for i, c := range cand {
			hits[i] = memory.Hit{ChunkID: c.ID, MemoryID: c.Meta.MemoryID, Seq: c.Meta.Seq, Score: c.Score, Type: c.Meta.Type,
				AgentID: c.Meta.AgentID, GroupID: c.Meta.GroupID, CreatedAt: time.UnixMicro(c.Meta.Created).UTC()}
		}
		return hits, true, nil
	}
	ids := make([]int64, len(cand))
	scores := make(map[int64]float64, len(cand))
	for i, c := range cand {
		ids[i], scores[c.ID] = c.ID, c.Score
	}
	hits, err := ms.hits(ctx, "vector search", ids, scores)
	return hits, err == nil, err
}

// loadWait is how long a search waits for a scope's vectors to load before
// it asks HNSW instead; small scopes load well within it.
const loadWait = 100 * time.Millisecond

// startLoad loads k's vectors into the index in the background unless that
// is under way; the channel is closed when the load has ended.
func (ms *MemoryStore) startLoad(k vecindex.Key, dim int) <-chan struct{} {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if done, ok := ms.loading[k]; ok {
		return done
	}
	done := make(chan struct{})
	started := ms.s.goBackground(func(bg context.Context) {
		defer func() {
			ms.mu.Lock()
			delete(ms.loading, k)
			ms.mu.Unlock()
			close(done)
		}()
		start := time.Now()
		err := ms.vi.Load(bg, k, dim, func(ctx context.Context, add func(int64, []float32, vecindex.Meta) error) error {
			return ms.loadVectors(ctx, k, nil, add)
		})
		if err != nil && bg.Err() == nil {
			ms.s.logger.Warn("postgres: loading a scope's vectors failed; HNSW answers meanwhile", "model", k.Model, "err", err)
			return
		}
		if n, loaded := ms.vi.Len(k); loaded && time.Since(start) > time.Second {
			ms.s.logger.Info("postgres: loaded a scope's vectors into memory", "model", k.Model, "chunks", n,
				"duration", time.Since(start).Round(time.Millisecond))
		}
	})
	if !started { // closing: nothing to wait for
		close(done)
		return done
	}
	ms.loading[k] = done
	return done
}

// WaitVectors loads the scope's vectors of model into memory, as its first
// search does in the background, and waits until they are (or cannot be).
func (ms *MemoryStore) WaitVectors(ctx context.Context, scope store.Scope, model string, dim int) error {
	k := vecindex.Key{Scope: scope, Model: model}
	if !ms.vi.Loadable(k) {
		return nil
	}
	select {
	case <-ms.startLoad(k, dim):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sync reads into a loaded scope the rows other processes wrote among the
// newest ones, at most every syncEvery (this store's own writes go into the
// index as they commit).
// Rows another process deleted stay until the scope is reloaded; the search
// drops them when it finds no chunk for them.
func (ms *MemoryStore) sync(ctx context.Context, k vecindex.Key) error {
	if _, loaded := ms.vi.Len(k); !loaded {
		return nil // the search loads it whole
	}
	top := ms.vi.MaxID(k)
	ms.mu.Lock()
	last, seen := ms.synced[k]
	ms.mu.Unlock()
	if seen && time.Since(last) < syncEvery {
		return nil
	}
	rows, err := ms.s.pool.Query(ctx, `SELECT c.id FROM memory_chunks c
		WHERE c.id > $1 AND c.org_id = $2 AND c.user_id = $3 AND c.project_id = $4`,
		top-syncWindow, k.Scope.OrgID, k.Scope.UserID, k.Scope.ProjectID)
	if err != nil {
		return err
	}
	recent, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if missing := ms.vi.Missing(k, recent); len(missing) > 0 {
		var ids []int64
		var vecs [][]float32
		var metas []vecindex.Meta
		if err := ms.loadVectors(ctx, k, missing, func(id int64, v []float32, m vecindex.Meta) error {
			ids, vecs, metas = append(ids, id), append(vecs, slices.Clone(v)), append(metas, m)
			return nil
		}); err != nil {
			return err
		}
		ms.vi.Insert(k, ids, vecs, metas)
	}
	ms.mu.Lock()
	ms.synced[k] = time.Now()
	ms.mu.Unlock()
	return nil
}

// loadVectors feeds add the scope's vectors of the model: all of them, or
// those of the chunks ids when given. The vector is reused between calls.
func (ms *MemoryStore) loadVectors(ctx context.Context, k vecindex.Key, ids []int64, add func(int64, []float32, vecindex.Meta) error) error {
	q := `SELECT c.id, v.embedding::real[], m.type, m.agent_id, m.group_id, m.created_at, c.memory_id, c.seq
		FROM memory_chunks c JOIN memory_vectors v ON v.chunk_id = c.id AND v.model = $4` + memJoin + `
		WHERE c.org_id = $1 AND c.user_id = $2 AND c.project_id = $3`
	args := []any{k.Scope.OrgID, k.Scope.UserID, k.Scope.ProjectID, k.Model}
	if ids != nil {
		q += ` AND c.id = ANY($5)`
		args = append(args, ids)
	}
	rows, err := ms.s.pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var id int64
	var vec []float32
	var m vecindex.Meta
	var created time.Time
	for rows.Next() {
		if err := rows.Scan(&id, &vec, &m.Type, &m.AgentID, &m.GroupID, &created, &m.MemoryID, &m.Seq); err != nil {
			return err
		}
		m.Created = created.UnixMicro()
		if err := add(id, vec, m); err != nil {
			return err
		}
	}
	return rows.Err()
}

// SetQuotas sets the quotas of the store the memory store belongs to.
func (ms *MemoryStore) SetQuotas(q store.Quotas) { ms.s.SetQuotas(q) }

// Quotas returns the quotas in force.
func (ms *MemoryStore) Quotas() store.Quotas { return ms.s.Quotas() }

// decodeHitMetadata reads a hit's memory metadata (jsonb), for its citation.
func decodeHitMetadata(md []byte, h *memory.Hit) error {
	if len(md) == 0 || string(md) == "{}" {
		return nil
	}
	if err := json.Unmarshal(md, &h.Metadata); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}
