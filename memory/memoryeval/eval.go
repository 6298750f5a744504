package memoryeval

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Doc is one corpus entry.
type Doc struct {
	ID    string `json:"_id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// Query is one query.
type Query struct {
	ID   string `json:"_id"`
	Text string `json:"text"`
}

// Set is a loaded evaluation set.
type Set struct {
	Name    string
	Docs    []Doc
	Queries []Query
	Qrels   map[string]map[string]int // query id → doc id → grade (> 0)
}

// Load reads a set from dir.
func Load(dir string) (*Set, error) {
	s := &Set{Name: filepath.Base(filepath.Clean(dir)), Qrels: map[string]map[string]int{}}
	if err := readJSONL(filepath.Join(dir, "corpus.jsonl"), func(b []byte) error {
		var d Doc
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		s.Docs = append(s.Docs, d)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readJSONL(filepath.Join(dir, "queries.jsonl"), func(b []byte) error {
		var q Query
		if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		s.Queries = append(s.Queries, q)
		return nil
	}); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "qrels.tsv"))
	if err != nil {
		return nil, fmt.Errorf("memoryeval: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if first {
			first = false
			if len(parts) == 3 && parts[0] == "query-id" {
				continue
			}
		}
		if len(parts) != 3 {
			continue
		}
		g, err := strconv.Atoi(parts[2])
		if err != nil || g <= 0 {
			continue
		}
		if s.Qrels[parts[0]] == nil {
			s.Qrels[parts[0]] = map[string]int{}
		}
		s.Qrels[parts[0]][parts[1]] = g
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memoryeval: qrels: %w", err)
	}
	return s, nil
}

func readJSONL(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("memoryeval: %w", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("memoryeval: %s: %w", filepath.Base(path), err)
		}
	}
	return sc.Err()
}

// Slice keeps the first n queries that have judgements, and the documents
// they judge plus every k-th other document as distractors (k <= 0: none).
func (s *Set) Slice(n, k int) *Set {
	out := &Set{Name: s.Name, Qrels: map[string]map[string]int{}}
	keep := map[string]bool{}
	for _, q := range s.Queries {
		if len(out.Queries) == n {
			break
		}
		if len(s.Qrels[q.ID]) == 0 {
			continue
		}
		out.Queries = append(out.Queries, q)
		out.Qrels[q.ID] = s.Qrels[q.ID]
		for d := range s.Qrels[q.ID] {
			keep[d] = true
		}
	}
	for i, d := range s.Docs {
		if keep[d.ID] || (k > 0 && i%k == 0) {
			out.Docs = append(out.Docs, d)
		}
	}
	return out
}

// Metrics are the mean figures of one method.
type Metrics struct {
	NDCG10   float64 `json:"ndcg@10"`
	Recall10 float64 `json:"recall@10"`
}

// Report is the JSON answer of `openintern eval retrieval --json`.
type Report struct {
	Set     string             `json:"set"`
	Store   string             `json:"store"`
	Queries int                `json:"queries"`
	Methods map[string]Metrics `json:"methods"`
}

// Index writes every document into scope as an archival memory (with
// `workers` writers) and returns memory id → doc id.
func Index(ctx context.Context, svc *memory.Service, scope store.Scope, docs []Doc, workers int) (map[string]string, error) {
	workers = max(1, workers)
	ids := make(map[string]string, len(docs))
	var mu sync.Mutex
	ch := make(chan Doc)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range ch {
				text := strings.TrimSpace(d.Title + "\n\n" + d.Text)
				m, err := svc.Write(ctx, memory.WriteRequest{Scope: scope, Type: memory.TypeArchival, Text: text,
					Metadata: map[string]string{"doc_id": d.ID}})
				if err != nil {
					errc <- fmt.Errorf("memoryeval: index %s: %w", d.ID, err)
					return
				}
				mu.Lock()
				ids[m.ID] = d.ID
				mu.Unlock()
			}
		}()
	}
	var err error
loop:
	for _, d := range docs {
		select {
		case ch <- d:
		case err = <-errc:
			break loop
		}
	}
	close(ch)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return ids, err
}

// Evaluate runs every query of set in each mode and averages the metrics.
func Evaluate(ctx context.Context, svc *memory.Service, scope store.Scope, set *Set, memToDoc map[string]string, modes []string) (map[string]Metrics, int, error) {
	out := map[string]Metrics{}
	n := 0
	for _, mode := range modes {
		var sum Metrics
		n = 0
		for _, q := range set.Queries {
			rel := set.Qrels[q.ID]
			if len(rel) == 0 {
				continue
			}
			res, err := svc.Search(ctx, memory.SearchRequest{Scope: scope, Query: q.Text, TopK: 10, Mode: mode})
			if err != nil {
				return nil, 0, fmt.Errorf("memoryeval: query %s: %w", q.ID, err)
			}
			ranked := make([]string, len(res))
			for i, r := range res {
				ranked[i] = memToDoc[r.ID]
			}
			sum.NDCG10 += NDCG(ranked, rel, 10)
			sum.Recall10 += Recall(ranked, rel, 10)
			n++
		}
		if n > 0 {
			sum.NDCG10 /= float64(n)
			sum.Recall10 /= float64(n)
		}
		out[mode] = sum
	}
	return out, n, nil
}

// NDCG is nDCG@k with linear gains (as BEIR's pytrec_eval computes it).
func NDCG(ranked []string, rel map[string]int, k int) float64 {
	var dcg float64
	for i, d := range ranked {
		if i == k {
			break
		}
		dcg += float64(rel[d]) / math.Log2(float64(i+2))
	}
	grades := make([]int, 0, len(rel))
	for _, g := range rel {
		grades = append(grades, g)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(grades)))
	var idcg float64
	for i, g := range grades {
		if i == k {
			break
		}
		idcg += float64(g) / math.Log2(float64(i+2))
	}
	if idcg == 0 {
		return 0
	}
	return dcg / idcg
}

// Recall is the share of relevant documents in the top k.
func Recall(ranked []string, rel map[string]int, k int) float64 {
	if len(rel) == 0 {
		return 0
	}
	hit := 0
	for i, d := range ranked {
		if i == k {
			break
		}
		if rel[d] > 0 {
			hit++
		}
	}
	return float64(hit) / float64(len(rel))
}
