package memory

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/openintern/openintern/store"
)

// Memory types (tiers kept in the memories table). Core blocks are CoreBlock;
// working memory is the run checkpoint in package store.
const (
	TypeEpisodic = "episodic"
	TypeArchival = "archival"
)

// Tier names, for documentation and the API.
const (
	TierCore     = "core"
	TierWorking  = "working"
	TierEpisodic = TypeEpisodic
	TierArchival = TypeArchival
)

// ValidType reports whether t is a type a Memory may have.
func ValidType(t string) bool { return t == TypeEpisodic || t == TypeArchival }

// ErrInvalid marks a request the service refuses (empty text, unknown type,
// a core block over its limit, ...). Callers map it to 400.
var ErrInvalid = errors.New("invalid")

// ErrEmbedder marks a failure of the embedder (its server unreachable or
// refusing): not the caller's fault, and worth retrying later. Callers map
// it to 503.
var ErrEmbedder = errors.New("embedder unavailable")

// Memory is one remembered text with its ownership and metadata.
type Memory struct {
	Scope      store.Scope       `json:"-"`
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	AgentID    string            `json:"agent_id,omitempty"`
	GroupID    string            `json:"group_id,omitempty"`
	Text       string            `json:"text"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Importance float64           `json:"importance"` // 0..1; 0 when not given
	Chunks     int               `json:"chunks"`
	CreatedAt  time.Time         `json:"created_at"`
}

// Chunk is one searchable piece of a Memory.
type Chunk struct {
	MemoryID string
	Seq      int    // 0-based position in the memory
	Text     string // the chunk's original text (snippets come from it)
	Tokens   []string
	Vector   []float32 // normalized; produced by Model
	Model    string
}

// Filter narrows a search. Zero fields match everything.
type Filter struct {
	Types    []string
	AgentID  string
	GroupID  string
	Metadata map[string]string // every key must have exactly this value
	After    time.Time         // created at or after
	Before   time.Time         // created before
}

// Hit is a chunk a leg of the search found, with its memory's fields.
type Hit struct {
	// ChunkID is the store's own handle of the chunk, when it gives one (0
	// otherwise): a store reads a hit's chunk again by it.
	ChunkID    int64
	MemoryID   string
	Seq        int
	Text       string
	Score      float64 // leg-specific; higher is better
	Type       string
	AgentID    string
	GroupID    string
	Importance float64
	CreatedAt  time.Time
	Metadata   map[string]string // the memory's (citations come from it)
}

// LazySearcher is a Store whose search legs can leave out what only the
// final results need (Text, Importance, Metadata), and read it afterwards
// for the few hits a search keeps: a hybrid search fuses some 40 candidates
// to return a handful, and reading every candidate's text cost a round trip
// per leg.
type LazySearcher interface {
	// VectorSearchLazy and TextSearchLazy are VectorSearch and TextSearch
	// whose hits may lack Text, Importance and Metadata (MemoryID and Seq
	// are always set).
	VectorSearchLazy(ctx context.Context, scope store.Scope, model string, vec []float32, f Filter, limit int) ([]Hit, error)
	TextSearchLazy(ctx context.Context, scope store.Scope, tokens []string, f Filter, limit int) ([]Hit, error)
	// FillHits reads Text, Importance and Metadata of the hits that lack
	// their text, in one round trip, and returns the hits in their order;
	// a hit whose chunk is gone (deleted since) is left out.
	FillHits(ctx context.Context, scope store.Scope, hits []Hit) ([]Hit, error)
}

// ChunkKey names a chunk by its memory and its place in it.
type ChunkKey struct {
	MemoryID string
	Seq      int
}

// FilledHits is what a LazySearcher's FillHits returns: hits, in order,
// those lacking their text given the Text, Importance and Metadata of their
// chunk in found, less those found lacks (deleted since the search).
func FilledHits(hits []Hit, found map[ChunkKey]Hit) []Hit {
	out := make([]Hit, 0, len(hits))
	for _, h := range hits {
		if h.Text == "" {
			f, ok := found[ChunkKey{h.MemoryID, h.Seq}]
			if !ok {
				continue
			}
			h.Text, h.Importance, h.Metadata = f.Text, f.Importance, f.Metadata
		}
		out = append(out, h)
	}
	return out
}

// Fusion is how a search combines its legs (see Config.Fusion): what a
// FusedSearcher needs to fuse as Service.Search does.
type Fusion struct {
	Method       string  // FusionScore or FusionRRF
	RRFK         float64 // reciprocal rank fusion constant
	TextWeight   float64
	VectorWeight float64
}

// FusedHit is a memory a fused search kept: its chosen chunk with every
// field of Hit read (Score is the fused score), and the legs that found it.
type FusedHit struct {
	Hit
	ByText, ByVector bool
}

// FusedSearcher is a Store that runs the full-text leg, fuses it with the
// vector leg's hits and reads the kept hits' texts in one statement, so that
// a hybrid search is one round trip after the vector leg (which a
// LazySearcher answers from memory). The fusion must equal Service.Search's
// in Go, which stays its definition: the same scores, found_by and chunk
// choice, and ties kept in the order memories were first seen (full-text
// leg first, then vector leg), with the same skips (vector hits with score
// <= 0, a memory's chunks after its first in each leg).
//
// It takes no filter: a filtered full-text leg plans its terms from their
// counts and reads whole posting lists joined to the filter's memories (two
// statements), and a filtered vector leg may need HNSW anyway, so filtered
// searches keep the two legs.
type FusedSearcher interface {
	// FusedSearch ranks up to limit chunks by full text (as TextSearch does
	// unfiltered), fuses them with vec (the vector leg's hits, best first;
	// only MemoryID, Seq and Score are read) and returns the best topK
	// memories, best first. A kept hit whose chunk is gone (deleted since
	// the vector leg) is left out, after the cut to topK, as FillHits does.
	FusedSearch(ctx context.Context, scope store.Scope, tokens []string, vec []Hit, limit, topK int, fu Fusion) ([]FusedHit, error)
}

// ChunkRef names a chunk whose vector a re-embed must compute.
type ChunkRef struct {
	ID       int64 // the store's own handle of the chunk
	Scope    store.Scope
	MemoryID string
	Seq      int
	Text     string
}

// NewMemory is a memory with its chunks, ready to store.
type NewMemory struct {
	Memory Memory
	Chunks []Chunk
}

// CoreBlock is one named block of an agent's core memory (a store type, so
// that a claim can read an agent's blocks with its run).
type CoreBlock = store.CoreBlock

// Store keeps memories, their chunks and vectors, and core blocks. Every
// method is scoped; another scope's memory is store.ErrNotFound.
type Store interface {
	// InsertMemory stores m and its chunks (vectors and tokens included)
	// atomically; store.ErrConflict when m.ID exists in the scope.
	InsertMemory(ctx context.Context, m Memory, chunks []Chunk) error
	// InsertMemories stores several memories in one transaction, all or
	// nothing (store.ErrConflict when an id exists): background writers share
	// one commit and one update of the term counts.
	InsertMemories(ctx context.Context, batch []NewMemory) error
	GetMemory(ctx context.Context, scope store.Scope, id string) (Memory, error)
	// ListMemories returns the memories f selects, newest first (ties by id),
	// and how many match in all. A blackboard is ListMemories by GroupID.
	ListMemories(ctx context.Context, scope store.Scope, f Filter, page store.Page) ([]Memory, int, error)
	DeleteMemory(ctx context.Context, scope store.Scope, id string) error
	// VectorSearch returns up to limit chunks by cosine similarity to vec,
	// among vectors of model only.
	VectorSearch(ctx context.Context, scope store.Scope, model string, vec []float32, f Filter, limit int) ([]Hit, error)
	// TextSearch returns up to limit chunks matching any of tokens, best first.
	TextSearch(ctx context.Context, scope store.Scope, tokens []string, f Filter, limit int) ([]Hit, error)
	// ChunksWithoutVector lists up to limit chunks (any scope) with no vector
	// of model and an id above afterID, in id order.
	ChunksWithoutVector(ctx context.Context, model string, afterID int64, limit int) ([]ChunkRef, error)
	// PutVectors stores vectors of model for the given chunks (same order).
	PutVectors(ctx context.Context, model string, refs []ChunkRef, vecs [][]float32) error

	CoreBlocks(ctx context.Context, scope store.Scope, agentID string) ([]CoreBlock, error)
	// UpdateCoreBlock gives update the agent's stored blocks and writes the
	// block it returns, in one transaction; an error from update writes
	// nothing and is returned as it is. A non-empty key (a tool call's)
	// commits with the write, and when key was applied before, update is not
	// called, nothing is written and applied is false: a call run again after
	// a crash edits the block once.
	UpdateCoreBlock(ctx context.Context, scope store.Scope, agentID, key string, update func(blocks []CoreBlock) (CoreBlock, error)) (b CoreBlock, applied bool, err error)
	DeleteCoreBlock(ctx context.Context, scope store.Scope, agentID, label string) error
}

// MetadataJSON encodes metadata for a store column ("{}" when empty).
func MetadataJSON(md map[string]string) []byte {
	if len(md) == 0 {
		return []byte("{}")
	}
	b, _ := json.Marshal(md)
	return b
}

// TermCounts is, per scope, how many of the batch's chunks hold each term
// (and, under "", how many chunks there are): what a store adds to its
// document frequencies for a write, or takes away for a delete.
func TermCounts(batch []NewMemory) map[store.Scope]map[string]int64 {
	out := map[store.Scope]map[string]int64{}
	for _, nm := range batch {
		df := out[nm.Memory.Scope]
		if df == nil {
			df = map[string]int64{}
			out[nm.Memory.Scope] = df
		}
		df[""] += int64(len(nm.Chunks))
		for _, c := range nm.Chunks {
			for _, t := range UniqueTokens(c.Tokens) {
				df[t]++
			}
		}
	}
	return out
}

// UsageOf is, per scope, what the batch's memories add to its usage (see
// store.Quotas): each store adds it in the write's transaction and checks
// the memory quota against the sum.
func UsageOf(batch []NewMemory) map[store.Scope]store.MemoryUsage {
	out := map[store.Scope]store.MemoryUsage{}
	for _, nm := range batch {
		u := out[nm.Memory.Scope]
		u.Memories++
		u.TextBytes += store.MemoryTextBytes(nm.Memory.Text)
		out[nm.Memory.Scope] = u
	}
	return out
}
