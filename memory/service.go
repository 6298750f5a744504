package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/openintern/openintern/store"
)

// Search modes.
const (
	ModeHybrid   = "hybrid"
	ModeVector   = "vector"
	ModeFullText = "fulltext"
)

// Config configures a Service. Store and Embedder are required.
type Config struct {
	Store    Store
	Embedder Embedder
	Chunker  Chunker
	Logger   *slog.Logger

	MaxTextBytes   int     // largest memory accepted by Write; default 4 MiB
	CoreBlockLimit int     // default size limit of a core block, in runes; default 2000
	Candidates     int     // chunks fetched per leg before fusion; default 60
	RRFK           float64 // reciprocal rank fusion constant; default 60
	VectorWeight   float64 // weight of the vector leg in fusion; default 0.25
	TextWeight     float64 // weight of the full-text leg in fusion; default 1
	SnippetRunes   int     // snippet length; default 240
	// Fusion is how the legs are combined: FusionScore (default) or FusionRRF.
	Fusion string
}

// Fusion methods.
const (
	// FusionRRF is reciprocal rank fusion: sum of weight/(k + rank).
	FusionRRF = "rrf"
	// FusionScore sums each leg's score divided by the leg's best score,
	// times the leg's weight (min-max normalization measured worse).
	FusionScore = "score"
)

// Service writes, searches and edits memories.
type Service struct {
	cfg    Config
	st     Store
	emb    Embedder
	logger *slog.Logger
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Embedder == nil {
		return nil, errors.New("memory: new: a store and an embedder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = 4 << 20
	}
	if cfg.CoreBlockLimit <= 0 {
		cfg.CoreBlockLimit = 2000
	}
	if cfg.Candidates <= 0 {
		cfg.Candidates = 60
	}
	if cfg.RRFK <= 0 {
		cfg.RRFK = 60
	}
	if cfg.Fusion == "" {
		cfg.Fusion = FusionScore
	}
	if cfg.VectorWeight <= 0 {
		// The local hashed embedder has no idf, so its leg is the weaker
		// one; on the development sets (nfcorpus, rgb-zh) a quarter of the
		// full-text weight gave the best fused nDCG@10.
		cfg.VectorWeight = 0.25
	}
	if cfg.TextWeight <= 0 {
		cfg.TextWeight = 1
	}
	if cfg.SnippetRunes <= 0 {
		cfg.SnippetRunes = 240
	}
	return &Service{cfg: cfg, st: cfg.Store, emb: cfg.Embedder, logger: cfg.Logger}, nil
}

// Embedder returns the service's embedder.
func (s *Service) Embedder() Embedder { return s.emb }

// WriteRequest is a memory to store.
type WriteRequest struct {
	ID         string // optional: a fixed id makes the write idempotent (store.ErrConflict when it exists)
	Scope      store.Scope
	Type       string // episodic or archival; default episodic
	AgentID    string
	GroupID    string
	Text       string
	Metadata   map[string]string
	Importance float64 // 0..1
	CreatedAt  time.Time
}

// NewMemoryID returns a fresh memory id.
func NewMemoryID() string { return "mem_" + strings.ReplaceAll(uuid.NewString(), "-", "") }

// Write chunks, embeds and indexes a memory, and stores it in one transaction.
func (s *Service) Write(ctx context.Context, req WriteRequest) (Memory, error) {
	nm, err := s.prepare(ctx, req)
	if err != nil {
		return Memory{}, fmt.Errorf("memory: write: %w", err)
	}
	if err := s.st.InsertMemory(ctx, nm.Memory, nm.Chunks); err != nil {
		return Memory{}, fmt.Errorf("memory: write: %w", err)
	}
	return nm.Memory, nil
}

// WriteBatch writes several memories in one transaction, all or nothing.
func (s *Service) WriteBatch(ctx context.Context, reqs []WriteRequest) ([]Memory, error) {
	batch := make([]NewMemory, 0, len(reqs))
	for _, req := range reqs {
		nm, err := s.prepare(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("memory: write batch: %w", err)
		}
		batch = append(batch, nm)
	}
	if err := s.st.InsertMemories(ctx, batch); err != nil {
		return nil, fmt.Errorf("memory: write batch: %w", err)
	}
	out := make([]Memory, len(batch))
	for i, nm := range batch {
		out[i] = nm.Memory
	}
	return out, nil
}

// prepare checks a request and chunks, tokenizes and embeds its text.
func (s *Service) prepare(ctx context.Context, req WriteRequest) (NewMemory, error) {
	if req.Type == "" {
		req.Type = TypeEpisodic
	}
	if !ValidType(req.Type) {
		return NewMemory{}, fmt.Errorf("type %q is not episodic or archival: %w", req.Type, ErrInvalid)
	}
	text := strings.TrimSpace(req.Text)
	if text == "" {
		return NewMemory{}, fmt.Errorf("empty text: %w", ErrInvalid)
	}
	if len(text) > s.cfg.MaxTextBytes || !utf8.ValidString(text) {
		return NewMemory{}, fmt.Errorf("text is not valid UTF-8 of at most %d bytes: %w", s.cfg.MaxTextBytes, ErrInvalid)
	}
	if req.Importance < 0 || req.Importance > 1 || math.IsNaN(req.Importance) {
		return NewMemory{}, fmt.Errorf("importance must be in [0, 1]: %w", ErrInvalid)
	}
	pieces := s.cfg.Chunker.Split(text)
	vecs, err := s.emb.Embed(ctx, pieces)
	if err != nil {
		if ctx.Err() != nil {
			return NewMemory{}, fmt.Errorf("embed: %w", err)
		}
		return NewMemory{}, fmt.Errorf("embed: %w: %w", ErrEmbedder, err)
	}
	created := req.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	m := Memory{
		Scope: req.Scope, ID: firstNonEmpty(req.ID, NewMemoryID()), Type: req.Type, AgentID: req.AgentID, GroupID: req.GroupID,
		Text: text, Metadata: req.Metadata, Importance: req.Importance, Chunks: len(pieces),
		CreatedAt: created.UTC().Truncate(time.Microsecond),
	}
	chunks := make([]Chunk, len(pieces))
	for i, p := range pieces {
		chunks[i] = Chunk{MemoryID: m.ID, Seq: i, Text: p, Tokens: Tokenize(p), Vector: vecs[i], Model: s.emb.Model()}
	}
	return NewMemory{Memory: m, Chunks: chunks}, nil
}

// Get returns one memory in full.
func (s *Service) Get(ctx context.Context, scope store.Scope, id string) (Memory, error) {
	m, err := s.st.GetMemory(ctx, scope, id)
	if err != nil {
		return Memory{}, fmt.Errorf("memory: get: %w", err)
	}
	return m, nil
}

// List returns the memories f selects, newest first, and how many match.
func (s *Service) List(ctx context.Context, scope store.Scope, f Filter, page store.Page) ([]Memory, int, error) {
	ms, total, err := s.st.ListMemories(ctx, scope, f, page)
	if err != nil {
		return nil, 0, fmt.Errorf("memory: list: %w", err)
	}
	return ms, total, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Delete removes a memory, its chunks and vectors.
func (s *Service) Delete(ctx context.Context, scope store.Scope, id string) error {
	if err := s.st.DeleteMemory(ctx, scope, id); err != nil {
		return fmt.Errorf("memory: delete: %w", err)
	}
	return nil
}

// SearchRequest is one search.
type SearchRequest struct {
	Scope  store.Scope
	Query  string
	TopK   int // default 5, at most 100
	Filter Filter
	Mode   string // hybrid (default), vector or fulltext

	// ImportanceWeight > 0 multiplies a hit's score by 1 + w*importance.
	ImportanceWeight float64
	// RecencyHalfLife > 0 multiplies a hit's score by (1 + 2^(-age/half-life)) / 2.
	RecencyHalfLife time.Duration
	// Candidates > 0 is how many chunks each leg fetches before fusion
	// (at least 3 × TopK), in place of Config.Candidates: fewer are cheaper.
	Candidates int
}

// Result is one memory a search found: a snippet, not the full text.
type Result struct {
	ID        string    `json:"id"`
	Snippet   string    `json:"snippet"`
	Score     float64   `json:"score"`
	Type      string    `json:"type"`
	AgentID   string    `json:"agent_id,omitempty"`
	GroupID   string    `json:"group_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Chunk     int       `json:"chunk"`
	FoundBy   []string  `json:"found_by"` // "vector", "fulltext" or both
	// Source cites the document the memory was ingested from; absent otherwise.
	Source *Citation `json:"source,omitempty"`
}

// Search runs the vector and full-text legs in parallel, fuses them (see
// Config.Fusion), keeps one result per memory (its best chunk) and applies
// the optional importance and recency weights. A hybrid search whose vector
// leg fails (the embedder is unreachable) answers from full text alone. On a
// FusedSearcher, an unweighted, unfiltered search fuses in the store instead
// (see fusedSearch); the code below stays the definition of the fusion.
func (s *Service) Search(ctx context.Context, req SearchRequest) ([]Result, error) {
	if req.TopK <= 0 {
		req.TopK = 5
	}
	req.TopK = min(req.TopK, 100)
	if req.Mode == "" {
		req.Mode = ModeHybrid
	}
	if req.Mode != ModeHybrid && req.Mode != ModeVector && req.Mode != ModeFullText {
		return nil, fmt.Errorf("memory: search: unknown mode %q: %w", req.Mode, ErrInvalid)
	}
	q := strings.TrimSpace(req.Query)
	if q == "" {
		return nil, fmt.Errorf("memory: search: empty query: %w", ErrInvalid)
	}
	limit := s.cfg.Candidates
	if req.Candidates > 0 {
		limit = req.Candidates
	}
	limit = max(limit, 3*req.TopK)
	tokens := UniqueTokens(Tokenize(q))
	// Importance weighs every candidate, so it needs them whole.
	lazy, _ := s.st.(LazySearcher)
	if req.ImportanceWeight > 0 {
		lazy = nil
	}
	// The importance and recency weights stay in Go (they would put the
	// clock and every candidate's importance into the statement), and so do
	// filters (see FusedSearcher).
	if fs, ok := s.st.(FusedSearcher); ok && req.Mode != ModeVector && req.ImportanceWeight <= 0 &&
		req.RecencyHalfLife <= 0 && req.Filter.isZero() {
		return s.fusedSearch(ctx, fs, lazy, req, q, tokens, limit)
	}

	var (
		wg               sync.WaitGroup
		vecHits, txtHits []Hit
		vecErr, txtErr   error
	)
	if req.Mode != ModeFullText {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vecHits, vecErr = s.vectorLeg(ctx, lazy, req, q, limit)
		}()
	}
	if req.Mode != ModeVector && len(tokens) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if lazy != nil {
				txtHits, txtErr = lazy.TextSearchLazy(ctx, req.Scope, tokens, req.Filter, limit)
			} else {
				txtHits, txtErr = s.st.TextSearch(ctx, req.Scope, tokens, req.Filter, limit)
			}
		}()
	}
	wg.Wait()
	if vecErr != nil && txtErr == nil && req.Mode == ModeHybrid && ctx.Err() == nil {
		// A remote embedder being down must not take recall down with it:
		// the full-text leg still answers, and the log says what is missing.
		s.logger.Warn("memory: vector leg failed; answering from full text only", "err", vecErr)
		vecErr, vecHits = nil, nil
	}
	if err := errors.Join(vecErr, txtErr); err != nil {
		return nil, fmt.Errorf("memory: search: %w", err)
	}

	type fused struct {
		hit     Hit
		best    int // best rank of the memory in any leg, for the snippet choice
		score   float64
		foundBy []string
	}
	byID := map[string]*fused{}
	var order []*fused
	leg := func(name string, hits []Hit, w float64) {
		rank := 0
		top := 0.0
		if len(hits) > 0 {
			top = hits[0].Score
		}
		seen := map[string]bool{}
		for _, h := range hits {
			if name == ModeVector && h.Score <= 0 {
				continue // pointing away from the query: not similar at all
			}
			if seen[h.MemoryID] {
				continue // a later chunk of a memory already ranked
			}
			seen[h.MemoryID] = true
			rank++
			f := byID[h.MemoryID]
			if f == nil {
				f = &fused{hit: h, best: rank}
				byID[h.MemoryID] = f
				order = append(order, f)
			} else if rank < f.best {
				f.hit, f.best = h, rank
			}
			if s.cfg.Fusion != FusionRRF {
				if top > 0 {
					f.score += w * max(h.Score, 0) / top
				}
			} else {
				f.score += w / (s.cfg.RRFK + float64(rank))
			}
			f.foundBy = append(f.foundBy, name)
		}
	}
	leg(ModeFullText, txtHits, s.cfg.TextWeight)
	leg(ModeVector, vecHits, s.cfg.VectorWeight)

	now := time.Now()
	for _, f := range order {
		if req.ImportanceWeight > 0 {
			f.score *= 1 + req.ImportanceWeight*f.hit.Importance
		}
		if req.RecencyHalfLife > 0 {
			age := max(now.Sub(f.hit.CreatedAt), 0)
			f.score *= (1 + math.Exp2(-float64(age)/float64(req.RecencyHalfLife))) / 2
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].score > order[j].score })
	if len(order) > req.TopK {
		order = order[:req.TopK]
	}
	if lazy != nil && len(order) > 0 {
		hits := make([]Hit, len(order))
		for i, f := range order {
			hits[i] = f.hit
		}
		filled, err := lazy.FillHits(ctx, req.Scope, hits)
		if err != nil {
			return nil, fmt.Errorf("memory: search: %w", err)
		}
		// Hits come back in order, less any chunk deleted meanwhile.
		kept := order[:0]
		for _, h := range filled {
			for len(order) > 0 && (order[0].hit.MemoryID != h.MemoryID || order[0].hit.Seq != h.Seq) {
				order = order[1:]
			}
			if len(order) == 0 {
				break
			}
			order[0].hit = h
			kept = append(kept, order[0])
			order = order[1:]
		}
		order = kept
	}
	out := make([]Result, len(order))
	for i, f := range order {
		sort.Strings(f.foundBy)
		out[i] = s.result(f.hit, f.score, f.foundBy, tokens)
	}
	return out, nil
}

// result is the Result of a memory a search kept: h is its chosen chunk.
func (s *Service) result(h Hit, score float64, foundBy, tokens []string) Result {
	return Result{
		ID: h.MemoryID, Snippet: Snippet(h.Text, tokens, s.cfg.SnippetRunes), Score: score,
		Type: h.Type, AgentID: h.AgentID, GroupID: h.GroupID, CreatedAt: h.CreatedAt,
		Chunk: h.Seq, FoundBy: foundBy, Source: CitationOf(h.Metadata),
	}
}

// vectorLeg embeds the query and finds its nearest chunks.
func (s *Service) vectorLeg(ctx context.Context, lazy LazySearcher, req SearchRequest, q string, limit int) ([]Hit, error) {
	vecs, err := s.emb.Embed(ctx, []string{q})
	if err != nil {
		return nil, fmt.Errorf("embed query: %w: %w", ErrEmbedder, err)
	}
	if lazy != nil {
		return lazy.VectorSearchLazy(ctx, req.Scope, s.emb.Model(), vecs[0], req.Filter, limit)
	}
	return s.st.VectorSearch(ctx, req.Scope, s.emb.Model(), vecs[0], req.Filter, limit)
}

// fusedSearch is Search on a FusedSearcher: the vector leg, then one
// statement that runs the full-text leg, fuses the two as Search does in Go
// and reads the kept hits' texts. That is one round trip instead of two (the
// text leg, then FillHits). The price: with a remote embedder the full-text
// leg now waits for the query's embedding instead of running beside it,
// which costs little, since the text statement takes well under a
// millisecond and the embedding was the longer leg anyway.
func (s *Service) fusedSearch(ctx context.Context, fs FusedSearcher, lazy LazySearcher, req SearchRequest, q string, tokens []string, limit int) ([]Result, error) {
	var vecHits []Hit
	if req.Mode == ModeHybrid {
		var err error
		vecHits, err = s.vectorLeg(ctx, lazy, req, q, limit)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("memory: search: %w", err)
			}
			// As in Search: recall answers from full text alone.
			s.logger.Warn("memory: vector leg failed; answering from full text only", "err", err)
			vecHits = nil
		}
	}
	if len(tokens) == 0 && len(vecHits) == 0 {
		return []Result{}, nil
	}
	hits, err := fs.FusedSearch(ctx, req.Scope, tokens, vecHits, limit, req.TopK, Fusion{
		Method: s.cfg.Fusion, RRFK: s.cfg.RRFK, TextWeight: s.cfg.TextWeight, VectorWeight: s.cfg.VectorWeight,
	})
	if err != nil {
		return nil, fmt.Errorf("memory: search: %w", err)
	}
	out := make([]Result, len(hits))
	for i, h := range hits {
		foundBy := make([]string, 0, 2)
		if h.ByText {
			foundBy = append(foundBy, ModeFullText)
		}
		if h.ByVector {
			foundBy = append(foundBy, ModeVector)
		}
		out[i] = s.result(h.Hit, h.Score, foundBy, tokens)
	}
	return out, nil
}

// isZero reports whether f selects everything.
func (f Filter) isZero() bool {
	return len(f.Types) == 0 && f.AgentID == "" && f.GroupID == "" && len(f.Metadata) == 0 && f.After.IsZero() && f.Before.IsZero()
}

// Snippet cuts text to about n runes around the first query token it
// contains. It counts runes in place rather than converting text to runes:
// a recall cuts a snippet from each kept memory, whose summaries run to
// kilobytes, and the conversions were most of its allocations.
func Snippet(text string, tokens []string, n int) string {
	if !utf8.ValidString(text) {
		return snippetOfRunes(text, tokens, n)
	}
	count := utf8.RuneCountInString(text)
	if count <= n {
		return text
	}
	at := -1
	if lower := strings.ToLower(text); utf8.RuneCountInString(lower) == count {
		at = firstToken(lower, tokens)
	}
	start, end := snippetBounds(at, count, n)
	b, e := runeOffsets(text, start, end)
	return ellipsis(strings.TrimSpace(text[b:e]), start > 0, end < count)
}

// snippetOfRunes is Snippet for text that is not valid UTF-8, cut from its
// runes (each invalid byte one U+FFFD).
func snippetOfRunes(text string, tokens []string, n int) string {
	rs := []rune(text)
	if len(rs) <= n {
		return text
	}
	at := -1
	if lower := []rune(strings.ToLower(string(rs))); len(lower) == len(rs) {
		at = firstToken(string(lower), tokens)
	}
	start, end := snippetBounds(at, len(rs), n)
	return ellipsis(strings.TrimSpace(string(rs[start:end])), start > 0, end < len(rs))
}

// firstToken is the rune index in lower of the first of tokens it
// contains, or -1.
func firstToken(lower string, tokens []string) int {
	for _, t := range tokens {
		if i := strings.Index(lower, t); i >= 0 {
			return utf8.RuneCountInString(lower[:i])
		}
	}
	return -1
}

// snippetBounds is the window of n of count runes that puts rune at (or
// the start, at < 0) a third of the way in.
func snippetBounds(at, count, n int) (start, end int) {
	if at > n/3 {
		start = at - n/3
	}
	end = min(start+n, count)
	return max(0, end-n), end
}

// runeOffsets turns the rune indexes start and end of s into byte offsets.
func runeOffsets(s string, start, end int) (b, e int) {
	b, e = len(s), len(s)
	r := 0
	for i := range s {
		if r == start {
			b = i
		}
		if r == end {
			e = i
			break
		}
		r++
	}
	return b, e
}

func ellipsis(s string, before, after bool) string {
	if before {
		s = "…" + s
	}
	if after {
		s += "…"
	}
	return s
}

// ReEmbedResult is what one ReEmbed pass did.
type ReEmbedResult struct {
	Embedded int
	// Rejected chunks were refused by the embeddings server for what they
	// say (HTTP 400, 413 or 422), not because it was down: they stay without
	// a vector of the model, found by full text only, and are tried again by
	// the next pass (the next start, or `memory reembed`).
	Rejected    int
	FirstReject error
}

// reEmbedBatch is how many chunks one embeddings request carries.
const reEmbedBatch = 256

// ReEmbed computes vectors of the current model for every chunk that has
// none (after the embedder changed), in batches. It walks the chunks once in
// id order, so a chunk the server rejects is stepped over instead of being
// asked for again and again. An error (server down, bad key) ends the pass;
// the result says what was done before it.
func (s *Service) ReEmbed(ctx context.Context) (ReEmbedResult, error) {
	var res ReEmbedResult
	var after int64
	for {
		refs, err := s.st.ChunksWithoutVector(ctx, s.emb.Model(), after, reEmbedBatch)
		if err != nil {
			return res, fmt.Errorf("memory: re-embed: %w", err)
		}
		if len(refs) == 0 {
			return res, nil
		}
		after = refs[len(refs)-1].ID
		if err := s.embedRefs(ctx, refs, &res); err != nil {
			return res, fmt.Errorf("memory: re-embed: %w", err)
		}
		s.logger.Info("memory: re-embedded chunks", "model", s.emb.Model(), "count", res.Embedded, "rejected", res.Rejected)
	}
}

// embedRefs embeds and stores refs. When the server rejects the batch for
// its content, it halves the batch until the rejected chunks are alone, so
// one bad chunk costs about log2(batch) extra requests, not the whole batch.
func (s *Service) embedRefs(ctx context.Context, refs []ChunkRef, res *ReEmbedResult) error {
	texts := make([]string, len(refs))
	for i, r := range refs {
		texts[i] = r.Text
	}
	vecs, err := s.emb.Embed(ctx, texts)
	if err != nil {
		if !rejectedForContent(err) {
			return err
		}
		if len(refs) == 1 {
			res.Rejected++
			if res.FirstReject == nil {
				res.FirstReject = fmt.Errorf("chunk %d of memory %s: %w", refs[0].Seq, refs[0].MemoryID, err)
			}
			s.logger.Warn("memory: the embeddings server rejected a chunk; it is found by full text only",
				"model", s.emb.Model(), "memory_id", refs[0].MemoryID, "seq", refs[0].Seq, "err", err)
			return nil
		}
		half := len(refs) / 2
		if err := s.embedRefs(ctx, refs[:half], res); err != nil {
			return err
		}
		return s.embedRefs(ctx, refs[half:], res)
	}
	if err := s.st.PutVectors(ctx, s.emb.Model(), refs, vecs); err != nil {
		return err
	}
	res.Embedded += len(refs)
	return nil
}

// rejectedForContent tells a refusal of the input (too long, filtered) from a
// refusal of the request as a whole (bad key, unknown model, rate limit): only
// the first goes away by leaving a chunk out.
func rejectedForContent(err error) bool {
	var herr *EmbeddingHTTPError
	if !errors.As(err, &herr) {
		return false
	}
	switch herr.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}
