// Package vecindex is an exact in-memory vector index for the memory stores:
// per scope and embedding model, the scope's vectors in column order (one
// slice per dimension), so a search reads nothing from the database and
// scores only the dimensions where the query is non-zero (the hashed
// embedder's queries are sparse). Each vector is kept as int8 with its own
// scale, a quarter of float32's memory (100k chunks of 1024 dimensions take
// about 110 MB); the rounding moves a cosine by about 1e-3, so a store asks
// for a few more candidates than it needs and re-scores them exactly.
//
// A scope is loaded on its first search (or in the background, Load) through
// the store's Loader and kept up to date by the store's own writes (Insert,
// Remove, which never wait for a load); the scopes used
// least recently are dropped when the total passes the budget, and a scope
// larger than the budget is not kept (the store then searches otherwise).
package vecindex

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// DefaultBudget bounds the vectors an Index keeps in memory.
const DefaultBudget = 256 << 20

// Key names one scope's vectors of one model.
type Key struct {
	Scope store.Scope
	Model string
}

// Meta is what filters of a search look at, and what names a chunk's hit
// without reading the chunk (MemoryID and Seq; empty when the loader did
// not give them).
type Meta struct {
	Type, AgentID, GroupID string
	Created                int64 // Unix micros
	MemoryID               string
	Seq                    int
}

// Scored is a chunk id with its similarity to the query.
type Scored struct {
	ID    int64
	Score float64
	// Meta is the chunk's, as loaded or inserted (set by Index.Search).
	Meta Meta
}

// Loader feeds every vector of a key to add, in any order.
type Loader func(ctx context.Context, add func(id int64, vec []float32, m Meta) error) error

// Index holds the loaded scopes.
type Index struct {
	mu     sync.Mutex
	budget int64
	used   int64
	scopes map[Key]*entry
	tooBig map[Key]time.Time // scopes found over budget, and when
}

// An entry is loaded without its lock held: the load fills a fresh set of
// vectors while writes to the scope queue up in pending, and the queue is
// applied when the load is installed. So a slow first load (seconds at 100k
// chunks) never holds up a write, and a search that does not want to wait
// can go elsewhere meanwhile.
type entry struct {
	mu      sync.RWMutex
	ready   bool           // loaded; false while loading or after a failed load
	dead    bool           // dropped: writers and searches must not use it
	loading bool           // the first load is running
	pending []pendingWrite // writes made while loading, in order
	loaded  chan struct{}  // closed when the first load ends, however it ends
	vectors
	lastUse time.Time // under Index.mu
	bytes   int64     // under Index.mu
}

// vectors is one scope's vectors of one model.
type vectors struct {
	dim   int
	cols  [][]int8  // cols[d][i]: dimension d of chunk i, in units of scale[i]
	scale []float32 // per chunk
	ids   []int64
	meta  []Meta
	pos   map[int64]int
	maxID int64
}

func newVectors(dim int) *vectors {
	return &vectors{dim: dim, cols: make([][]int8, dim), pos: map[int64]int{}}
}

// pendingWrite is an Insert (vec set) or a Remove made during a load.
type pendingWrite struct {
	id   int64
	vec  []float32
	meta Meta
}

// New returns an empty index of the given budget in bytes.
func New(budget int64) *Index {
	return &Index{budget: budget, scopes: map[Key]*entry{}, tooBig: map[Key]time.Time{}}
}

// EntryBytes is the memory one indexed chunk of dim dimensions costs (48
// of it for the memory id and seq in its Meta).
func EntryBytes(dim int) int64 { return int64(dim) + 84 + 48 }

// SetBudget changes the budget (0 keeps nothing); it applies from the next
// load or write.
func (x *Index) SetBudget(n int64) {
	x.mu.Lock()
	x.budget = n
	clear(x.tooBig)
	x.mu.Unlock()
}

// Budget returns the budget in force (0: the index keeps nothing).
func (x *Index) Budget() int64 { return x.budgetBytes() }

func (x *Index) budgetBytes() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.budget
}

// tooBigFor is how long a scope found over budget is not tried again: each
// try reads a budget's worth of vectors before giving up.
const tooBigFor = 10 * time.Minute

// get returns the key's entry, creating it (not loaded) when absent; nil
// when the scope was recently found over budget.
func (x *Index) get(k Key) (e *entry, created bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := x.tooBig[k]; ok && time.Since(t) < tooBigFor {
		return nil, false
	}
	e = x.scopes[k]
	if e == nil {
		e = &entry{loading: true, loaded: make(chan struct{})}
		x.scopes[k] = e
		created = true
	}
	e.lastUse = time.Now()
	return e, created
}

func (x *Index) peek(k Key) *entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.scopes[k]
}

// touch is peek for a search: it counts as a use.
func (x *Index) touch(k Key) *entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.scopes[k]
	if e != nil {
		e.lastUse = time.Now()
	}
	return e
}

// Len is how many vectors of k are loaded, and whether k is loaded at all.
func (x *Index) Len(k Key) (int, bool) {
	e := x.peek(k)
	if e == nil {
		return 0, false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.ids), e.ready && !e.dead
}

// MaxID is the largest chunk id loaded for k (0 when k is not loaded): a
// store that shares its database with other writers reloads from there.
func (x *Index) MaxID(k Key) int64 {
	e := x.peek(k)
	if e == nil {
		return 0
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.ready || e.dead {
		return 0
	}
	return e.maxID
}

// Missing returns the ids of ids that k's loaded entry lacks (none when k is
// not loaded).
func (x *Index) Missing(k Key, ids []int64) []int64 {
	e := x.peek(k)
	if e == nil {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.ready || e.dead {
		return nil
	}
	var out []int64
	for _, id := range ids {
		if _, ok := e.pos[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// drop forgets e (after a failed load).
func (x *Index) drop(k Key, e *entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.scopes[k] == e {
		delete(x.scopes, k)
		x.used -= e.bytes
	}
}

// DropModel forgets every scope's vectors of model (they were replaced).
func (x *Index) DropModel(model string) {
	x.mu.Lock()
	var gone []*entry
	for k, e := range x.scopes {
		if k.Model == model {
			delete(x.scopes, k)
			x.used -= e.bytes
			gone = append(gone, e)
		}
	}
	x.mu.Unlock()
	for _, e := range gone {
		e.kill()
	}
}

// resize records that e now holds bytes, and drops the least recently used
// other scopes while over budget; e itself is dropped (and its key
// remembered) when it alone is over budget.
func (x *Index) resize(k Key, e *entry, bytes int64) (keep bool) {
	x.mu.Lock()
	if x.scopes[k] != e {
		x.mu.Unlock()
		return false
	}
	x.used += bytes - e.bytes
	e.bytes = bytes
	if bytes > x.budget {
		delete(x.scopes, k)
		x.used -= bytes
		x.tooBig[k] = time.Now()
		x.mu.Unlock()
		return false
	}
	var gone []*entry
	for x.used > x.budget {
		var oldK Key
		var old *entry
		for k2, e2 := range x.scopes {
			if e2 != e && (old == nil || e2.lastUse.Before(old.lastUse)) {
				oldK, old = k2, e2
			}
		}
		if old == nil {
			break
		}
		delete(x.scopes, oldK)
		x.used -= old.bytes
		gone = append(gone, old)
	}
	x.mu.Unlock()
	for _, g := range gone {
		g.kill()
	}
	return true
}

var errTooBig = errors.New("vecindex: over budget")

// load fills a new entry through load, off its lock, then installs the
// vectors with the writes made meanwhile.
func (x *Index) load(ctx context.Context, k Key, e *entry, dim int, load Loader) error {
	defer close(e.loaded)
	fresh := newVectors(dim)
	maxN := x.budgetBytes() / EntryBytes(dim)
	err := load(ctx, func(id int64, vec []float32, m Meta) error {
		if int64(len(fresh.ids)) >= maxN {
			return errTooBig
		}
		fresh.add(id, vec, m)
		return nil
	})
	keep := false
	switch {
	case err == nil:
		keep = x.resize(k, e, int64(len(fresh.ids))*EntryBytes(dim))
	case errors.Is(err, errTooBig):
		x.resize(k, e, x.budgetBytes()+1) // remembered as too big
		err = nil
	default:
		x.drop(k, e)
	}
	e.mu.Lock()
	pending := e.pending
	e.loading, e.pending = false, nil
	if !keep || e.dead {
		e.release()
		e.mu.Unlock()
		return err
	}
	e.vectors = *fresh
	for _, w := range pending {
		if w.vec != nil {
			e.add(w.id, w.vec, w.meta)
		} else {
			e.remove(w.id)
		}
	}
	e.ready = true
	n := len(e.ids)
	e.mu.Unlock()
	if len(pending) > 0 && !x.resize(k, e, int64(n)*EntryBytes(dim)) {
		e.kill()
	}
	return nil
}

// wait waits for e's first load to end; with block false it only reports
// whether it has.
func (e *entry) wait(ctx context.Context, block bool) (bool, error) {
	select {
	case <-e.loaded:
		return true, nil
	default:
	}
	if !block {
		return false, nil
	}
	select {
	case <-e.loaded:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Load loads k in the calling goroutine unless it is loaded, loading or
// recently found over budget; it does not wait for a load already running.
// A store calls it in the background so searches need not wait.
func (x *Index) Load(ctx context.Context, k Key, dim int, load Loader) error {
	e, created := x.get(k)
	if e == nil || !created {
		return nil
	}
	return x.load(ctx, k, e, dim, load)
}

// Loadable reports whether k is loaded or could be: false when the budget
// is 0 or k was recently found over it.
func (x *Index) Loadable(k Key) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := x.tooBig[k]; (ok && time.Since(t) < tooBigFor) || x.budget <= 0 {
		return false
	}
	return true
}

// kill marks e dropped and frees its vectors.
func (e *entry) kill() {
	e.mu.Lock()
	e.release()
	e.mu.Unlock()
}

// release marks e dropped and frees its vectors. Caller holds e.mu.
func (e *entry) release() {
	e.dead, e.ready = true, false
	e.vectors, e.pending = vectors{}, nil
}

// Insert adds vectors of k to its loaded entry (a no-op when k is not
// loaded: its next load reads them); ids already there are skipped.
func (x *Index) Insert(k Key, ids []int64, vecs [][]float32, metas []Meta) {
	e := x.peek(k)
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.loading && !e.dead {
		for i, id := range ids {
			e.pending = append(e.pending, pendingWrite{id: id, vec: slices.Clone(vecs[i]), meta: metas[i]})
		}
		return
	}
	if !e.ready || e.dead {
		return
	}
	for i, id := range ids {
		e.add(id, vecs[i], metas[i])
	}
	if !x.resize(k, e, int64(len(e.ids))*EntryBytes(e.dim)) {
		e.dead = true
	}
}

// InsertMemory adds the vectors of a stored memory's chunks (ids[i] is the
// stored id of chunks[i]) to the loaded entries of its scope, one per model.
func (x *Index) InsertMemory(m memory.Memory, chunks []memory.Chunk, ids []int64) {
	meta := Meta{Type: m.Type, AgentID: m.AgentID, GroupID: m.GroupID, Created: m.CreatedAt.UnixMicro(), MemoryID: m.ID}
	type added struct {
		ids   []int64
		vecs  [][]float32
		metas []Meta
	}
	byModel := map[string]*added{}
	for i, c := range chunks {
		if c.Vector == nil {
			continue
		}
		a := byModel[c.Model]
		if a == nil {
			a = &added{}
			byModel[c.Model] = a
		}
		cm := meta
		cm.Seq = c.Seq
		a.ids, a.vecs, a.metas = append(a.ids, ids[i]), append(a.vecs, c.Vector), append(a.metas, cm)
	}
	for model, a := range byModel {
		x.Insert(Key{Scope: m.Scope, Model: model}, a.ids, a.vecs, a.metas)
	}
}

// Remove deletes chunk ids from every loaded model of scope.
func (x *Index) Remove(scope store.Scope, ids []int64) {
	x.mu.Lock()
	var es []*entry
	for k, e := range x.scopes {
		if k.Scope == scope {
			es = append(es, e)
		}
	}
	x.mu.Unlock()
	for _, e := range es {
		e.mu.Lock()
		for _, id := range ids {
			if e.loading {
				e.pending = append(e.pending, pendingWrite{id: id})
			} else {
				e.remove(id)
			}
		}
		e.mu.Unlock()
	}
}

// add appends a chunk's vector unless it is already there. Caller holds e.mu.
func (e *vectors) add(id int64, vec []float32, m Meta) {
	if _, ok := e.pos[id]; ok || len(vec) != e.dim {
		return
	}
	var top float32
	for _, v := range vec {
		top = max(top, v, -v)
	}
	unit := top / 127
	e.pos[id] = len(e.ids)
	e.ids = append(e.ids, id)
	e.meta = append(e.meta, m)
	e.scale = append(e.scale, unit)
	e.maxID = max(e.maxID, id)
	for d, v := range vec {
		var q int8
		if unit > 0 {
			q = int8(math.Round(float64(v / unit)))
		}
		e.cols[d] = append(e.cols[d], q)
	}
}

// remove deletes a chunk by moving the last one into its place. Caller holds e.mu.
func (e *vectors) remove(id int64) {
	i, ok := e.pos[id]
	if !ok {
		return
	}
	last := len(e.ids) - 1
	if i != last {
		e.ids[i], e.meta[i], e.scale[i] = e.ids[last], e.meta[last], e.scale[last]
		e.pos[e.ids[i]] = i
		for d := range e.cols {
			e.cols[d][i] = e.cols[d][last]
		}
	}
	e.ids, e.meta, e.scale = e.ids[:last], e.meta[:last], e.scale[:last]
	for d := range e.cols {
		e.cols[d] = e.cols[d][:last]
	}
	delete(e.pos, id)
}

// Searchable reports whether the index can apply f (metadata filters need
// the memories table).
func Searchable(f memory.Filter) bool { return len(f.Metadata) == 0 }

// Search returns up to limit chunks of k passing f by their (rounded)
// similarity to q, best first, loading k through load on its first search
// and waiting for a load already running. A nil load searches only a loaded
// k and never waits. ok is false when k is not searchable here (over budget,
// not loaded, or still loading without load); the caller then searches some
// other way.
func (x *Index) Search(ctx context.Context, k Key, q []float32, f memory.Filter, limit int, load Loader) (top []Scored, ok bool, err error) {
	var e *entry
	if load == nil {
		if e = x.touch(k); e == nil {
			return nil, false, nil
		}
	} else {
		var created bool
		if e, created = x.get(k); e == nil {
			return nil, false, nil
		}
		if created {
			if err := x.load(ctx, k, e, len(q), load); err != nil {
				return nil, false, err
			}
		}
	}
	if done, err := e.wait(ctx, load != nil); !done || err != nil {
		return nil, false, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.ready || e.dead || e.dim != len(q) {
		return nil, false, nil
	}
	return e.search(q, f, limit), true, nil
}

// parallelFrom is the size from which a search scores on several cores.
const parallelFrom = 16_384

// search scores every chunk on the query's non-zero dimensions and keeps the
// limit best passing f. Caller holds e.mu (read).
func (e *vectors) search(q []float32, f memory.Filter, limit int) []Scored {
	n := len(e.ids)
	if n == 0 || limit <= 0 {
		return nil
	}
	scores := make([]float32, n)
	parts := 1
	if n >= parallelFrom {
		parts = min(runtime.GOMAXPROCS(0), 4)
	}
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.score(q, scores, lo, hi)
		}()
	}
	wg.Wait()

	var after, before int64
	if !f.After.IsZero() {
		after = f.After.UnixMicro()
	}
	if !f.Before.IsZero() {
		before = f.Before.UnixMicro()
	}
	filtered := len(f.Types) > 0 || f.AgentID != "" || f.GroupID != "" || after != 0 || before != 0
	h := make(minHeap, 0, limit+1)
	for i, s := range scores {
		sc := float64(s)
		if len(h) == limit && sc <= h[0].Score {
			continue
		}
		if filtered {
			m := &e.meta[i]
			if (len(f.Types) > 0 && !slices.Contains(f.Types, m.Type)) || (f.AgentID != "" && m.AgentID != f.AgentID) ||
				(f.GroupID != "" && m.GroupID != f.GroupID) || (after != 0 && m.Created < after) || (before != 0 && m.Created >= before) {
				continue
			}
		}
		heap.Push(&h, Scored{ID: e.ids[i], Score: sc})
		if len(h) > limit {
			heap.Pop(&h)
		}
	}
	out := make([]Scored, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(Scored)
		out[i].Meta = e.meta[e.pos[out[i].ID]]
	}
	return out
}

// scoreBlock is how many chunks are scored at once: their scores stay in
// the L1 cache while every query dimension is added, instead of streaming
// the whole score array once per dimension.
const scoreBlock = 2048

// queryLevels is the largest magnitude of a query component after the query
// is scaled to integers: fine enough that its rounding (under 1/4000 of the
// largest component) moves no score as much as the chunks' own int8
// rounding, and small enough that a sum over 4000 dimensions of
// queryLevels × 127 stays within int32.
const queryLevels = 2047

// score fills scores[lo:hi] with the rounded similarities. The query is
// scaled to integers, so the inner loop multiplies and adds int32s (no
// int-to-float conversion per element); each block's sums are scaled back
// once.
func (e *vectors) score(q []float32, scores []float32, lo, hi int) {
	type term struct {
		d int
		v int32
	}
	var top float32
	for d, v := range q {
		if d < len(e.cols) {
			top = max(top, v, -v)
		}
	}
	if top == 0 {
		clear(scores[lo:hi])
		return
	}
	qscale := queryLevels / top
	var terms []term
	for d, v := range q {
		if v != 0 && d < len(e.cols) {
			if qi := int32(math.Round(float64(v * qscale))); qi != 0 {
				terms = append(terms, term{d, qi})
			}
		}
	}
	acc := make([]int32, scoreBlock)
	for b := lo; b < hi; b += scoreBlock {
		end := min(b+scoreBlock, hi)
		sc := acc[:end-b]
		clear(sc)
		for _, t := range terms {
			col := e.cols[t.d][b:end]
			col = col[:len(sc)]
			v := t.v
			i := 0
			for ; i+4 <= len(col); i += 4 { // unrolled: fewer bounds checks and loop branches
				c4, s4 := col[i:i+4:i+4], sc[i:i+4:i+4]
				s4[0] += v * int32(c4[0])
				s4[1] += v * int32(c4[1])
				s4[2] += v * int32(c4[2])
				s4[3] += v * int32(c4[3])
			}
			for ; i < len(col); i++ {
				sc[i] += v * int32(col[i])
			}
		}
		out := scores[b:end]
		for i, u := range e.scale[b:end] {
			out[i] = float32(sc[i]) * (u / qscale)
		}
	}
}

// SortBest sorts s best first (ties: newer chunk first).
func SortBest(s []Scored) {
	slices.SortFunc(s, func(a, b Scored) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return cmp.Compare(b.ID, a.ID)
	})
}

type minHeap []Scored

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].Score < h[j].Score }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(v any)        { *h = append(*h, v.(Scored)) }
func (h *minHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}
