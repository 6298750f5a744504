package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memoryeval"
	"github.com/openintern/openintern/store"
)

// evalScope is the scope an evaluation set is loaded into; the store is fresh.
var evalScope = store.Scope{OrgID: "org_eval", UserID: "user_eval"}

func newEvalCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{Use: "eval", Short: "Measure the daemon's quality"}
	var (
		setDir, storeKind, dbURL string
		asJSON                   bool
		limitQueries             int
	)
	ret := &cobra.Command{
		Use:   "retrieval --set DIR",
		Short: "nDCG@10 and Recall@10 of vector, full-text and hybrid memory search on a BEIR-style set",
		Long: "Loads DIR (corpus.jsonl, queries.jsonl, qrels.tsv) into a fresh store, runs every query with each\n" +
			"search method and prints nDCG@10 and Recall@10. --store postgres uses DATABASE_URL (or --database-url);\n" +
			"point it at a scratch database: the set is loaded into it. Documents and queries are embedded with\n" +
			"the configured embedder (EMBEDDING_PROVIDER etc., default local), so an OpenAI-compatible embedding\n" +
			"model can be measured against the local one.",
		Example: "  openintern eval retrieval --set testdata/retrieval/everyday-en\n" +
			"  EMBEDDING_PROVIDER=openai EMBEDDING_MODEL=text-embedding-3-small EMBEDDING_DIM=1536 \\\n" +
			"    openintern eval retrieval --set ./data/nfcorpus --queries 50 --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, lookupEnv)
			if err != nil {
				return err
			}
			if dbURL == "" {
				dbURL, _ = lookupEnv("DATABASE_URL")
			}
			emb := daemon.NewEmbedder(cfg, newLogger(cmd.ErrOrStderr(), cfg.LogLevel))
			rep, err := runRetrievalEval(cmd.Context(), evalOptions{Set: setDir, Store: storeKind, DatabaseURL: dbURL, Queries: limitQueries, Embedder: emb})
			if err != nil {
				return err
			}
			return printEval(cmd.OutOrStdout(), rep, emb.Model(), asJSON)
		},
	}
	ret.Flags().StringVar(&setDir, "set", "", "directory of the evaluation set (required)")
	ret.Flags().StringVar(&storeKind, "store", "sqlite", "sqlite or postgres")
	ret.Flags().StringVar(&dbURL, "database-url", "", "PostgreSQL URL for --store postgres (default $DATABASE_URL)")
	ret.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	ret.Flags().IntVar(&limitQueries, "queries", 0, "use only the first N queries and their judged documents plus a sample of the rest (0: all)")
	addEmbeddingFlags(ret.Flags())
	_ = ret.MarkFlagRequired("set")
	cmd.AddCommand(ret)
	return cmd
}

type evalOptions struct {
	Set, Store, DatabaseURL string
	Queries                 int             // 0: the whole set
	Embedder                memory.Embedder // nil: the local hashed embedder
}

func runRetrievalEval(ctx context.Context, o evalOptions) (memoryeval.Report, error) {
	set, err := memoryeval.Load(o.Set)
	if err != nil {
		return memoryeval.Report{}, err
	}
	if o.Queries > 0 {
		set = set.Slice(o.Queries, 10)
	}
	var dbURL, sqlitePath string
	switch o.Store {
	case "sqlite":
		dir, err := os.MkdirTemp("", "openintern-eval-")
		if err != nil {
			return memoryeval.Report{}, fmt.Errorf("eval: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
		sqlitePath = filepath.Join(dir, "eval.db")
	case "postgres":
		if o.DatabaseURL == "" {
			return memoryeval.Report{}, fmt.Errorf("eval: --store postgres needs DATABASE_URL or --database-url")
		}
		dbURL = o.DatabaseURL
	default:
		return memoryeval.Report{}, fmt.Errorf("eval: --store must be sqlite or postgres, not %q", o.Store)
	}
	st, ms, err := daemon.OpenStore(ctx, dbURL, sqlitePath, nil)
	if err != nil {
		return memoryeval.Report{}, fmt.Errorf("eval: %w", err)
	}
	defer func() { _ = st.Close() }()
	emb := o.Embedder
	if emb == nil {
		emb = memory.NewHashEmbedder(0)
	}
	svc, err := memory.New(memory.Config{Store: ms, Embedder: emb})
	if err != nil {
		return memoryeval.Report{}, err
	}
	// A fresh scope per run, so a reused PostgreSQL database does not mix sets.
	scope := evalScope
	scope.ProjectID = memory.NewMemoryID()
	ids, err := memoryeval.Index(ctx, svc, scope, set.Docs, runtime.GOMAXPROCS(0))
	if err != nil {
		return memoryeval.Report{}, err
	}
	methods, n, err := memoryeval.Evaluate(ctx, svc, scope, set, ids, []string{memory.ModeVector, memory.ModeFullText, memory.ModeHybrid})
	if err != nil {
		return memoryeval.Report{}, err
	}
	return memoryeval.Report{Set: set.Name, Store: o.Store, Queries: n, Methods: methods}, nil
}

func printEval(w io.Writer, rep memoryeval.Report, embedder string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(struct {
			memoryeval.Report
			Embedder string `json:"embedder"`
		}{rep, embedder})
	}
	_, _ = fmt.Fprintf(w, "set %s, store %s, embedder %s, %d queries\n%-10s %8s %10s\n", rep.Set, rep.Store, embedder, rep.Queries, "method", "nDCG@10", "Recall@10")
	for _, m := range []string{memory.ModeVector, memory.ModeFullText, memory.ModeHybrid} {
		_, _ = fmt.Fprintf(w, "%-10s %8.4f %10.4f\n", m, rep.Methods[m].NDCG10, rep.Methods[m].Recall10)
	}
	return nil
}
