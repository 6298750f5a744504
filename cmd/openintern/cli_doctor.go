package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/internal/daemon"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store/sqlite"
)

// checkTimeout bounds each doctor check, so one unreachable service cannot
// hide the results of the others.
const checkTimeout = 10 * time.Second

// checkResult is one line of `doctor`.
type checkResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"`
}

func checkPass(name, detail string) checkResult {
	return checkResult{Name: name, OK: true, Detail: detail}
}
func checkFail(name, detail, hint string) checkResult {
	return checkResult{Name: name, Detail: detail, Hint: hint}
}

func newDoctorCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the config, store, Redis, LLM provider, memory embedder and daemon",
		Long: "Check everything OpenIntern needs, one pass/fail line each with a hint:\n" +
			"the config (file < env < flags, as `serve` reads it), the store (SQLite file or\n" +
			"DATABASE_URL; pgvector on PostgreSQL), Redis when REDIS_URL is set, the LLM provider\n" +
			"(one tiny real call), the memory embedder (provider, model, dimension; for openai one\n" +
			"tiny real embedding), and the daemon at OPENINTERN_URL (/healthz, /readyz).\n" +
			"Exit code 1 when any check fails.",
		Example: "  openintern doctor\n" +
			"  DATABASE_URL=postgres://postgres@127.0.0.1:5432/openintern openintern doctor\n" +
			"  openintern doctor --skip-llm --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := clientOptionsFrom(cmd, lookupEnv)
			skipLLM, _ := cmd.Flags().GetBool("skip-llm")
			skipEmbedder, _ := cmd.Flags().GetBool("skip-embedder")
			ctx := cmd.Context()
			var results []checkResult

			cfg, err := loadConfig(cmd, lookupEnv)
			if err != nil {
				results = append(results, checkFail("config", err.Error(), "fix the named setting in agent.config.json, the environment or the flags"))
			} else {
				src := "defaults and environment"
				if path := configPath(cmd); path != "" {
					src = path + ", environment"
				}
				results = append(results, checkPass("config", "valid ("+src+")"))
				results = append(results, checkStore(ctx, cfg))
				results = append(results, checkRedis(ctx, cfg))
				if skipLLM {
					results = append(results, checkPass("llm", "skipped (--skip-llm)"))
				} else {
					results = append(results, checkLLM(ctx, cfg)...)
				}
				results = append(results, checkEmbedder(ctx, cfg, skipEmbedder))
			}
			results = append(results, checkDaemon(ctx, opts)...)

			out := cmd.OutOrStdout()
			failed := 0
			for _, r := range results {
				if !r.OK {
					failed++
				}
			}
			if opts.JSON {
				if err := writeJSON(out, map[string]any{"ok": failed == 0, "checks": results}); err != nil {
					return err
				}
			} else {
				printChecks(out, newStyle(out, lookupEnv), results)
			}
			if failed > 0 {
				names := make([]string, 0, failed)
				for _, r := range results {
					if !r.OK {
						names = append(names, r.Name)
					}
				}
				return &exitError{code: 1, err: fmt.Errorf("%d check(s) failed: %s", failed, strings.Join(names, ", "))}
			}
			return nil
		},
	}
	addServeFlags(cmd.Flags())
	cmd.Flags().Bool("skip-llm", false, "do not call the LLM provider (it may cost money)")
	cmd.Flags().Bool("skip-embedder", false, "do not call the embeddings endpoint (it may cost money)")
	addClientFlags(cmd.Flags())
	return cmd
}

// configPath is the config file serve would read, or "" when none.
func configPath(cmd *cobra.Command) string {
	path, _ := cmd.Flags().GetString("config")
	if path != "" {
		return path
	}
	if _, err := os.Stat(config.DefaultFile); err == nil {
		return config.DefaultFile
	}
	return ""
}

func printChecks(w io.Writer, st style, results []checkResult) {
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	for _, r := range results {
		mark := st.green("✓ pass")
		if !r.OK {
			mark = st.red("✗ FAIL")
		}
		fmt.Fprintf(w, "%s  %-*s  %s\n", mark, width, r.Name, r.Detail)
		if r.Hint != "" {
			fmt.Fprintf(w, "        %s\n", st.dim("hint: "+r.Hint))
		}
	}
}

func checkStore(ctx context.Context, cfg config.Config) checkResult {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if cfg.DatabaseURL != "" {
		return checkPostgres(ctx, cfg)
	}
	path := filepath.Join(cfg.DataDir, "openintern.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		// A fresh machine: serve creates the file. Only check that it could,
		// without creating anything that is not there yet.
		if err := checkWritableDir(cfg.DataDir); err != nil {
			return checkFail("store", "sqlite "+path+": "+err.Error(), "make DATA_DIR writable or point it elsewhere")
		}
		return checkPass("store", "sqlite "+path+" (not created yet; `serve` creates it)")
	}
	// Opening the store applies pending migrations, exactly as serve would;
	// WAL mode lets this run beside a daemon that has the file open.
	s, err := sqlite.Open(ctx, path, slog.New(slog.DiscardHandler))
	if err != nil {
		return checkFail("store", err.Error(), "check DATA_DIR and that the file is an OpenIntern SQLite database")
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		return checkFail("store", "sqlite "+path+": "+err.Error(), "check the file's permissions and free disk space")
	}
	return checkPass("store", "sqlite "+path)
}

// checkWritableDir checks that dir, or the nearest existing directory above
// it (serve creates the rest), accepts a new file.
func checkWritableDir(dir string) error {
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			break
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, fs.ErrNotExist) || parent == dir {
			return err
		}
		dir = parent
	}
	f, err := os.CreateTemp(dir, ".openintern-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// checkPostgres connects with pgx directly rather than opening the store, so
// the check neither migrates nor holds a pool; it also needs pgvector.
func checkPostgres(ctx context.Context, cfg config.Config) checkResult {
	shown := cfg.Redacted().DatabaseURL
	pcfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx's parse error may quote the password: don't show it.
		return checkFail("store", "postgres "+shown+": DATABASE_URL cannot be parsed", "use postgres://user:password@host:5432/dbname")
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return checkFail("store", fmt.Sprintf("postgres %s: cannot connect: %s", shown, oneLine(dialCause(err))),
			fmt.Sprintf("is PostgreSQL running on %s:%d? check DATABASE_URL (user, password, database)", pcfg.Host, pcfg.Port))
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return checkFail("store", "postgres "+shown+": "+oneLine(err), "check that the user may run queries")
	}
	var one int
	err = conn.QueryRow(ctx, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return checkFail("store", "postgres "+version+" at "+shown+": the pgvector extension is not installed",
			"install pgvector for this PostgreSQL (apt-get install postgresql-"+strings.SplitN(version, ".", 2)[0]+"-pgvector, or ./scripts/services.sh)")
	}
	if err != nil {
		return checkFail("store", "postgres "+shown+": "+oneLine(err), "check that the user may read pg_available_extensions")
	}
	return checkPass("store", "postgres "+version+" at "+shown+", pgvector available")
}

func checkRedis(ctx context.Context, cfg config.Config) checkResult {
	if cfg.RedisURL == "" {
		return checkPass("redis", "not configured (REDIS_URL unset; the in-process event bus is used)")
	}
	shown := cfg.Redacted().RedisURL
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return checkFail("redis", shown+": REDIS_URL cannot be parsed", "use redis://host:6379/0")
	}
	opts.DialTimeout = 3 * time.Second
	opts.MaxRetries = 0
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return checkFail("redis", shown+": "+oneLine(err), "is Redis running at "+opts.Addr+"? check REDIS_URL, or unset it for the in-process bus")
	}
	return checkPass("redis", shown+" answers PING")
}

// checkLLM makes one tiny real completion through the model router, the
// same way serve configures it: one for the default provider ("llm") and one
// for each named model of the config file ("model:<name>").
func checkLLM(ctx context.Context, cfg config.Config) []checkResult {
	rc := daemon.RouterConfig(cfg, nil)
	rc.Default.Timeout, rc.Default.MaxRetries = checkTimeout, -1
	r, err := llm.NewRouter(rc)
	if err != nil {
		return []checkResult{checkFail("llm", oneLine(err), "set LLM_PROVIDER, LLM_MODEL, LLM_BASE_URL and LLM_API_KEY consistently, and the models section's providers")}
	}
	var results []checkResult
	for _, t := range r.Targets() {
		results = append(results, checkModel(ctx, r, t, cfg))
	}
	return results
}

// checkModel makes a one-token call to one model.
func checkModel(ctx context.Context, r *llm.Router, t llm.Target, cfg config.Config) checkResult {
	name, what := "llm", t.Provider
	keyHint := "check LLM_API_KEY (or OPENAI_API_KEY)"
	modelHint := "check LLM_MODEL"
	if t.Name != "" {
		name, what = "model:"+t.Name, t.Name+" ("+t.Label()+")"
		keyHint = "check the key of models." + t.Name + " (apiKeyEnv) or of its provider"
		modelHint = "check models." + t.Name + ".model"
	} else if cfg.LLMBaseURL != "" {
		what += " at " + cfg.LLMBaseURL
	}
	if t.Provider == "offline" {
		return checkPass(name, "offline demo model (no network; set LLM_API_KEY or LLM_BASE_URL for a real model)")
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	start := time.Now()
	resp, err := r.CompleteTarget(ctx, t, llm.Request{
		Messages:  []llm.Message{{Role: llm.RoleUser, Content: "Reply with the single word: ok"}},
		MaxTokens: 5,
	}, nil)
	if err != nil {
		hint := "check the base URL and that the server is up"
		switch {
		case errors.Is(err, llm.ErrModelUnavailable):
			hint = "the provider is not configured: " + keyHint
		case errors.Is(err, llm.ErrAuth):
			hint = "the provider refused the key: " + keyHint
		case errors.Is(err, llm.ErrBadRequest):
			hint = modelHint + ": the provider rejected the request"
		case errors.Is(err, llm.ErrRateLimited):
			hint = "rate limited: wait, or check the account's quota"
		}
		return checkFail(name, what+": "+oneLine(err), hint)
	}
	model := resp.Model
	if model == "" {
		model = t.Model
	}
	return checkPass(name, fmt.Sprintf("%s, model %s answered in %s", what, model, time.Since(start).Round(time.Millisecond)))
}

// checkEmbedder names the memory embedder and, for openai, embeds one word
// with it exactly as serve would configure it, but without retries, so a bad
// key or model shows at once.
func checkEmbedder(ctx context.Context, cfg config.Config, skip bool) checkResult {
	emb := daemon.NewEmbedder(cfg, nil)
	desc := daemon.DescribeEmbedder(emb)
	remote, ok := emb.(*memory.OpenAIEmbedder)
	if !ok {
		return checkPass("embedder", desc)
	}
	if skip {
		return checkPass("embedder", desc+" (not called: --skip-embedder)")
	}
	remote.MaxRetries = -1
	remote.Timeout = checkTimeout
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	start := time.Now()
	if _, err := remote.Embed(ctx, []string{"ok"}); err != nil {
		hint := "is the embeddings server up at " + cfg.EmbeddingEndpoint() + "? check EMBEDDING_BASE_URL"
		var he *memory.EmbeddingHTTPError
		switch {
		case errors.Is(err, memory.ErrEmbeddingDimension):
			hint = "set EMBEDDING_DIM to the model's vector length (changing it later means re-embedding)"
		case errors.As(err, &he) && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden):
			hint = "the server refused the key: check EMBEDDING_API_KEY (without it, the LLM key is sent only to the LLM's own host)"
		case errors.As(err, &he) && he.StatusCode == http.StatusNotFound:
			hint = "check EMBEDDING_BASE_URL (usually ending in /v1) and EMBEDDING_MODEL"
		case errors.As(err, &he) && he.StatusCode == http.StatusTooManyRequests:
			hint = "rate limited: wait, or check the account's quota"
		case errors.As(err, &he) && he.StatusCode/100 == 4:
			hint = "check EMBEDDING_MODEL: the server rejected the request"
		}
		return checkFail("embedder", desc+": "+oneLine(err), hint)
	}
	return checkPass("embedder", fmt.Sprintf("%s, answered in %s", desc, time.Since(start).Round(time.Millisecond)))
}

// checkDaemon asks the daemon whether it is alive and ready.
func checkDaemon(ctx context.Context, opts clientOptions) []checkResult {
	c, err := newAPIClient(opts)
	if err != nil {
		return []checkResult{checkFail("daemon", err.Error(), "set OPENINTERN_URL or --url to http://host:port")}
	}
	get := func(path string) error {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		return c.do(ctx, http.MethodGet, path, nil, nil)
	}
	if err := get("/healthz"); err != nil {
		var ue *unreachableError
		if errors.As(err, &ue) {
			return []checkResult{checkFail("daemon", opts.URL+": not reachable: "+oneLine(rootCause(ue.err)), "start it with `openintern serve`, or set OPENINTERN_URL / --url")}
		}
		return []checkResult{checkFail("daemon", opts.URL+"/healthz: "+oneLine(err), "is something else listening on that address?")}
	}
	if err := get("/readyz"); err != nil {
		return []checkResult{checkFail("daemon", opts.URL+" is up but not ready: "+oneLine(err), "see the daemon's log; usually its store is unreachable")}
	}
	return []checkResult{checkPass("daemon", opts.URL+" healthy and ready")}
}

// oneLine keeps an error on one line: doctor prints one line per check.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// dialCause returns the network error inside a connect error: pgx repeats
// every address and TLS fallback it tried, which is noise on one line.
func dialCause(err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr
	}
	return err
}
