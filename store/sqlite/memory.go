package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/vecindex"
	"github.com/openintern/openintern/store"
)

// MemoryStore is memory.Store on the same SQLite file as Store: an
// impact-ordered inverted index of the Go tokens (memory_postings, with
// per-scope document frequencies in memory_terms) ranked by BM25 for full
// text, float32 blobs scored in Go for vectors (from an in-memory index of
// each searched scope's vectors, see memory/vecindex).
type MemoryStore struct {
	s  *Store
	vc *vecindex.Index
}

var (
	_ memory.Store        = (*MemoryStore)(nil)
	_ memory.LazySearcher = (*MemoryStore)(nil)
)

// Memory returns the memory store that shares s's connections. Keep one per
// daemon: it caches vectors, and sees only its own writes (and
// other processes' writes when it loads a scope).
func (s *Store) Memory() *MemoryStore {
	return &MemoryStore{s: s, vc: vecindex.New(vecindex.DefaultBudget)}
}

// SetVectorIndexBytes changes the vector index's budget (0 turns it off:
// every vector search scans the scope's blobs).
func (ms *MemoryStore) SetVectorIndexBytes(n int64) { ms.vc.SetBudget(n) }

// metaKeyRE limits metadata filter keys to what can be put in a JSON path
// without quoting problems.
var metaKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func encodeVec(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// dotBlob is the inner product of q and a little-endian float32 blob,
// without decoding the blob into a slice first.
func dotBlob(q []float32, b []byte) float64 {
	n := min(len(q), len(b)/4)
	var s float32
	for i := 0; i < n; i++ {
		s += q[i] * math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return float64(s)
}

// InsertMemory stores a memory, its chunks, their postings and vectors, in
// one transaction; ErrConflict, with nothing stored, when the id is taken.
func (ms *MemoryStore) InsertMemory(ctx context.Context, m memory.Memory, chunks []memory.Chunk) error {
	return ms.InsertMemories(ctx, []memory.NewMemory{{Memory: m, Chunks: chunks}})
}

// InsertMemories stores the memories in one write transaction, all or nothing.
func (ms *MemoryStore) InsertMemories(ctx context.Context, batch []memory.NewMemory) error {
	if len(batch) == 0 {
		return nil
	}
	for _, nm := range batch {
		if err := store.CheckScope(nm.Memory.Scope); err != nil {
			return fmt.Errorf("sqlite: insert memory: %w", err)
		}
	}
	ids := make([][]int64, len(batch))
	limit := ms.s.Quotas().MemoryBytesPerScope
	err := ms.s.writeTx(ctx, func(tx *sql.Tx) error {
		// First, so that a write over the quota costs nothing more; the one
		// writer makes the check and the insert atomic.
		for sc, u := range memory.UsageOf(batch) {
			var total int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO memory_usage (org_id, user_id, project_id, memories, text_bytes)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (org_id, user_id, project_id) DO UPDATE
				SET memories = memories + excluded.memories, text_bytes = text_bytes + excluded.text_bytes
				RETURNING text_bytes`, scopeArgs(sc, u.Memories, u.TextBytes)...).Scan(&total); err != nil {
				return err
			}
			if err := store.CheckMemoryQuota(limit, total, u.TextBytes); err != nil {
				return err
			}
		}
		insChunk, err := tx.PrepareContext(ctx, `INSERT INTO memory_chunks (org_id, user_id, project_id, memory_id, seq, text)
			VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer func() { _ = insChunk.Close() }()
		insPosting, err := tx.PrepareContext(ctx, `INSERT INTO memory_postings (org_id, user_id, project_id, term, impact, chunk_id)
			VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer func() { _ = insPosting.Close() }()
		if err := addTermCounts(ctx, tx, memory.TermCounts(batch), 1); err != nil {
			return err
		}
		for b, nm := range batch {
			m, chunks := nm.Memory, nm.Chunks
			if _, err := tx.ExecContext(ctx, `INSERT INTO memories (org_id, user_id, project_id, memory_id, type, agent_id, group_id,
				text, metadata, importance, chunks, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				scopeArgs(m.Scope, m.ID, m.Type, m.AgentID, m.GroupID, m.Text, string(memory.MetadataJSON(m.Metadata)),
					m.Importance, len(chunks), micros(m.CreatedAt))...); err != nil {
				return err
			}
			ids[b] = make([]int64, len(chunks))
			for i, c := range chunks {
				res, err := insChunk.ExecContext(ctx, scopeArgs(m.Scope, m.ID, c.Seq, c.Text)...)
				if err != nil {
					return err
				}
				id, err := res.LastInsertId()
				if err != nil {
					return err
				}
				ids[b][i] = id
				for term, impact := range memory.ChunkImpacts(c.Tokens) {
					if _, err := insPosting.ExecContext(ctx, scopeArgs(m.Scope, term, impact, id)...); err != nil {
						return err
					}
				}
				if c.Vector != nil {
					if _, err := tx.ExecContext(ctx, `INSERT INTO memory_vectors (chunk_id, model, dim, embedding) VALUES (?, ?, ?, ?)`,
						id, c.Model, len(c.Vector), encodeVec(c.Vector)); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fail("insert memory", err)
	}
	for b, nm := range batch {
		ms.vc.InsertMemory(nm.Memory, nm.Chunks, ids[b])
	}
	return nil
}

// addTermCounts adds sign × the counts to memory_terms.
func addTermCounts(ctx context.Context, tx *sql.Tx, counts map[store.Scope]map[string]int64, sign int64) error {
	up, err := tx.PrepareContext(ctx, `INSERT INTO memory_terms (org_id, user_id, project_id, term, df) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (org_id, user_id, project_id, term) DO UPDATE SET df = df + excluded.df`)
	if err != nil {
		return err
	}
	defer func() { _ = up.Close() }()
	for sc, df := range counts {
		for t, n := range df {
			if _, err := up.ExecContext(ctx, scopeArgs(sc, t, sign*n)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// memoryCols are the columns of memories m that scanMemory reads.
const memoryCols = `m.org_id, m.user_id, m.project_id, m.memory_id, m.type, m.agent_id, m.group_id, m.text,
	m.metadata, m.importance, m.chunks, m.created_at`

func scanMemory(row scanner) (memory.Memory, error) {
	var m memory.Memory
	var md string
	var created int64
	err := row.Scan(&m.Scope.OrgID, &m.Scope.UserID, &m.Scope.ProjectID, &m.ID, &m.Type, &m.AgentID, &m.GroupID,
		&m.Text, &md, &m.Importance, &m.Chunks, &created)
	if err != nil {
		return memory.Memory{}, err
	}
	m.CreatedAt = fromMicros(created)
	if md != "" && md != "{}" {
		if err := json.Unmarshal([]byte(md), &m.Metadata); err != nil {
			return memory.Memory{}, fmt.Errorf("metadata: %w", err)
		}
	}
	return m, nil
}

// GetMemory returns a memory of the scope.
func (ms *MemoryStore) GetMemory(ctx context.Context, scope store.Scope, id string) (memory.Memory, error) {
	m, err := scanMemory(ms.s.r.QueryRowContext(ctx, `SELECT `+memoryCols+`
		FROM memories m WHERE m.org_id = ? AND m.user_id = ? AND m.project_id = ? AND m.memory_id = ?`,
		scopeArgs(scope, id)...))
	if err != nil {
		return memory.Memory{}, fail("get memory", err)
	}
	return m, nil
}

// ListMemories returns a page of the scope's memories that f selects, newest
// first (ties by id), and how many match.
func (ms *MemoryStore) ListMemories(ctx context.Context, scope store.Scope, f memory.Filter, page store.Page) ([]memory.Memory, int, error) {
	cond, fargs, err := filterSQL(f)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: list memories: %w", err)
	}
	limit, offset := store.PageBounds(page)
	where := `m.org_id = ? AND m.user_id = ? AND m.project_id = ?` + cond
	if f.GroupID != "" {
		// The literal lets the planner use the partial index of group
		// memories (a blackboard), even in a generic plan.
		where += ` AND m.group_id <> ''`
	}
	args := append(scopeArgs(scope), fargs...)
	out, total, err := listPage(ctx, ms.s, `SELECT count(*) FROM memories m WHERE `+where, args,
		`SELECT `+memoryCols+` FROM memories m WHERE `+where+` ORDER BY m.created_at DESC, m.memory_id LIMIT ? OFFSET ?`,
		append(append([]any{}, args...), limit, offset), scanMemory)
	if err != nil {
		return nil, 0, fail("list memories", err)
	}
	return out, total, nil
}

// DeleteMemory removes a memory and everything indexed for it.
func (ms *MemoryStore) DeleteMemory(ctx context.Context, scope store.Scope, id string) error {
	var chunkIDs []int64
	err := ms.s.writeTx(ctx, func(tx *sql.Tx) error {
		chunkIDs = chunkIDs[:0]
		var textBytes int64
		if err := tx.QueryRowContext(ctx, `DELETE FROM memories WHERE `+scopeCond+` AND memory_id = ? RETURNING length(CAST(text AS BLOB))`,
			scopeArgs(scope, id)...).Scan(&textBytes); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE memory_usage SET memories = memories - 1, text_bytes = text_bytes - ? WHERE `+scopeCond,
			append([]any{textBytes}, scopeArgs(scope)...)...); err != nil {
			return err
		}
		// The chunks' text is tokenized again to take back their terms'
		// counts and find their postings, whose whole key is recomputed,
		// so each is one index probe (the table has no index by chunk).
		var gone memory.NewMemory
		gone.Memory.Scope = scope
		if err := queryRows(ctx, tx, `SELECT id, text FROM memory_chunks WHERE `+scopeCond+` AND memory_id = ?`, scopeArgs(scope, id), func(rows *sql.Rows) error {
			var cid int64
			var text string
			if err := rows.Scan(&cid, &text); err != nil {
				return err
			}
			chunkIDs = append(chunkIDs, cid)
			gone.Chunks = append(gone.Chunks, memory.Chunk{Tokens: memory.Tokenize(text)})
			return nil
		}); err != nil {
			return err
		}
		if err := addTermCounts(ctx, tx, memory.TermCounts([]memory.NewMemory{gone}), -1); err != nil {
			return err
		}
		for i, c := range gone.Chunks {
			if err := deletePostings(ctx, tx, scope, chunkIDs[i], memory.ChunkImpacts(c.Tokens)); err != nil {
				return err
			}
		}
		sub := `(SELECT id FROM memory_chunks WHERE ` + scopeCond + ` AND memory_id = ?)`
		if _, err := tx.ExecContext(ctx, `DELETE FROM memory_vectors WHERE chunk_id IN `+sub, scopeArgs(scope, id)...); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM memory_chunks WHERE `+scopeCond+` AND memory_id = ?`, scopeArgs(scope, id)...)
		return err
	})
	if err != nil {
		return fail("delete memory", err)
	}
	ms.vc.Remove(scope, chunkIDs)
	return nil
}

// filterSQL is the condition on memories m that f asks for.
func filterSQL(f memory.Filter) (string, []any, error) {
	var conds []string
	var args []any
	if len(f.Types) > 0 {
		conds = append(conds, "m.type IN (?"+strings.Repeat(", ?", len(f.Types)-1)+")")
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if f.AgentID != "" {
		conds = append(conds, "m.agent_id = ?")
		args = append(args, f.AgentID)
	}
	if f.GroupID != "" {
		conds = append(conds, "m.group_id = ?")
		args = append(args, f.GroupID)
	}
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !metaKeyRE.MatchString(k) {
			return "", nil, fmt.Errorf("metadata key %q: %w", k, memory.ErrInvalid)
		}
		conds = append(conds, `json_extract(m.metadata, ?) = ?`)
		args = append(args, `$."`+k+`"`, f.Metadata[k])
	}
	if !f.After.IsZero() {
		conds = append(conds, "m.created_at >= ?")
		args = append(args, micros(f.After))
	}
	if !f.Before.IsZero() {
		conds = append(conds, "m.created_at < ?")
		args = append(args, micros(f.Before))
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " AND " + strings.Join(conds, " AND "), args, nil
}

// memJoin joins a chunk c to its memory m.
const memJoin = ` JOIN memories m ON m.org_id = c.org_id AND m.user_id = c.user_id AND m.project_id = c.project_id AND m.memory_id = c.memory_id`

// VectorSearch scores the scope's vectors of the model in Go: from the
// vector cache when the scope fits in it (and the filter is one the cache
// can apply), else by scanning the blobs.
func (ms *MemoryStore) VectorSearch(ctx context.Context, scope store.Scope, model string, vec []float32, f memory.Filter, limit int) ([]memory.Hit, error) {
	cond, fargs, err := filterSQL(f)
	if err != nil {
		return nil, fmt.Errorf("sqlite: vector search: %w", err)
	}
	var top []vecindex.Scored
	cached := false
	if vecindex.Searchable(f) {
		top, cached, err = ms.cachedSearch(ctx, vecindex.Key{Scope: scope, Model: model}, vec, f, limit)
		if err != nil {
			return nil, fail("vector search", err)
		}
	}
	if !cached {
		top, err = ms.scanSearch(ctx, scope, model, vec, cond, fargs, limit)
		if err != nil {
			return nil, fail("vector search", err)
		}
	}
	ids := make([]int64, len(top))
	scores := make(map[int64]float64, len(top))
	for i, t := range top {
		ids[i] = t.ID
		scores[t.ID] = t.Score
	}
	return ms.hits(ctx, "vector search", ids, scores, false)
}

// VectorSearchLazy is VectorSearch whose hits, when the scope is in the
// vector cache, come from the cache alone: with its rounded scores (within
// about 1e-3, as on PostgreSQL) and without the chunks' texts, importance
// and metadata (memory.LazySearcher). Rescoring from the stored blobs and
// reading every candidate's text cost a recall more than the rest of its
// search.
func (ms *MemoryStore) VectorSearchLazy(ctx context.Context, scope store.Scope, model string, vec []float32, f memory.Filter, limit int) ([]memory.Hit, error) {
	if vecindex.Searchable(f) {
		cand, ok, err := ms.vc.Search(ctx, vecindex.Key{Scope: scope, Model: model}, vec, f, limit, ms.loader(vecindex.Key{Scope: scope, Model: model}, len(vec)))
		if err != nil {
			return nil, fail("vector search", err)
		}
		if ok && indexedIDs(cand) {
			hits := make([]memory.Hit, len(cand))
			for i, c := range cand {
				hits[i] = memory.Hit{ChunkID: c.ID, MemoryID: c.Meta.MemoryID, Seq: c.Meta.Seq, Score: c.Score, Type: c.Meta.Type,
					AgentID: c.Meta.AgentID, GroupID: c.Meta.GroupID, CreatedAt: fromMicros(c.Meta.Created)}
			}
			return hits, nil
		}
	}
	return ms.VectorSearch(ctx, scope, model, vec, f, limit)
}

// indexedIDs reports whether every candidate carries its memory id, which
// a lazy hit needs.
func indexedIDs(cand []vecindex.Scored) bool {
	for _, c := range cand {
		if c.Meta.MemoryID == "" {
			return false
		}
	}
	return true
}

// cachedSearch searches the scope in the vector index, loading it first
// when it is new; ok is false when the scope is too big to be indexed.
func (ms *MemoryStore) cachedSearch(ctx context.Context, k vecindex.Key, vec []float32, f memory.Filter, limit int) (top []vecindex.Scored, ok bool, err error) {
	cand, ok, err := ms.vc.Search(ctx, k, vec, f, limit+limit/2+10, ms.loader(k, len(vec)))
	if err != nil || !ok {
		return nil, false, err
	}
	top, err = ms.rescore(ctx, k.Model, vec, cand, limit)
	return top, err == nil, err
}

// loader feeds the vector index the scope's vectors of the model (of
// dimension dim), with what a lazy hit needs of each chunk.
func (ms *MemoryStore) loader(k vecindex.Key, dim int) vecindex.Loader {
	return func(ctx context.Context, add func(int64, []float32, vecindex.Meta) error) error {
		v := make([]float32, dim)
		return queryRows(ctx, ms.s.r, `SELECT c.id, v.embedding, m.type, m.agent_id, m.group_id, m.created_at, c.memory_id, c.seq
			FROM memory_chunks c JOIN memory_vectors v ON v.chunk_id = c.id AND v.model = ?`+memJoin+`
			WHERE c.org_id = ? AND c.user_id = ? AND c.project_id = ?`,
			append([]any{k.Model}, scopeArgs(k.Scope)...), func(rows *sql.Rows) error {
				var id int64
				var blob sql.RawBytes
				var m vecindex.Meta
				if err := rows.Scan(&id, &blob, &m.Type, &m.AgentID, &m.GroupID, &m.Created, &m.MemoryID, &m.Seq); err != nil {
					return err
				}
				if len(blob) != 4*dim {
					return nil
				}
				for i := range v {
					v[i] = math.Float32frombits(binary.LittleEndian.Uint32(blob[4*i:]))
				}
				return add(id, v, m)
			})
	}
}

// rescore replaces the index's rounded scores of cand with exact ones from
// the stored vectors and keeps the best limit: the rounding may swap close
// neighbours, so the index proposes a few more candidates than asked for.
func (ms *MemoryStore) rescore(ctx context.Context, model string, vec []float32, cand []vecindex.Scored, limit int) ([]vecindex.Scored, error) {
	if len(cand) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(cand)+1)
	args = append(args, model)
	for _, c := range cand {
		args = append(args, c.ID)
	}
	out := make([]vecindex.Scored, 0, len(cand))
	err := queryRows(ctx, ms.s.r, `SELECT chunk_id, embedding FROM memory_vectors WHERE model = ? AND chunk_id IN (?`+
		strings.Repeat(", ?", len(cand)-1)+`)`, args, func(rows *sql.Rows) error {
		var id int64
		var blob sql.RawBytes
		if err := rows.Scan(&id, &blob); err != nil {
			return err
		}
		out = append(out, vecindex.Scored{ID: id, Score: dotBlob(vec, blob)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	vecindex.SortBest(out)
	return out[:min(limit, len(out))], nil
}

// scanSearch scores every vector of the model in the scope (filtered).
func (ms *MemoryStore) scanSearch(ctx context.Context, scope store.Scope, model string, vec []float32, cond string, fargs []any, limit int) ([]vecindex.Scored, error) {
	q := `SELECT c.id, v.embedding FROM memory_chunks c JOIN memory_vectors v ON v.chunk_id = c.id AND v.model = ?`
	if cond != "" {
		q += memJoin
	}
	q += ` WHERE c.org_id = ? AND c.user_id = ? AND c.project_id = ?` + cond
	args := append(append([]any{model}, scopeArgs(scope)...), fargs...)
	var top []vecindex.Scored // kept sorted, best first, at most limit
	err := queryRows(ctx, ms.s.r, q, args, func(rows *sql.Rows) error {
		var id int64
		var blob sql.RawBytes
		if err := rows.Scan(&id, &blob); err != nil {
			return err
		}
		sc := dotBlob(vec, blob)
		if len(top) == limit && sc <= top[len(top)-1].Score {
			return nil
		}
		i := sort.Search(len(top), func(i int) bool { return top[i].Score < sc })
		if len(top) < limit {
			top = append(top, vecindex.Scored{})
		}
		copy(top[i+1:], top[i:len(top)-1])
		top[i] = vecindex.Scored{ID: id, Score: sc}
		return nil
	})
	return top, err
}

// hits loads the chunks ids (with their memories' fields) in the order
// given; lazy leaves out their texts, importance and metadata.
func (ms *MemoryStore) hits(ctx context.Context, op string, ids []int64, scores map[int64]float64, lazy bool) ([]memory.Hit, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	cols := `c.id, c.memory_id, c.seq, c.text, m.type, m.agent_id, m.group_id, m.importance, m.created_at, m.metadata`
	if lazy {
		cols = `c.id, c.memory_id, c.seq, '', m.type, m.agent_id, m.group_id, 0, m.created_at, ''`
	}
	byID := make(map[int64]memory.Hit, len(ids))
	err := queryRows(ctx, ms.s.r, `SELECT `+cols+`
		FROM memory_chunks c`+memJoin+` WHERE c.id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, args, func(rows *sql.Rows) error {
		var h memory.Hit
		var id, created int64
		var md string
		if err := rows.Scan(&id, &h.MemoryID, &h.Seq, &h.Text, &h.Type, &h.AgentID, &h.GroupID, &h.Importance, &created, &md); err != nil {
			return err
		}
		if err := decodeMetadata(md, &h); err != nil {
			return err
		}
		h.ChunkID = id
		h.CreatedAt = fromMicros(created)
		h.Score = scores[id]
		byID[id] = h
		return nil
	})
	if err != nil {
		return nil, fail(op, err)
	}
	out := make([]memory.Hit, 0, len(ids))
	for _, id := range ids {
		if h, ok := byID[id]; ok { // deleted meanwhile otherwise
			out = append(out, h)
		}
	}
	return out, nil
}

func decodeMetadata(md string, h *memory.Hit) error {
	if md == "" || md == "{}" {
		return nil
	}
	if err := json.Unmarshal([]byte(md), &h.Metadata); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return nil
}

// FillHits reads the texts, importance and metadata of the hits that lack
// their text (memory.LazySearcher), in one query: by chunk id where the hit
// has one, by memory id and seq otherwise, within scope either way.
func (ms *MemoryStore) FillHits(ctx context.Context, scope store.Scope, hits []memory.Hit) ([]memory.Hit, error) {
	var conds []string
	args := scopeArgs(scope)
	for _, h := range hits {
		if h.Text != "" {
			continue
		}
		if h.ChunkID != 0 {
			conds = append(conds, `(c.id = ? AND c.memory_id = ? AND c.seq = ?)`)
			args = append(args, h.ChunkID, h.MemoryID, h.Seq)
		} else {
			conds = append(conds, `(c.memory_id = ? AND c.seq = ?)`)
			args = append(args, h.MemoryID, h.Seq)
		}
	}
	if len(conds) == 0 {
		return hits, nil
	}
	found := map[memory.ChunkKey]memory.Hit{}
	err := queryRows(ctx, ms.s.r, `SELECT c.memory_id, c.seq, c.text, m.importance, m.metadata FROM memory_chunks c`+memJoin+`
		WHERE c.org_id = ? AND c.user_id = ? AND c.project_id = ? AND (`+strings.Join(conds, " OR ")+`)`, args,
		func(rows *sql.Rows) error {
			var h memory.Hit
			var md string
			if err := rows.Scan(&h.MemoryID, &h.Seq, &h.Text, &h.Importance, &md); err != nil {
				return err
			}
			if err := decodeMetadata(md, &h); err != nil {
				return err
			}
			found[memory.ChunkKey{MemoryID: h.MemoryID, Seq: h.Seq}] = h
			return nil
		})
	if err != nil {
		return nil, fail("fill hits", err)
	}
	return memory.FilledHits(hits, found), nil
}

// deletePostings removes a chunk's postings, given their weights. A posting
// whose stored weight differs from the recomputed one (none should) is found
// by a scan of its term's list instead.
func deletePostings(ctx context.Context, tx *sql.Tx, scope store.Scope, chunkID int64, impacts map[string]float64) error {
	for term, impact := range impacts {
		res, err := tx.ExecContext(ctx, `DELETE FROM memory_postings WHERE `+scopeCond+` AND term = ? AND impact = ? AND chunk_id = ?`,
			scopeArgs(scope, term, impact, chunkID)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM memory_postings WHERE `+scopeCond+` AND term = ? AND chunk_id = ?`,
			scopeArgs(scope, term, chunkID)...); err != nil {
			return err
		}
	}
	return nil
}

// TextSearch ranks chunks by BM25, the sum over the query's terms of idf ×
// the stored impact, from memory_postings. Without a filter it keeps the
// rarest terms (memory.SelectRankTerms) and reads the best memory.PostingsDepth
// postings of each from the table's own ordered key, so its cost does not
// grow with the scope; with a filter it keeps terms whose posting lists add
// up to a bounded size (memory.SelectTerms) and reads them whole, joined to
// the memories the filter selects.
func (ms *MemoryStore) TextSearch(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	return ms.textSearch(ctx, scope, tokens, f, limit, false)
}

// TextSearchLazy is TextSearch whose hits lack the chunks' texts,
// importance and metadata (memory.LazySearcher).
func (ms *MemoryStore) TextSearchLazy(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int) ([]memory.Hit, error) {
	return ms.textSearch(ctx, scope, tokens, f, limit, true)
}

func (ms *MemoryStore) textSearch(ctx context.Context, scope store.Scope, tokens []string, f memory.Filter, limit int, lazy bool) ([]memory.Hit, error) {
	if len(tokens) == 0 {
		return nil, nil
	}
	cond, fargs, err := filterSQL(f)
	if err != nil {
		return nil, fmt.Errorf("sqlite: text search: %w", err)
	}
	targs := scopeArgs(scope)
	for _, t := range tokens {
		targs = append(targs, t)
	}
	var n int64
	var dfs []memory.TermDF
	err = queryRows(ctx, ms.s.r, `SELECT term, df FROM memory_terms WHERE `+scopeCond+` AND term IN ('', ?`+strings.Repeat(", ?", len(tokens)-1)+`)`, targs,
		func(rows *sql.Rows) error {
			var t memory.TermDF
			if err := rows.Scan(&t.Term, &t.DF); err != nil {
				return err
			}
			if t.Term == "" {
				n = t.DF
			} else {
				dfs = append(dfs, t)
			}
			return nil
		})
	if err != nil {
		return nil, fail("text search", err)
	}
	kept, depth := memory.PostingsPlan(dfs, n, cond != "", limit)
	if len(kept) == 0 {
		return nil, nil
	}
	// One statement: each term's best postings (a range of the primary
	// key, read in its order), weighted by the term's idf and summed per chunk.
	legs := make([]string, len(kept))
	var args []any
	for i, t := range kept {
		if cond == "" {
			legs[i] = `SELECT * FROM (SELECT chunk_id, impact * ? AS w FROM memory_postings
				WHERE org_id = ? AND user_id = ? AND project_id = ? AND term = ? ORDER BY impact DESC, chunk_id DESC LIMIT ?)`
			args = append(args, memory.IDF(t.DF, n))
			args = append(args, scopeArgs(scope, t.Term, depth)...)
			continue
		}
		legs[i] = `SELECT * FROM (SELECT p.chunk_id, p.impact * ? AS w FROM memory_postings p
			JOIN memory_chunks c ON c.id = p.chunk_id` + memJoin + `
			WHERE p.org_id = ? AND p.user_id = ? AND p.project_id = ? AND p.term = ?` + cond + `
			ORDER BY p.impact DESC, p.chunk_id DESC LIMIT ?)`
		args = append(args, memory.IDF(t.DF, n))
		args = append(args, scopeArgs(scope, t.Term)...)
		args = append(append(args, fargs...), depth)
	}
	q := `SELECT chunk_id, sum(w) AS s FROM (` + strings.Join(legs, " UNION ALL ") + `)
		GROUP BY chunk_id ORDER BY s DESC, chunk_id DESC LIMIT ?`
	args = append(args, limit)
	var ids []int64
	scores := map[int64]float64{}
	err = queryRows(ctx, ms.s.r, q, args, func(rows *sql.Rows) error {
		var id int64
		var sc float64
		if err := rows.Scan(&id, &sc); err != nil {
			return err
		}
		ids = append(ids, id)
		scores[id] = sc
		return nil
	})
	if err != nil {
		return nil, fail("text search", err)
	}
	return ms.hits(ctx, "text search", ids, scores, lazy)
}

// ChunksWithoutVector lists chunks after afterID lacking a vector of model.
func (ms *MemoryStore) ChunksWithoutVector(ctx context.Context, model string, afterID int64, limit int) ([]memory.ChunkRef, error) {
	var out []memory.ChunkRef
	err := queryRows(ctx, ms.s.r, `SELECT c.id, c.org_id, c.user_id, c.project_id, c.memory_id, c.seq, c.text FROM memory_chunks c
		WHERE c.id > ? AND NOT EXISTS (SELECT 1 FROM memory_vectors v WHERE v.chunk_id = c.id AND v.model = ?) ORDER BY c.id LIMIT ?`,
		[]any{afterID, model, limit}, func(rows *sql.Rows) error {
			var r memory.ChunkRef
			if err := rows.Scan(&r.ID, &r.Scope.OrgID, &r.Scope.UserID, &r.Scope.ProjectID, &r.MemoryID, &r.Seq, &r.Text); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	return out, fail("chunks without vector", err)
}

// PutVectors stores (or replaces) vectors of model.
func (ms *MemoryStore) PutVectors(ctx context.Context, model string, refs []memory.ChunkRef, vecs [][]float32) error {
	if len(refs) != len(vecs) {
		return fmt.Errorf("sqlite: put vectors: %d refs, %d vectors", len(refs), len(vecs))
	}
	defer ms.vc.DropModel(model) // the cached vectors of model may be stale now
	err := ms.s.writeTx(ctx, func(tx *sql.Tx) error {
		for i, r := range refs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO memory_vectors (chunk_id, model, dim, embedding) VALUES (?, ?, ?, ?)
				ON CONFLICT (chunk_id, model) DO UPDATE SET dim = excluded.dim, embedding = excluded.embedding`,
				r.ID, model, len(vecs[i]), encodeVec(vecs[i])); err != nil {
				return err
			}
		}
		return nil
	})
	return fail("put vectors", err)
}

// CoreBlocks returns the stored blocks of an agent.
func (ms *MemoryStore) CoreBlocks(ctx context.Context, scope store.Scope, agentID string) ([]memory.CoreBlock, error) {
	out, err := coreBlocks(ctx, ms.s.r, scope, agentID)
	return out, fail("core blocks", err)
}

func coreBlocks(ctx context.Context, db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, scope store.Scope, agentID string) ([]memory.CoreBlock, error) {
	var out []memory.CoreBlock
	err := queryRows(ctx, db, `SELECT label, value, lim, updated_at FROM core_blocks WHERE `+scopeCond+` AND agent_id = ? ORDER BY label`,
		scopeArgs(scope, agentID), func(rows *sql.Rows) error {
			var b memory.CoreBlock
			var upd int64
			if err := rows.Scan(&b.Label, &b.Value, &b.Limit, &upd); err != nil {
				return err
			}
			b.UpdatedAt = fromMicros(upd)
			out = append(out, b)
			return nil
		})
	return out, err
}

// UpdateCoreBlock writes the block update makes of the agent's blocks, and
// records key, in one write transaction (which also keeps two edits of a
// block from losing one).
func (ms *MemoryStore) UpdateCoreBlock(ctx context.Context, scope store.Scope, agentID, key string, update func([]memory.CoreBlock) (memory.CoreBlock, error)) (memory.CoreBlock, bool, error) {
	if err := store.CheckScope(scope); err != nil {
		return memory.CoreBlock{}, false, fmt.Errorf("sqlite: update core block: %w", err)
	}
	var out memory.CoreBlock
	var applied bool
	var refused error
	err := ms.s.writeTx(ctx, func(tx *sql.Tx) error {
		if key != "" {
			res, err := tx.ExecContext(ctx, `INSERT INTO core_memory_applied (org_id, user_id, project_id, agent_id, key, applied_at)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, scopeArgs(scope, agentID, key, micros(time.Now()))...)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return err // applied before
			}
		}
		blocks, err := coreBlocks(ctx, tx, scope, agentID)
		if err != nil {
			return err
		}
		b, err := update(blocks)
		if err != nil {
			refused = err
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO core_blocks (org_id, user_id, project_id, agent_id, label, value, lim, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_id, user_id, project_id, agent_id, label)
			DO UPDATE SET value = excluded.value, lim = excluded.lim, updated_at = excluded.updated_at`,
			scopeArgs(scope, agentID, b.Label, b.Value, b.Limit, micros(b.UpdatedAt))...); err != nil {
			return err
		}
		out, applied = b, true
		return nil
	})
	if refused != nil {
		return memory.CoreBlock{}, false, refused
	}
	if err != nil {
		return memory.CoreBlock{}, false, fail("update core block", err)
	}
	return out, applied, nil
}

// DeleteCoreBlock removes one block.
func (ms *MemoryStore) DeleteCoreBlock(ctx context.Context, scope store.Scope, agentID, label string) error {
	res, err := ms.s.w.ExecContext(ctx, `DELETE FROM core_blocks WHERE `+scopeCond+` AND agent_id = ? AND label = ?`, scopeArgs(scope, agentID, label)...)
	if err != nil {
		return fail("delete core block", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fail("delete core block", sql.ErrNoRows)
	}
	return nil
}

// SetQuotas sets the quotas of the store the memory store belongs to.
func (ms *MemoryStore) SetQuotas(q store.Quotas) { ms.s.SetQuotas(q) }

// Quotas returns the quotas in force.
func (ms *MemoryStore) Quotas() store.Quotas { return ms.s.Quotas() }
