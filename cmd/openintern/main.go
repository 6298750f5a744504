// Command openintern is the OpenIntern daemon and its command-line client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/internal/daemon"
)

// exitError carries a process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// run executes the CLI and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	root := newRootCmd(stdout, stderr, lookupEnv)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "openintern:", err)
	var ee *exitError
	var ce *config.Error
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce):
		return 2
	}
	return 1
}

func newRootCmd(stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	root := &cobra.Command{
		Use:           "openintern",
		Short:         "OpenIntern: persistent LLM agent teams in one daemon",
		Long:          "OpenIntern runs persistent agents that wake on messages, think with an LLM, use tools,\nand stream what they do. `openintern serve` starts the daemon.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("config", "", "path of the config file (default ./agent.config.json when present)")
	root.AddCommand(newServeCmd(lookupEnv), newInitCmd(lookupEnv), newVersionCmd(), newEvalCmd(lookupEnv), newTokensCmd(lookupEnv))
	root.AddCommand(clientCommands(lookupEnv)...)
	return root
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "openintern", version)
			return nil
		},
	}
}

// serveFlags are the daemon settings a flag can override; they win over file and env.
func addServeFlags(fs *pflag.FlagSet) {
	fs.String("host", "", "address to listen on (HOST; default 127.0.0.1)")
	fs.Int("port", 0, "port to listen on (PORT; default 3000)")
	fs.String("allowed-hosts", "", "comma-separated host names the API answers to besides loopback ones (OPENINTERN_ALLOWED_HOSTS)")
	fs.String("data-dir", "", "directory of the embedded store and workspace (DATA_DIR)")
	fs.String("database-url", "", "PostgreSQL URL; empty uses embedded SQLite (DATABASE_URL)")
	fs.String("redis-url", "", "Redis URL for cross-process events (REDIS_URL)")
	fs.String("llm-provider", "", "openai, offline, or an OpenAI-compatible name (LLM_PROVIDER)")
	fs.String("llm-model", "", "model name (LLM_MODEL)")
	fs.String("llm-base-url", "", "OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (LLM_BASE_URL)")
	addEmbeddingFlags(fs)
	fs.Int("max-running-agents", 0, "agents running at once (OPENINTERN_MAX_RUNNING_AGENTS)")
	fs.Int("max-running-per-scope", 0, "agents of one scope running at once; 0: no cap beyond --max-running-agents (OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE)")
	fs.Int("max-steps", 0, "steps per run before it fails (OPENINTERN_MAX_STEPS)")
	fs.String("idle-timeout", "", "passivate an idle agent after this, e.g. 5m (OPENINTERN_AGENT_IDLE_TIMEOUT)")
	fs.Int("vector-index-mb", 0, "memory for exact vector search of searched scopes; larger scopes use the ANN index (OPENINTERN_VECTOR_INDEX_MB; default 256)")
	fs.String("log-level", "", "debug, info, warn or error (LOG_LEVEL)")
	fs.String("auth", "", "off or token: whether every API request needs an API token (AUTH; default off, which only a loopback HOST allows)")
}

// addEmbeddingFlags registers the memory embedder's settings; every command
// that embeds (serve, doctor, memory reembed, eval retrieval) takes them.
func addEmbeddingFlags(fs *pflag.FlagSet) {
	fs.String("embedding-provider", "", "local (hashed, no network) or openai (any OpenAI-compatible server) (EMBEDDING_PROVIDER)")
	fs.String("embedding-model", "", "embedding model for openai, e.g. text-embedding-3-small (EMBEDDING_MODEL)")
	fs.String("embedding-base-url", "", "OpenAI-compatible base URL for embeddings (EMBEDDING_BASE_URL; default "+config.DefaultEmbeddingBaseURL+")")
	fs.Int("embedding-dim", 0, "the embedding model's vector length, at most 4000 (EMBEDDING_DIM)")
}

// loadConfig layers file < env < flags and validates.
func loadConfig(cmd *cobra.Command, lookupEnv func(string) (string, bool)) (config.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	cfg, err := config.Load(path, lookupEnv)
	if err != nil {
		return cfg, err
	}
	fs := cmd.Flags()
	str := func(name string, dst *string) {
		if fs.Changed(name) {
			*dst, _ = fs.GetString(name)
		}
	}
	num := func(name string, dst *int) {
		if fs.Changed(name) {
			*dst, _ = fs.GetInt(name)
		}
	}
	str("host", &cfg.Host)
	num("port", &cfg.Port)
	if fs.Changed("allowed-hosts") {
		v, _ := fs.GetString("allowed-hosts")
		cfg.AllowedHosts = config.SplitList(v)
	}
	str("data-dir", &cfg.DataDir)
	str("database-url", &cfg.DatabaseURL)
	str("redis-url", &cfg.RedisURL)
	str("llm-provider", &cfg.LLMProvider)
	str("llm-model", &cfg.LLMModel)
	str("llm-base-url", &cfg.LLMBaseURL)
	str("embedding-provider", &cfg.EmbeddingProvider)
	str("embedding-model", &cfg.EmbeddingModel)
	str("embedding-base-url", &cfg.EmbeddingBaseURL)
	num("embedding-dim", &cfg.EmbeddingDim)
	num("max-running-agents", &cfg.MaxRunningAgents)
	num("max-running-per-scope", &cfg.MaxRunningPerScope)
	num("max-steps", &cfg.MaxStepsPerRun)
	num("vector-index-mb", &cfg.VectorIndexMB)
	str("log-level", &cfg.LogLevel)
	str("auth", &cfg.Auth.Mode)
	if fs.Changed("idle-timeout") {
		v, _ := fs.GetString("idle-timeout")
		if err := cfg.AgentIdleTimeout.Set(v); err != nil {
			return cfg, &config.Error{Key: "--idle-timeout", Reason: err.Error()}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func newServeCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "serve",
		Aliases: []string{"dev"},
		Short:   "Start the daemon (API, streams and agents)",
		Example: "  openintern serve\n  PORT=8080 DATABASE_URL=postgres://localhost/openintern openintern serve\n  openintern serve --llm-base-url http://127.0.0.1:11434/v1 --llm-model qwen2.5",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, lookupEnv)
			if err != nil {
				return err
			}
			insecure, _ := cmd.Flags().GetBool("insecure-no-auth")
			if err := checkExposure(cfg, insecure); err != nil {
				return err
			}
			logger := newLogger(cmd.ErrOrStderr(), cfg.LogLevel)
			if cfg.Auth.Mode == config.AuthOff && !httpapi.IsLoopbackHost(cfg.Host) {
				logger.Warn("auth is off on a non-loopback address (--insecure-no-auth): anyone who can reach it is every tenant at once", "host", cfg.Host)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			m := &daemon.Main{Config: cfg, Logger: logger, Version: version}
			if err := m.Run(ctx); err != nil {
				return err
			}
			bus := "in-process"
			if cfg.RedisURL != "" {
				bus = "redis " + cfg.Redacted().RedisURL
			}
			model := m.Model.Name()
			if model == "offline" {
				model = "offline demo model (no LLM key configured; set LLM_API_KEY or LLM_BASE_URL for a real one)"
			} else if cfg.LLMModel != "" {
				model += " " + cfg.LLMModel
			}
			node := m.NodeID() + " (SQLite: one daemon per file)"
			if cfg.DatabaseURL != "" {
				node = fmt.Sprintf("%s (one of the daemons on this database; leases of %s)", m.NodeID(), cfg.LeaseTTL)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OpenIntern is serving on %s\n  store: %s\n  bus:   %s\n  node:  %s\n  model: %s\n  embed: %s\n  auth:  %s\n",
				m.URL(), m.StoreDescription(), bus, node, model, daemon.DescribeEmbedder(m.Embedder), describeAuth(cfg.Auth.Mode, m.Addr()))
			logger.Info("daemon started", "url", m.URL(), "store", m.StoreDescription(), "model", model, "node", m.NodeID())

			<-ctx.Done()
			// Drain first: /readyz fails at once so load balancers stop
			// sending requests, and the agents and groups this node owns are
			// handed to the other nodes at step boundaries. Then the usual
			// shutdown, with a timeout of its own.
			logger.Info("draining", "node", m.NodeID())
			drainCtx, cancelDrain := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
			if err := m.Drain(drainCtx); err != nil {
				logger.Warn("drain did not finish; stopping anyway", "err", err)
			}
			cancelDrain()
			logger.Info("shutting down")
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
			defer cancel()
			if err := m.Close(closeCtx); err != nil {
				logger.Error("shutdown", "err", err)
				return &exitError{code: 1, err: fmt.Errorf("shutdown: %w", err)}
			}
			logger.Info("stopped cleanly")
			return nil
		},
	}
	addServeFlags(cmd.Flags())
	cmd.Flags().Bool("insecure-no-auth", false, "allow auth off on a non-loopback HOST: anyone who can reach the port is every tenant")
	return cmd
}

// checkExposure refuses to serve without auth on an address other machines
// can reach, unless told to (exit 2, like any bad setting).
func checkExposure(cfg config.Config, insecure bool) error {
	if cfg.Auth.Mode != config.AuthOff || httpapi.IsLoopbackHost(cfg.Host) || insecure {
		return nil
	}
	return &config.Error{Key: "HOST", Reason: fmt.Sprintf("%q is not a loopback address and auth is off, so anyone who can reach it "+
		"would be every tenant at once: set AUTH=token (make the first admin token with `openintern tokens create`), "+
		"or pass --insecure-no-auth to serve without auth anyway", cfg.Host)}
}

// describeAuth is the banner's auth line: the mode and who can reach it.
func describeAuth(mode string, addr net.Addr) string {
	if mode == config.AuthToken {
		return "token (every API request needs an API token or a signed-in session); " + describeListener(addr)
	}
	return "off; " + describeListener(addr)
}

// describeListener says who can reach the address the daemon actually bound,
// which is what matters while there is no auth.
func describeListener(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "listening on " + addr.String()
	}
	const exposed = ": anyone who can reach this machine can use the API"
	switch {
	case tcp.IP.IsUnspecified() && tcp.IP.To4() != nil:
		return "listening on every IPv4 address (0.0.0.0)" + exposed
	case tcp.IP.IsUnspecified():
		// Go binds a wildcard HOST (0.0.0.0 included) as one dual-stack socket.
		return "listening on every IPv4 and IPv6 address ([::])" + exposed
	case tcp.IP.IsLoopback():
		return "listening on loopback " + tcp.IP.String() + " only"
	}
	return "listening on " + tcp.IP.String() + exposed + " through that address"
}

func newInitCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "init",
		Short:   "Write agent.config.json with every setting at its default",
		Example: "  openintern init\n  openintern init --force --config ./prod.config.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := cmd.Flags().GetString("config")
			if path == "" {
				path = config.DefaultFile
			}
			force, _ := cmd.Flags().GetBool("force")
			if _, err := os.Stat(path); err == nil && !force {
				return &exitError{code: 1, err: fmt.Errorf("%s already exists; use --force to overwrite it", path)}
			}
			data, err := json.MarshalIndent(config.Default(), "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d settings); environment variables and flags override it\n", path, strings.Count(string(data), "\n")-1)
			return nil
		},
	}
	cmd.Flags().Bool("force", false, "overwrite an existing file")
	return cmd
}
