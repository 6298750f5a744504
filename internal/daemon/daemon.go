// Package daemon is OpenIntern's daemon: the store, bus, model, tools,
// memory, agents, mailbox and HTTP API wired into one Main. `openintern
// serve` runs it, and the end-to-end tests of cmd/openintern and web start
// the same Main, so they test the wiring that ships.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/openintern/openintern/actors"
	"github.com/openintern/openintern/config"
	"github.com/openintern/openintern/events"
	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/llm"
	"github.com/openintern/openintern/mailbox"
	"github.com/openintern/openintern/mcpserve"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/memory/memorytools"
	"github.com/openintern/openintern/metrics"
	"github.com/openintern/openintern/policy"
	"github.com/openintern/openintern/skills"
	"github.com/openintern/openintern/store"
	"github.com/openintern/openintern/store/postgres"
	"github.com/openintern/openintern/store/sqlite"
	"github.com/openintern/openintern/tools"
	"github.com/openintern/openintern/tools/mcptools"
	"github.com/openintern/openintern/tools/teamtools"
	"github.com/openintern/openintern/web"
)

// Main is the daemon: every component, wired, with one Run and one Close. The
// end-to-end tests reuse it on port 0 with a data dir in t.TempDir().
// Set the exported fields above Store before Run; Run sets the rest.
type Main struct {
	Config config.Config
	Logger *slog.Logger
	// Model overrides the configured LLM provider (tests use it for an instant model).
	Model llm.Provider
	// Heartbeat overrides the SSE keep-alive interval (default 15 s).
	Heartbeat time.Duration
	// Embedder overrides the configured memory embedder; Run sets it from
	// the config when nil.
	Embedder memory.Embedder
	// Version is the daemon's version, as traces name it.
	Version string
	// Policy overrides the tool policy that decides whether a tool call
	// runs, is refused or waits for a person's approval (nil: the engine of
	// the config's and the scopes' rules, see PolicyEngine).
	Policy tools.Policy
	// Rules writes the policy rule of "approve always" (nil: the engine's
	// AllowAlways).
	Rules httpapi.RuleWriter

	// Metrics are served at /metrics; Run makes them.
	Metrics *metrics.Metrics
	// RedisPrefix prefixes the daemon's Redis keys and channels (default
	// "openintern:"); every daemon of a cluster must use the same one.
	RedisPrefix string

	Store   store.Store
	Bus     events.Bus
	Mailbox *mailbox.Mailbox
	Runtime *actors.Runtime
	API     *httpapi.Server

	// policy is the tool policy engine; see PolicyEngine.
	policy *policy.Engine
	// cluster is this daemon as a node of the daemons sharing its store.
	cluster  *cluster
	nodeID   string
	redis    *redis.Client
	server   *http.Server
	listener net.Listener
	serveErr chan error
	// baseCtx is every request's base context; cancelling it ends SSE streams at shutdown.
	baseCtx    context.Context
	cancelBase context.CancelFunc
	closers    []func(context.Context) error
}

// PolicyEngine is the tool policy engine, once Run has returned: the tool
// router consults it on every call unless Policy overrides it, and the
// policy routes serve its rules.
func (m *Main) PolicyEngine() *policy.Engine { return m.policy }

// engineRules adapts the engine's AllowAlways to the approvals' RuleWriter.
type engineRules struct{ e *policy.Engine }

func (r engineRules) AllowAlways(ctx context.Context, scope store.Scope, tool, agentID, by string) error {
	_, err := r.e.AllowAlways(ctx, scope, tool, agentID, by)
	return err
}

// NodeID is this daemon's id among those sharing its store (OPENINTERN_NODE_ID,
// else made up at Run), once Run has returned.
func (m *Main) NodeID() string { return m.nodeID }

// URL is where the daemon listens, once Run has returned.
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Addr is the address the daemon bound, once Run has returned.
func (m *Main) Addr() net.Addr { return m.listener.Addr() }

// StoreDescription names the store for humans.
func (m *Main) StoreDescription() string {
	if m.Config.DatabaseURL != "" {
		return "postgres " + m.Config.Redacted().DatabaseURL
	}
	return "sqlite " + m.SQLitePath()
}

func (m *Main) SQLitePath() string { return filepath.Join(m.Config.DataDir, "openintern.db") }

// Run opens the store, starts the agents and serves HTTP. It returns once the
// daemon is serving; if start-up fails half way, what started is stopped.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = m.Close(closeCtx)
		}
	}()
	cfg := m.Config
	if m.Logger == nil {
		m.Logger = slog.Default()
	}

	// Listen before the agents start so a port clash fails fast, and before
	// the runtime is made so the node can report the address it bound.
	m.listener, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	m.closers = append(m.closers, func(context.Context) error { _ = m.listener.Close(); return nil })

	var memStore memory.Store
	m.Store, memStore, err = OpenStore(ctx, cfg.DatabaseURL, m.SQLitePath(), m.Logger.With("component", "store"), sqlite.Daemon())
	if err != nil {
		return err
	}
	m.closers = append(m.closers, func(context.Context) error { return m.Store.Close() })
	if pg, ok := m.Store.(*postgres.Store); ok {
		pg.KeepStatistics(statisticsInterval)
	}

	m.Metrics = metrics.New()
	// Off (a no-op tracer) unless OTEL_EXPORTER_OTLP_ENDPOINT is set. Shut
	// down, which flushes the spans still buffered, once the agents have
	// stopped and just before the store closes.
	tracerProvider, stopTracing, err := metrics.NewTracerProvider(ctx, m.Version)
	if err != nil {
		return err
	}
	m.closers = append(m.closers, stopTracing)
	if vi, ok := memStore.(interface{ SetVectorIndexBytes(int64) }); ok {
		vi.SetVectorIndexBytes(int64(cfg.VectorIndexMB) << 20)
	}
	if qs, ok := m.Store.(store.QuotaSetter); ok {
		qs.SetQuotas(store.Quotas{AgentsPerScope: int64(cfg.MaxAgentsPerScope), MemoryBytesPerScope: int64(cfg.MaxMemoryBytesPerScope)})
	}

	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return &config.Error{Key: "REDIS_URL", Reason: err.Error()}
		}
		m.redis = redis.NewClient(opts)
		if err := m.redis.Ping(ctx).Err(); err != nil {
			_ = m.redis.Close()
			return fmt.Errorf("connect redis: %w", err)
		}
		m.closers = append(m.closers, func(context.Context) error { return m.redis.Close() })
		bus, err := events.NewRedisBus(ctx, m.redis, m.redisPrefix(), m.Logger.With("component", "bus"))
		if err != nil {
			return fmt.Errorf("redis bus: %w", err)
		}
		m.Bus = bus
	} else {
		// Each SSE stream holds one subscriber buffer (about 180 bytes an event):
		// 1024 events cost 177 KB a stream. A subscriber that falls behind is
		// dropped and catches up from the store, so a smaller buffer loses nothing
		// stored; the Redis bus uses the same default.
		m.Bus = events.NewMemoryBus(events.DefaultBufferSize)
	}
	m.closers = append(m.closers, func(context.Context) error { return m.Bus.Close() })

	if m.Model == nil {
		// The router sends each agent's requests to the provider its model
		// names; it is an llm.Provider, so the actors need nothing else.
		m.Model, err = llm.NewRouter(RouterConfig(cfg, m.Logger.With("component", "llm")))
		if err != nil {
			return &config.Error{Key: "LLM_PROVIDER", Reason: err.Error()}
		}
	}

	if err := os.MkdirAll(cfg.Workspace(), 0o755); err != nil {
		return fmt.Errorf("create workspace: %w", err)
	}
	if m.policy, err = newPolicy(cfg, m.Store, m.Logger.With("component", "policy")); err != nil {
		return err
	}
	registryOpts := []tools.Option{tools.WithLogger(m.Logger.With("component", "tools")), toolAuditor(m.Store, m.Logger)}
	// The tool policy decides every call: an injected one (tests) or the
	// engine of the config's and the scopes' rules.
	if m.Policy != nil {
		registryOpts = append(registryOpts, tools.WithPolicy(m.Policy))
	} else {
		registryOpts = append(registryOpts, tools.WithPolicy(m.policy))
	}
	registry := tools.NewRegistry(registryOpts...)
	rules := m.Rules
	if rules == nil {
		rules = engineRules{m.policy}
	}
	if m.Embedder == nil {
		m.Embedder = NewEmbedder(cfg, m.Logger.With("component", "embedder"))
	}
	memSvc, err := memory.New(memory.Config{Store: memStore, Embedder: m.Embedder, Logger: m.Logger.With("component", "memory")})
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	agentMem := memory.NewAgentMemory(memSvc, m.Store, m.Logger.With("component", "memory"))
	m.closers = append(m.closers, agentMem.Close)
	for _, t := range append([]tools.Tool{tools.NewReadFile(cfg.Workspace()), tools.NewExportTrace(m.Store)}, memorytools.Tools(memSvc)...) {
		if err := registry.Register(t); err != nil {
			return fmt.Errorf("register tool: %w", err)
		}
	}
	reachTools, err := builtinReachTools(ctx, cfg)
	if err != nil {
		return err
	}
	for _, t := range reachTools {
		if err := registry.Register(t); err != nil {
			return fmt.Errorf("register tool: %w", err)
		}
	}

	var toolNames func() []string // set once the MCP servers are known
	skillCat, err := newSkillCatalog(cfg, m.Store, func() []string { return toolNames() })
	if err != nil {
		return err
	}
	if err := registry.Register(skills.NewTool(skillCat, m.Store)); err != nil {
		return fmt.Errorf("register tool: %w", err)
	}

	board := memory.NewBlackboard(memSvc, eventRecorder{m.Store, m.Bus})
	leases, err := m.leaseStore()
	if err != nil {
		return err
	}
	m.nodeID = cfg.NodeID
	if m.nodeID == "" {
		m.nodeID = config.NewNodeID()
	}
	m.Runtime = actors.New(actors.Config{
		MaxRunning: cfg.MaxRunningAgents, MaxSteps: cfg.MaxStepsPerRun,
		IdleTimeout: time.Duration(cfg.AgentIdleTimeout), SessionHistory: cfg.SessionHistory,
		DefaultModel: cfg.LLMModel, Memory: recallOrNil(cfg.MemoryRecall, agentMem),
		Blackboard: orchestratorBoard{board, m.Logger.With("component", "actors")}, MaxRunningPerScope: cfg.MaxRunningPerScope,
		Observer: m.Metrics, Tracer: tracerProvider.Tracer(actors.TracerName), Skills: skillCat,
		ApprovalTimeout: time.Duration(cfg.Approvals.Timeout),
		NodeID:          m.nodeID, Leases: leases, LeaseTTL: time.Duration(cfg.LeaseTTL),
		NodeAddr: m.advertiseAddr(), Version: m.Version,
	}, m.Store, m.Bus, m.Model, registry, m.Logger.With("component", "actors"))
	m.Mailbox = mailbox.New(m.Store, m.Runtime, m.Logger.With("component", "mailbox"), mailbox.WithCommitTimeout(time.Duration(cfg.CommitTimeout)), mailbox.WithObserver(m.Metrics))
	for _, t := range teamtools.Tools(m.Store, m.Mailbox, board, teamtools.Limits{}) {
		if err := registry.Register(t); err != nil {
			return fmt.Errorf("register tool: %w", err)
		}
	}

	pins, ok := m.Store.(store.MCPPinStore)
	if !ok {
		return fmt.Errorf("store %T keeps no MCP tool pins", m.Store)
	}
	tenantMCP, err := m.tenantMCP(cfg, registry)
	if err != nil {
		return err
	}
	mcpServers, err := mcptools.New(mcptools.Config{
		Servers: cfg.MCPServers, Registry: registry, Pins: pins,
		CallTimeout: time.Duration(cfg.MCPCallTimeout), Logger: m.Logger.With("component", "mcp"),
		Tenants: tenantMCP,
	})
	if err != nil {
		return &config.Error{Key: "mcpServers", Reason: err.Error()}
	}
	// A scope's agents starting a turn (or calling one of its servers'
	// tools) start the scope's tenant MCP servers.
	registry.SetScopeActivator(mcpServers.Activate)
	toolNames = func() []string { return append(registry.Names(), mcpServers.GrantNames()...) }
	// The dry run knows an MCP tool's annotations as the router would.
	m.policy.Lookup = mcpServers.ToolInfo
	var models httpapi.ModelChecker
	if r, ok := m.Model.(*llm.Router); ok {
		models = r // an injected provider (tests) accepts any model
	}

	m.API = httpapi.New(httpapi.Deps{
		Store: m.Store, Mailbox: m.Mailbox, Runtime: m.Runtime, Bus: m.Bus, Blackboard: board,
		Logger: m.Logger.With("component", "http"), MaxBodyBytes: cfg.MaxBodyBytes, Heartbeat: m.Heartbeat,
		ToolNames: toolNames, Models: models, RestrictHosts: httpapi.IsLoopbackHost(cfg.Host), AllowedHosts: allowedHosts(cfg.AllowedHosts),
		AuthRequired: cfg.Auth.Mode == config.AuthToken, SecureCookies: cfg.Auth.SecureCookies,
		Metrics: m.Metrics.Handler(), SSEClients: m.Metrics.SSEClients(),
		AuditRetention: time.Duration(cfg.AuditRetention),
		RateLimit:      httpapi.RateLimit{RPS: cfg.RateLimitRPS, Burst: cfg.RateLimitBurst},
		MaxStreams:     cfg.MaxStreams, MaxStreamsPerScope: cfg.MaxStreamsPerScope,
		Rules: rules,
	})
	m.Metrics.WatchRuntime(func(ctx context.Context) (metrics.RuntimeStats, error) {
		st, err := m.Runtime.Stats(ctx)
		return metrics.RuntimeStats{Active: st.ActiveAgents, Running: st.RunningAgents, Waiting: st.WaitingAgents}, err
	})
	m.Metrics.WatchInbox(m.Store.CountUnreadMessages)
	if rt, ok := m.Store.(interface{ RoundTrips() map[string]int64 }); ok {
		m.Metrics.WatchRoundTrips(rt.RoundTrips)
	}
	m.API.MountMemory(memSvc)
	// Both stores keep jobs; the assertion only keeps a store without them
	// (none today) from failing the start.
	var jobRunner *ingest.Runner
	if jobStore, ok := m.Store.(store.JobStore); ok {
		kinds := []ingest.Kind{ingest.LocalFiles{Store: jobStore, Memories: memSvc}}
		mk, err := mineruKind(cfg, jobStore, memSvc, m.Logger)
		if err != nil {
			return err
		}
		if mk != nil {
			kinds = append(kinds, mk)
		}
		feishuKinds, err := m.feishuKinds(memSvc)
		if err != nil {
			return err
		}
		kinds = append(kinds, feishuKinds...)
		jobRunner, err = ingest.NewRunner(ingest.RunnerConfig{Store: jobStore, Logger: m.Logger.With("component", "ingest"),
			Concurrency: cfg.IngestConcurrency, Kinds: kinds})
		if err != nil {
			return err
		}
		m.API.MountJobs(httpapi.JobsConfig{Store: jobStore, Wake: jobRunner.Wake, KindLocalFiles: ingest.KindLocalFiles, KindMineru: kindName(mk)})
		if err := registerMineruTool(registry, mk, cfg, jobStore, jobRunner.Wake); err != nil {
			return err
		}
		m.mountFeishu(jobRunner)
	}
	m.cluster = newCluster(store.Node{ID: m.nodeID, Addr: m.advertiseAddr(), Version: m.Version, StartedAt: time.Now().UTC()},
		leases, m.Runtime, m.Logger.With("component", "cluster"))
	m.API.MountCluster(m.cluster)
	m.API.MountMCP(mcpServers)
	m.API.MountPolicy(m.policy)
	m.API.MountSkills(skillCat)
	m.API.MountMCPServer(mcpserve.Handler(m.API.Handler()))
	web.Mount(m.API.Engine())

	if cfg.PprofAddr != "" {
		stopPprof, err := startPprof(cfg.PprofAddr, m.Logger)
		if err != nil {
			return err
		}
		m.closers = append(m.closers, stopPprof)
	}

	m.Mailbox.Start()
	m.closers = append(m.closers, m.Mailbox.Stop)
	// MCP servers start in the background (a slow or broken one only logs)
	// and stop after the registry closed, once no call of theirs is left.
	mcpServers.Start()
	m.closers = append(m.closers, mcpServers.Close)
	// Closed after the agents stop and before the mailbox and store, so a
	// tool call left running past its deadline cannot write after them.
	m.closers = append(m.closers, registry.Close)
	if err := m.setDispatcher(ctx, leases); err != nil {
		return err
	}
	if err := m.Runtime.Start(ctx); err != nil {
		return err
	}
	m.closers = append(m.closers, func(ctx context.Context) error { return m.stopRuntime(ctx, leases) })
	if jobRunner != nil {
		// Claims queued jobs and resumes those a crash left running; stopped
		// after HTTP and before the agents and the store, it releases the
		// jobs it was running, which resume at the next start.
		if err := jobRunner.Start(ctx); err != nil {
			return err
		}
		m.closers = append(m.closers, jobRunner.Stop)
		m.startFeishuPoller(jobRunner)
	}

	m.baseCtx, m.cancelBase = context.WithCancel(context.Background())
	// No WriteTimeout: it would cut every SSE stream. A slow reader of a
	// normal response holds one goroutine until TCP gives up on it.
	m.server = &http.Server{
		Handler:           m.API.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Duration(cfg.ReadTimeout),
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return m.baseCtx },
	}
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.server.Serve(m.listener) }()
	m.closers = append(m.closers, m.stopHTTP)

	// Last, so that it neither delays start-up nor competes with it; its
	// closer runs first, so it has stopped before the store closes.
	m.closers = append(m.closers, startReEmbed(m.baseCtx, memSvc, m.Logger.With("component", "memory")))
	return nil
}

// newPolicy builds the tool policy from the config over the store's rules.
// http_fetch's allow-list (fetch.allow) is allow-listed for the policy too.
func newPolicy(cfg config.Config, st store.Store, logger *slog.Logger) (*policy.Engine, error) {
	ps, ok := st.(store.PolicyStore)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no tool policy", st)
	}
	e, err := policy.New(ps, policy.Config{
		Rules: cfg.Policy.Rules, Defaults: cfg.Policy.Defaults, ScratchDir: cfg.Policy.ScratchDir,
		AllowHosts: append(slices.Clone(cfg.Fetch.Allow), cfg.Policy.AllowHosts...),
	}, logger)
	if err != nil {
		return nil, &config.Error{Key: "policy", Reason: err.Error()}
	}
	return e, nil
}

// statisticsInterval is how often the daemon looks for PostgreSQL tables
// whose statistics lag their growth (see postgres.Store.KeepStatistics).
const statisticsInterval = 5 * time.Second

// idleTimeout closes a keep-alive connection with no request for this long.
const idleTimeout = 120 * time.Second

// allowedHosts normalises the configured names as the API compares them.
func allowedHosts(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSuffix(strings.ToLower(strings.Trim(n, "[]")), ".")
	}
	return out
}

// OpenStore opens PostgreSQL when dbURL is set, else the SQLite file at
// sqlitePath (creating its directory), and returns the store with its memory
// adapter. The daemon, `memory reembed` and `eval retrieval` all open stores
// this way, so they apply the same migrations; only the daemon passes
// sqlite.Daemon(), the lock that keeps a second daemon off its file.
func OpenStore(ctx context.Context, dbURL, sqlitePath string, logger *slog.Logger, sqliteOpts ...sqlite.Option) (store.Store, memory.Store, error) {
	if dbURL != "" {
		pg, err := postgres.Open(ctx, dbURL, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("open postgres: %w", err)
		}
		return pg, pg.Memory(), nil
	}
	if err := os.MkdirAll(filepath.Dir(sqlitePath), 0o755); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	lite, err := sqlite.Open(ctx, sqlitePath, logger, sqliteOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("open sqlite: %w", err)
	}
	return lite, lite.Memory(), nil
}

// stopHTTP stops accepting, ends open streams, and waits for handlers.
func (m *Main) stopHTTP(ctx context.Context) error {
	m.cancelBase()
	err := m.server.Shutdown(ctx)
	if serr := <-m.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// Close stops everything in reverse order of start: HTTP (ends streams; no
// new message is accepted), the agents (each stops at a step boundary and keeps
// its checkpoint; a message one sends on its way out still goes through the
// mailbox), the mailbox (commits what it accepted; the wakes it then sends are
// dropped, and the next start wakes those agents from the store), the memory
// writer, the bus, Redis, the store. Safe twice.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}

// recallOrNil turns automatic recall and run summaries off when configured so;
// the memory tools and API stay available either way.
func recallOrNil(on bool, mem *memory.AgentMemory) actors.Memory {
	if !on {
		return nil
	}
	return mem
}

var _ actors.Memory = (*memory.AgentMemory)(nil)
