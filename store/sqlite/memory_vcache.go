package sqlite

import (
	"container/heap"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// DefaultVectorCacheBytes bounds the vectors a MemoryStore keeps in memory.
const DefaultVectorCacheBytes = 256 << 20

// vecCache keeps, per scope and embedding model, the scope's vectors in
// memory in column order (one slice per dimension), so a search reads no
// blobs and scores only the dimensions where the query is non-zero (the
// hashed embedder's queries are sparse). Each vector is kept as int8 with its
// own scale (a quarter of float32's memory, so 100k chunks of 1024
// dimensions take about 110 MB); the rounding moves a cosine by about 1e-3,
// far less than separates neighbours in a ranking. It is filled on a scope's first
// search and kept up to date by the writes of its MemoryStore; the scopes
// used least recently are dropped when the total passes the budget, and a
// scope larger than the budget is not cached (its searches scan the table).
type vecCache struct {
	mu     sync.Mutex
	budget int64
	used   int64
	scopes map[vcKey]*vcScope
	tooBig map[vcKey]time.Time // scopes found over budget, and when
}

type vcKey struct {
	scope store.Scope
	model string
}

type vcMeta struct {
	typ, agent, group string
	created           int64 // micros
}

type vcScope struct {
	mu      sync.RWMutex
	ready   bool // loaded; false while loading or after a failed load
	dead    bool // evicted: writers and searches must not use it
	dim     int
	cols    [][]int8  // cols[d][i]: dimension d of chunk i, in units of scale[i]
	scale   []float32 // per chunk
	ids     []int64
	meta    []vcMeta
	pos     map[int64]int
	lastUse time.Time // under vecCache.mu
	bytes   int64     // under vecCache.mu
}

func newVecCache(budget int64) *vecCache {
	return &vecCache{budget: budget, scopes: map[vcKey]*vcScope{}, tooBig: map[vcKey]time.Time{}}
}

func (c *vecCache) budgetBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.budget
}

// entryBytes is the memory one cached chunk costs.
func entryBytes(dim int) int64 { return int64(dim) + 84 }

// get returns the scope's cache entry, creating it (not loaded) when absent;
// nil when the scope is known to be over budget.
func (c *vecCache) get(k vcKey) (e *vcScope, created bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tooBig[k]; ok && time.Since(t) < time.Minute {
		return nil, false
	}
	e = c.scopes[k]
	if e == nil {
		e = &vcScope{pos: map[int64]int{}}
		c.scopes[k] = e
		created = true
	}
	e.lastUse = time.Now()
	return e, created
}

// peek returns the scope's entry when it exists.
func (c *vecCache) peek(k vcKey) *vcScope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scopes[k]
}

// scopeEntries returns the entries of every model of scope.
func (c *vecCache) scopeEntries(scope store.Scope) []*vcScope {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*vcScope
	for k, e := range c.scopes {
		if k.scope == scope {
			out = append(out, e)
		}
	}
	return out
}

// drop forgets an entry (after a failed load, or every entry of a model
// whose vectors were replaced).
func (c *vecCache) drop(k vcKey, e *vcScope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scopes[k] == e {
		delete(c.scopes, k)
		c.used -= e.bytes
	}
}

func (c *vecCache) dropModel(model string) {
	c.mu.Lock()
	var gone []*vcScope
	for k, e := range c.scopes {
		if k.model == model {
			delete(c.scopes, k)
			c.used -= e.bytes
			gone = append(gone, e)
		}
	}
	c.mu.Unlock()
	for _, e := range gone {
		e.mu.Lock()
		e.dead = true
		e.mu.Unlock()
	}
}

// resize records that e now holds bytes, and evicts the least recently used
// other scopes while over budget; e itself is dropped (and its key
// remembered) when it alone is over budget.
func (c *vecCache) resize(k vcKey, e *vcScope, bytes int64) (keep bool) {
	c.mu.Lock()
	if c.scopes[k] != e {
		c.mu.Unlock()
		return false
	}
	c.used += bytes - e.bytes
	e.bytes = bytes
	if bytes > c.budget {
		delete(c.scopes, k)
		c.used -= bytes
		c.tooBig[k] = time.Now()
		c.mu.Unlock()
		return false
	}
	var gone []*vcScope
	for c.used > c.budget {
		var oldK vcKey
		var old *vcScope
		for k2, e2 := range c.scopes {
			if e2 != e && (old == nil || e2.lastUse.Before(old.lastUse)) {
				oldK, old = k2, e2
			}
		}
		if old == nil {
			break
		}
		delete(c.scopes, oldK)
		c.used -= old.bytes
		gone = append(gone, old)
	}
	c.mu.Unlock()
	for _, g := range gone {
		g.mu.Lock()
		g.dead = true
		g.cols, g.scale, g.ids, g.meta, g.pos = nil, nil, nil, nil, nil
		g.mu.Unlock()
	}
	return true
}

// add appends a chunk's vector unless it is already there. Caller holds e.mu.
func (e *vcScope) add(id int64, vec []float32, m vcMeta) bool {
	if _, ok := e.pos[id]; ok || len(vec) != e.dim {
		return false
	}
	var top float32
	for _, x := range vec {
		top = max(top, x, -x)
	}
	unit := top / 127
	e.pos[id] = len(e.ids)
	e.ids = append(e.ids, id)
	e.meta = append(e.meta, m)
	e.scale = append(e.scale, unit)
	for d, x := range vec {
		var q int8
		if unit > 0 {
			q = int8(math.Round(float64(x / unit)))
		}
		e.cols[d] = append(e.cols[d], q)
	}
	return true
}

// remove deletes a chunk by moving the last one into its place. Caller holds e.mu.
func (e *vcScope) remove(id int64) bool {
	i, ok := e.pos[id]
	if !ok {
		return false
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
	return true
}

// cacheable reports whether the cache can apply f (metadata filters need
// the memories table).
func cacheable(f memory.Filter) bool { return len(f.Metadata) == 0 }

type scoredChunk struct {
	id    int64
	score float64
}

type minHeap []scoredChunk

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].score < h[j].score }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(scoredChunk)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// search returns the limit best chunks passing f, best first. Caller holds e.mu (read).
func (e *vcScope) search(q []float32, f memory.Filter, limit int) []scoredChunk {
	n := len(e.ids)
	if n == 0 || limit <= 0 {
		return nil
	}
	scores := make([]float32, n)
	for d, x := range q {
		if x == 0 || d >= len(e.cols) {
			continue
		}
		col := e.cols[d][:n]
		for i, v := range col {
			scores[i] += x * float32(v)
		}
	}
	for i, u := range e.scale[:n] {
		scores[i] *= u
	}
	var after, before int64
	if !f.After.IsZero() {
		after = micros(f.After)
	}
	if !f.Before.IsZero() {
		before = micros(f.Before)
	}
	filtered := len(f.Types) > 0 || f.AgentID != "" || f.GroupID != "" || after != 0 || before != 0
	h := make(minHeap, 0, limit+1)
	for i, s := range scores {
		sc := float64(s)
		if len(h) == limit && sc <= h[0].score {
			continue
		}
		if filtered {
			m := &e.meta[i]
			if (len(f.Types) > 0 && !slices.Contains(f.Types, m.typ)) || (f.AgentID != "" && m.agent != f.AgentID) ||
				(f.GroupID != "" && m.group != f.GroupID) || (after != 0 && m.created < after) || (before != 0 && m.created >= before) {
				continue
			}
		}
		heap.Push(&h, scoredChunk{e.ids[i], sc})
		if len(h) > limit {
			heap.Pop(&h)
		}
	}
	out := make([]scoredChunk, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(scoredChunk)
	}
	return out
}
