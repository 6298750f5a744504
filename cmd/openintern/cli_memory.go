package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// memoryResult is one search hit as the API returns it.
type memoryResult struct {
	ID      string   `json:"id"`
	Snippet string   `json:"snippet"`
	Score   float64  `json:"score"`
	Type    string   `json:"type"`
	AgentID string   `json:"agent_id,omitempty"`
	FoundBy []string `json:"found_by"`
	// Source cites the document an ingested memory came from.
	Source *memory.Citation `json:"source,omitempty"`
}

// citationLabel is "path, p. 2" or "path › Heading".
func citationLabel(c memory.Citation) string {
	label := c.Source
	if c.Page > 0 {
		label += fmt.Sprintf(", p. %d", c.Page)
	}
	if c.Heading != "" {
		label += " › " + c.Heading
	}
	return label
}

// memoryView is one memory in full.
type memoryView struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	AgentID   string            `json:"agent_id,omitempty"`
	GroupID   string            `json:"group_id,omitempty"`
	Text      string            `json:"text"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Chunks    int               `json:"chunks"`
	CreatedAt time.Time         `json:"created_at"`
}

func newMemoryCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "memory",
		Short: "Search, read, write and ingest the scope's long-term memory",
		Example: "  openintern memory search \"launch date\"\n" +
			"  openintern memory write \"The launch moved to Tuesday\" --type episodic\n" +
			"  openintern memory ingest notes/*.md\n" +
			"  EMBEDDING_PROVIDER=openai EMBEDDING_MODEL=text-embedding-3-small EMBEDDING_DIM=1536 openintern memory reembed",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	cmd.AddCommand(newMemorySearchCmd(lookupEnv), newMemoryGetCmd(lookupEnv), newMemoryWriteCmd(lookupEnv), newMemoryIngestCmd(lookupEnv),
		newMemoryReEmbedCmd(lookupEnv))
	return cmd
}

func newMemorySearchCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "search QUERY",
		Short: "Hybrid (vector + full-text) search; prints snippets and which leg found each",
		Example: "  openintern memory search \"when is the launch\"\n" +
			"  openintern memory search 发布日期 --type archival --top-k 5 --json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			q := url.Values{"q": {args[0]}}
			if t, _ := cmd.Flags().GetString("type"); t != "" {
				q.Set("type", t)
			}
			if k, _ := cmd.Flags().GetInt("top-k"); k > 0 {
				q.Set("top_k", strconv.Itoa(k))
			}
			var resp struct {
				Results []memoryResult `json:"results"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, "/api/memories/search?"+q.Encode(), nil, &resp); err != nil {
				return fmt.Errorf("search memory: %w", err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), resp.Results)
			}
			if len(resp.Results) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no memories match")
				return nil
			}
			st := newStyle(cmd.OutOrStdout(), lookupEnv)
			for _, r := range resp.Results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s %s\n  %s\n", st.bold(r.ID), st.cyan(r.Type),
					st.dim(fmt.Sprintf("%.3f", r.Score)), st.dim("("+strings.Join(r.FoundBy, "+")+")"), truncate(r.Snippet, 200))
				if r.Source != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", st.dim("— "+citationLabel(*r.Source)))
				}
			}
			return nil
		},
	}
	cmd.Flags().String("type", "", "only these types: core, episodic, archival (comma-separated)")
	cmd.Flags().Int("top-k", 0, "how many results (default 10, at most 100)")
	return cmd
}

func newMemoryGetCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	return &cobra.Command{
		Use:     "get MEMORY_ID",
		Short:   "Print one memory in full",
		Example: "  openintern memory get mem_0192…\n  openintern memory get mem_0192… --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var m memoryView
			if err := c.do(cmd.Context(), http.MethodGet, "/api/memories/"+url.PathEscape(args[0]), nil, &m); err != nil {
				return fmt.Errorf("memory %s: %w", args[0], err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "id\t%s\ntype\t%s\nchunks\t%d\ncreated\t%s\n", m.ID, m.Type, m.Chunks, m.CreatedAt.Local().Format(time.DateTime))
			for k, v := range m.Metadata {
				fmt.Fprintf(w, "%s\t%s\n", k, v)
			}
			_ = w.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", m.Text)
			return nil
		},
	}
}

func newMemoryWriteCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "write TEXT",
		Short: "Store a memory (chunked, embedded and indexed for search); TEXT - reads stdin",
		Example: "  openintern memory write \"Our launch is on Tuesday\"\n" +
			"  git log -1 --format=%B | openintern memory write - --type episodic --agent main",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			text := args[0]
			if text == "-" {
				raw, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
				text = string(raw)
			}
			typ, _ := cmd.Flags().GetString("type")
			agent, _ := cmd.Flags().GetString("agent")
			var m memoryView
			body := map[string]any{"type": typ, "text": text, "agent_id": agent}
			if err := c.do(cmd.Context(), http.MethodPost, "/api/memories", body, &m); err != nil {
				return fmt.Errorf("write memory: %w", err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s stored (%s, %s)\n", m.ID, m.Type, plural(m.Chunks, "chunk"))
			return nil
		},
	}
	cmd.Flags().String("type", "archival", "episodic or archival")
	cmd.Flags().String("agent", "", "agent that owns the memory (default: the scope)")
	return cmd
}

func newMemoryIngestCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ingest PATH…",
		Short: "Ingest files and folders (PDF, HTML, Markdown, text) into archival memory as a job, with progress",
		Long: "Uploads the files (folders recursively, skipping hidden entries and binary files) to the daemon, which\n" +
			"ingests them as a job: PDFs page by page, HTML without its navigation, Markdown by sections. Prints the\n" +
			"job id, then follows it: a progress bar on a terminal, a line per file otherwise. A file that cannot be\n" +
			"read is reported and the others go on; the exit status is non-zero if any failed. Search hits cite\n" +
			"the file's path (and page or heading). With --no-wait it prints the job id and returns.",
		Example: "  openintern memory ingest README.md docs/\n" +
			"  openintern memory ingest handbook.pdf --agent support --json",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			agent, _ := cmd.Flags().GetString("agent")
			noWait, _ := cmd.Flags().GetBool("no-wait")
			files, err := collectIngestFiles(args, cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("ingest: %w", err)
			}
			if len(files) == 0 {
				return fmt.Errorf("ingest: no files to ingest in %s", strings.Join(args, " "))
			}
			var jobs []store.Job
			for _, batch := range ingestBatches(files) {
				j, err := c.uploadFiles(cmd.Context(), batch, agent)
				if err != nil {
					return fmt.Errorf("ingest: %w", err)
				}
				jobs = append(jobs, j)
				if !opts.JSON {
					fmt.Fprintf(cmd.OutOrStdout(), "job %s queued (%s)\n", j.ID, plural(len(batch), "file"))
				}
			}
			if noWait {
				if opts.JSON {
					return writeJSON(cmd.OutOrStdout(), jobs)
				}
				return nil
			}
			tty := isTerminal(cmd.ErrOrStderr()) && !opts.JSON
			for i, j := range jobs {
				ended, err := c.watchJob(cmd.Context(), j.ID, cmd.ErrOrStderr(), tty)
				if err != nil {
					return err
				}
				jobs[i] = ended
			}
			return finishJobOutput(cmd, opts, jobs)
		},
	}
	cmd.Flags().String("agent", "", "agent that owns the memories (default: the scope)")
	cmd.Flags().Bool("no-wait", false, "print the job id and return without following it")
	return cmd
}

// newMemoryReEmbedCmd works on the store itself, not through the daemon: it
// is what to run after changing the embedder when the daemon's background
// re-embedding should not be waited for, or with the daemon stopped.
func newMemoryReEmbedCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reembed",
		Short: "Give every stored chunk a vector of the configured embedding model (after changing it)",
		Long: "Opens the configured store (DATABASE_URL, else the SQLite file in DATA_DIR) directly and computes a\n" +
			"vector of the configured embedder (EMBEDDING_PROVIDER, EMBEDDING_MODEL, EMBEDDING_DIM, ...) for every\n" +
			"chunk that has none, in every scope; vectors of other models are kept, and searches only ever compare\n" +
			"vectors of one model. The daemon does the same in the background at start-up; running both at once\n" +
			"is safe. Prints how many chunks were embedded: 0 when all had a vector already.",
		Example: "  EMBEDDING_PROVIDER=openai EMBEDDING_MODEL=text-embedding-3-small EMBEDDING_DIM=1536 openintern memory reembed\n" +
			"  openintern memory reembed --database-url postgres://postgres@127.0.0.1:5432/openintern --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, lookupEnv)
			if err != nil {
				return err
			}
			asJSON, _ := cmd.Flags().GetBool("json")
			logger := newLogger(cmd.ErrOrStderr(), cfg.LogLevel)
			m := &daemon.Main{Config: cfg}
			if cfg.DatabaseURL == "" {
				// Opening would create an empty database: a wrong DATA_DIR would
				// then look like a store with nothing to do.
				if _, err := os.Stat(m.SQLitePath()); err != nil {
					return fmt.Errorf("reembed: no store at %s (check DATA_DIR or DATABASE_URL): %w", m.SQLitePath(), err)
				}
			}
			st, ms, err := daemon.OpenStore(cmd.Context(), cfg.DatabaseURL, m.SQLitePath(), logger.With("component", "store"))
			if err != nil {
				return fmt.Errorf("reembed: %w", err)
			}
			defer func() { _ = st.Close() }()
			emb := daemon.NewEmbedder(cfg, logger.With("component", "embedder"))
			svc, err := memory.New(memory.Config{Store: ms, Embedder: emb, Logger: logger.With("component", "memory")})
			if err != nil {
				return fmt.Errorf("reembed: %w", err)
			}
			start := time.Now()
			res, err := svc.ReEmbed(cmd.Context())
			if err != nil {
				return fmt.Errorf("reembed %s (%d chunks done; run it again to continue): %w", m.StoreDescription(), res.Embedded, err)
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), map[string]any{"model": emb.Model(), "dim": emb.Dim(), "reembedded": res.Embedded,
					"rejected": res.Rejected, "store": m.StoreDescription()}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s re-embedded with %s in %s (%s)\n", plural(res.Embedded, "chunk"), daemon.DescribeEmbedder(emb),
					time.Since(start).Round(time.Millisecond), m.StoreDescription())
			}
			if res.Rejected > 0 {
				return fmt.Errorf("reembed: the server rejected %s, which full-text search still finds (first: %w)", plural(res.Rejected, "chunk"), res.FirstReject)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.String("data-dir", "", "directory of the embedded store (DATA_DIR)")
	fs.String("database-url", "", "PostgreSQL URL; empty uses embedded SQLite (DATABASE_URL)")
	addEmbeddingFlags(fs)
	return cmd
}
