// Package config is OpenIntern's layered configuration: defaults, then
// agent.config.json, then the environment, then command-line flags (and, per
// request, the API). Only this package and cmd read files and the environment.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/openintern/openintern/policy"
	"github.com/openintern/openintern/tools"
)

// DefaultFile is the config file `openintern init` writes and `serve` reads.
const DefaultFile = "agent.config.json"

// Embedding providers.
const (
	EmbeddingLocal  = "local"
	EmbeddingOpenAI = "openai"
)

// DefaultEmbeddingBaseURL is where the openai embedding provider posts when
// EMBEDDING_BASE_URL is unset.
const DefaultEmbeddingBaseURL = "https://api.openai.com/v1"

// MaxEmbeddingDim is pgvector's limit for an HNSW-indexed halfvec, the type
// PostgreSQL indexes models over 2000 dimensions as; a larger model could be
// stored on SQLite but not searched on PostgreSQL, so it is refused for both.
const MaxEmbeddingDim = 4000

// embeddingModelRE is the charset the stores accept in a model name (it goes
// into PostgreSQL index predicates as a literal), minus room for the
// "openai:" prefix the embedder adds; checking it here fails at start-up
// instead of at the first write.
var embeddingModelRE = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,93}$`)

// Config is every setting of the daemon. JSON names are the file's keys; env
// names are in the field comments.
type Config struct {
	Host    string `json:"host"`     // HOST; 127.0.0.1 so the API is not exposed without auth
	Port    int    `json:"port"`     // PORT
	DataDir string `json:"data_dir"` // DATA_DIR; the embedded store and the workspace live here
	// AllowedHosts are host names the API answers to besides loopback ones
	// (OPENINTERN_ALLOWED_HOSTS, comma-separated). On a loopback HOST any
	// other Host header is refused, which stops DNS rebinding; set this to
	// reach the daemon through a name, e.g. behind a local proxy.
	AllowedHosts []string `json:"allowed_hosts"`

	DatabaseURL string `json:"database_url"` // DATABASE_URL; empty: embedded SQLite under DataDir
	RedisURL    string `json:"redis_url"`    // REDIS_URL; empty: in-process event bus

	// Several daemons may share one PostgreSQL database (see docs/DEPLOY.md).
	NodeID        string   `json:"node_id"`        // OPENINTERN_NODE_ID; empty: the host name and a random suffix, new at every start
	LeaseTTL      Duration `json:"lease_ttl"`      // OPENINTERN_LEASE_TTL: how long a node owns an agent or group without renewing
	AdvertiseAddr string   `json:"advertise_addr"` // OPENINTERN_ADVERTISE_ADDR: where this node's API answers, as /api/cluster shows it

	LLMProvider   string   `json:"llm_provider"`    // LLM_PROVIDER: openai, offline, or an OpenAI-compatible name
	LLMModel      string   `json:"llm_model"`       // LLM_MODEL
	LLMAPIKey     string   `json:"llm_api_key"`     // LLM_API_KEY, else OPENAI_API_KEY
	LLMBaseURL    string   `json:"llm_base_url"`    // LLM_BASE_URL
	LLMTimeout    Duration `json:"llm_timeout"`     // LLM_TIMEOUT
	LLMMaxRetries int      `json:"llm_max_retries"` // LLM_MAX_RETRIES

	// Gemini (LLM_PROVIDER=gemini or gemini/… models). Kept apart from LLM_API_KEY so a Google
	// key is only sent to Google, and an OpenAI key never is.
	GeminiAPIKey  string `json:"gemini_api_key"`  // GEMINI_API_KEY, else GOOGLE_API_KEY
	GeminiBaseURL string `json:"gemini_base_url"` // GEMINI_BASE_URL; empty: Google's endpoint
	// Providers other than the default, for agents and roles whose model is
	// provider/model or a Models entry.
	AnthropicAPIKey  string `json:"anthropic_api_key"`  // ANTHROPIC_API_KEY
	AnthropicBaseURL string `json:"anthropic_base_url"` // ANTHROPIC_BASE_URL
	OpenAIAPIKey     string `json:"openai_api_key"`     // OPENAI_API_KEY (for openai/… when openai is not LLM_PROVIDER)
	// Models are named models ("strong", "cheap") agents and roles may name
	// instead of provider/model, with their fallbacks.
	Models map[string]ModelConfig `json:"models"`

	// Memory embeddings. A vector is stored with its model's name, so
	// changing these never mixes two models in one search: the daemon
	// re-embeds stored chunks for the new model in the background.
	EmbeddingProvider string   `json:"embedding_provider"` // EMBEDDING_PROVIDER: local (hashed, no network) or openai (any OpenAI-compatible server)
	EmbeddingModel    string   `json:"embedding_model"`    // EMBEDDING_MODEL: required for openai
	EmbeddingBaseURL  string   `json:"embedding_base_url"` // EMBEDDING_BASE_URL: default DefaultEmbeddingBaseURL for openai
	EmbeddingAPIKey   string   `json:"embedding_api_key"`  // EMBEDDING_API_KEY, else the LLM key when both go to one host, else OPENAI_API_KEY for OpenAI
	EmbeddingDim      int      `json:"embedding_dim"`      // EMBEDDING_DIM: required for openai; for local the hashed dimension (0: the local default)
	EmbeddingTimeout  Duration `json:"embedding_timeout"`  // EMBEDDING_TIMEOUT: per request to the embeddings endpoint

	MaxRunningAgents int      `json:"max_running_agents"` // OPENINTERN_MAX_RUNNING_AGENTS
	MaxStepsPerRun   int      `json:"max_steps_per_run"`  // OPENINTERN_MAX_STEPS
	AgentIdleTimeout Duration `json:"agent_idle_timeout"` // OPENINTERN_AGENT_IDLE_TIMEOUT: passivate after this
	SessionHistory   int      `json:"session_history"`    // OPENINTERN_SESSION_HISTORY: earlier turns in context
	WorkspaceDir     string   `json:"workspace_dir"`      // OPENINTERN_WORKSPACE: read_file's root; default DataDir/workspace
	MemoryRecall     bool     `json:"memory_recall"`      // OPENINTERN_MEMORY_RECALL: recall memories into each turn and store run summaries
	PprofAddr        string   `json:"pprof_addr"`         // OPENINTERN_PPROF: address of a Go profiling server (net/http/pprof), e.g. 127.0.0.1:6060; empty: off
	VectorIndexMB    int      `json:"vector_index_mb"`    // OPENINTERN_VECTOR_INDEX_MB: memory for exact vector search of the searched scopes (0: none)
	MaxBodyBytes     int64    `json:"max_body_bytes"`     // OPENINTERN_MAX_BODY_BYTES
	ReadTimeout      Duration `json:"read_timeout"`       // OPENINTERN_READ_TIMEOUT: a request, body included, must arrive within this (408 or a closed connection otherwise)
	ShutdownTimeout  Duration `json:"shutdown_timeout"`   // OPENINTERN_SHUTDOWN_TIMEOUT
	CommitTimeout    Duration `json:"commit_timeout"`     // OPENINTERN_COMMIT_TIMEOUT: bound on accepting a message; a store slower than this answers 503
	LogLevel         string   `json:"log_level"`          // LOG_LEVEL: debug, info, warn, error

	// MaxRunningPerScope caps one scope's share of MaxRunningAgents (0: no
	// cap); slots are shared round-robin between scopes either way.
	MaxRunningPerScope int `json:"max_running_per_scope"` // OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE

	// AuditRetention is how long audit records are kept (OPENINTERN_AUDIT_RETENTION,
	// a duration such as 2160h or a number of days such as 90d; 0 keeps them forever).
	AuditRetention Duration `json:"audit_retention"`

	Auth Auth `json:"auth"`
	// Limits (0: none). Requests are limited per token (per client address
	// for callers without one, except on loopback), streams per scope and in
	// all, and what a scope may store.
	RateLimitRPS           float64 `json:"rate_limit_rps"`             // OPENINTERN_RATE_LIMIT_RPS: requests per second refilled into each caller's bucket
	RateLimitBurst         int     `json:"rate_limit_burst"`           // OPENINTERN_RATE_LIMIT_BURST: requests a caller may send at once
	MaxStreams             int     `json:"max_streams"`                // OPENINTERN_MAX_STREAMS: SSE streams open at once, in all
	MaxStreamsPerScope     int     `json:"max_streams_per_scope"`      // OPENINTERN_MAX_STREAMS_PER_SCOPE: SSE streams open at once per scope
	MaxAgentsPerScope      int     `json:"max_agents_per_scope"`       // OPENINTERN_MAX_AGENTS_PER_SCOPE
	MaxMemoryBytesPerScope Bytes   `json:"max_memory_bytes_per_scope"` // OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE: bytes of memory text ("1GiB", "500MB" or a number)

	// IngestConcurrency is how many ingestion jobs the daemon runs at once
	// (OPENINTERN_INGEST_CONCURRENCY); the rest wait queued.
	IngestConcurrency int `json:"ingest_concurrency"`
	// Mineru configures PDF ingestion through MinerU (config/mineru.go).
	Mineru Mineru `json:"mineru"`

	Fetch Fetch `json:"fetch"`
	Shell Shell `json:"shell"`
	// Approvals configures the tool calls a policy asks a person about.
	Approvals Approvals `json:"approvals"`

	// Skills configures Agent Skills: a folder of daemon-wide skills and
	// the size cap of one skill.
	Skills Skills `json:"skills"`

	// MCPServers are the Model Context Protocol servers whose tools agents
	// may be granted (as <name>__<tool>), in the format of Claude Desktop and
	// VS Code. Only this file names them: a stdio server runs a command on the
	// host, so the API never adds one.
	MCPServers map[string]MCPServer `json:"mcpServers"`
	// MCPCallTimeout bounds one call of an MCP tool (OPENINTERN_MCP_CALL_TIMEOUT).
	MCPCallTimeout Duration `json:"mcp_call_timeout"`

	// Policy is the operator's tool policy: rules consulted before any
	// scope's, and the built-in defaults for high-risk tools.
	Policy Policy `json:"policy"`
	// Tenant MCP servers (added over the API, HTTP only): MCPAllow lets
	// their URLs reach addresses otherwise refused (OPENINTERN_FETCH_ALLOW's
	// syntax; that list applies too); MCPIdleTimeout stops one unused this
	// long; MCPMaxServersPerScope bounds a scope's servers.
	MCPAllow              []string `json:"mcp_allow"`                 // OPENINTERN_MCP_ALLOW
	MCPIdleTimeout        Duration `json:"mcp_idle_timeout"`          // OPENINTERN_MCP_IDLE_TIMEOUT
	MCPMaxServersPerScope int      `json:"mcp_max_servers_per_scope"` // OPENINTERN_MCP_MAX_SERVERS_PER_SCOPE
	// SecretKey seals tenant secrets (OPENINTERN_SECRET_KEY, base64 of 32
	// bytes); empty: generated into DATA_DIR for SQLite, none for PostgreSQL.
	SecretKey string `json:"secret_key"`

	// Feishu configures the Feishu connectors (see config/feishu.go).
	Feishu Feishu `json:"feishu"`
}

// Policy configures the tool policy (package policy).
type Policy struct {
	// Rules come first in every scope; the first that matches a call decides.
	Rules []policy.Rule `json:"rules"`
	// Defaults (OPENINTERN_POLICY_DEFAULTS, default on): shell, writes
	// outside ScratchDir, http_fetch to a host not allow-listed and MCP tools
	// that may be destructive ask a person first. Off, they run unasked.
	Defaults bool `json:"defaults"`
	// ScratchDir is the workspace folder agents write in without asking.
	ScratchDir string `json:"scratchDir"`
	// AllowHosts (OPENINTERN_POLICY_ALLOW_HOSTS) are hosts http_fetch
	// reaches without asking, besides fetch.allow, in the same format.
	AllowHosts []string `json:"allowHosts"`
}

// Skills configures Agent Skills.
type Skills struct {
	// Dir is a folder whose subfolders with a SKILL.md are skills every
	// scope sees, read-only over the API (OPENINTERN_SKILLS_DIR; "": none).
	Dir string `json:"dir"`
	// MaxBytes caps one skill's files, uncompressed (OPENINTERN_SKILL_MAX_BYTES).
	MaxBytes Bytes `json:"max_bytes"`
}

// MaxSkillBytes is the largest MaxBytes: an upload's body is at most 32 MiB.
const MaxSkillBytes = 32 << 20

// Fetch configures the http_fetch tool.
type Fetch struct {
	// Allow lists what http_fetch may reach although its address is local or
	// private (OPENINTERN_FETCH_ALLOW, comma-separated): host names
	// ("intranet.example", "*.corp.example"), host:port, IPs and CIDRs.
	Allow    []string `json:"allow"`
	Timeout  Duration `json:"timeout"`   // OPENINTERN_FETCH_TIMEOUT: one fetch, redirects and body included
	MaxBytes int64    `json:"max_bytes"` // OPENINTERN_FETCH_MAX_BYTES: response body bytes read
}

// Approvals configures human approvals of tool calls.
type Approvals struct {
	// Timeout is how long a call waits for a decision; then it expires and
	// the model is told "denied: expired" (OPENINTERN_APPROVAL_TIMEOUT).
	Timeout Duration `json:"timeout"`
}

// DefaultApprovalTimeout is Approvals.Timeout's default.
const DefaultApprovalTimeout = 24 * time.Hour

// Shell configures the shell tool, which is off unless enabled.
type Shell struct {
	Enabled        bool     `json:"enabled"`          // OPENINTERN_SHELL=on: register shell (needs bubblewrap)
	Timeout        Duration `json:"timeout"`          // OPENINTERN_SHELL_TIMEOUT: wall time of one command
	CPUSeconds     int      `json:"cpu_seconds"`      // OPENINTERN_SHELL_CPU_SECONDS
	MemoryMB       int      `json:"memory_mb"`        // OPENINTERN_SHELL_MEMORY_MB: address space of each process
	MaxProcs       int      `json:"max_procs"`        // OPENINTERN_SHELL_MAX_PROCS
	MaxOutputBytes int      `json:"max_output_bytes"` // OPENINTERN_SHELL_MAX_OUTPUT: of stdout and of stderr
}

// MCPServer is one MCP server: Command (stdio) or URL (streamable HTTP, with
// the older SSE transport as a fallback), not both.
type MCPServer struct {
	Command string            `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Type is VS Code's transport name: "stdio", "http" or "sse" ("" infers
	// it: stdio with a command, http with a url). "sse" skips streamable HTTP.
	Type string `json:"type,omitempty"`
	// Disabled keeps a server in the file without starting it.
	Disabled bool `json:"disabled,omitempty"`
}

// ModelConfig is a named model of the "models" section.
type ModelConfig struct {
	Provider string `json:"provider"` // anthropic, openai, an OpenAI-compatible name, ...
	Model    string `json:"model"`
	// BaseURL and the key read from the environment variable APIKeyEnv
	// replace the provider's own settings when set.
	BaseURL   string `json:"baseUrl,omitempty"`
	APIKeyEnv string `json:"apiKeyEnv,omitempty"`
	APIKey    string `json:"-"` // filled from APIKeyEnv by Load
	// Fallbacks (entry names or provider/model) answer when this model
	// fails with a 5xx, overload or timeout after its retries; never after
	// a 4xx, 429 included.
	Fallbacks []string       `json:"fallbacks,omitempty"`
	Thinking  *ModelThinking `json:"thinking,omitempty"`
}

// ModelThinking turns on extended thinking (anthropic).
type ModelThinking struct {
	BudgetTokens int `json:"budgetTokens"`
}

var (
	// modelNameRE has no "/", so an entry's name never reads as provider/model.
	modelNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	providerRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	envVarNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	maxFallbacks  = 5
	minThinkingTk = 1024
)

// validateModels checks the models section; whether a provider exists is
// checked when the daemon builds its model router.
func (c *Config) validateModels() error {
	if c.AnthropicBaseURL != "" {
		u, err := url.Parse(c.AnthropicBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: "ANTHROPIC_BASE_URL", Reason: "must be an http:// or https:// URL"}
		}
	}
	for name, m := range c.Models {
		key := "models." + name
		if !modelNameRE.MatchString(name) {
			return &Error{Key: key, Reason: "a model name is 1-64 of A-Z a-z 0-9 . _ - (no /)"}
		}
		if !providerRE.MatchString(m.Provider) {
			return &Error{Key: key + ".provider", Reason: fmt.Sprintf("must be a provider name such as anthropic or openai, got %q", m.Provider)}
		}
		if strings.TrimSpace(m.Model) == "" || len(m.Model) > 200 {
			return &Error{Key: key + ".model", Reason: "must be 1-200 characters"}
		}
		if m.BaseURL != "" {
			u, err := url.Parse(m.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return &Error{Key: key + ".baseUrl", Reason: "must be an http:// or https:// URL"}
			}
		}
		if m.APIKeyEnv != "" && !envVarNameRE.MatchString(m.APIKeyEnv) {
			return &Error{Key: key + ".apiKeyEnv", Reason: fmt.Sprintf("must name an environment variable, got %q", m.APIKeyEnv)}
		}
		if len(m.Fallbacks) > maxFallbacks {
			return &Error{Key: key + ".fallbacks", Reason: fmt.Sprintf("at most %d", maxFallbacks)}
		}
		for _, fb := range m.Fallbacks {
			_, named := c.Models[fb]
			switch {
			case fb == name:
				return &Error{Key: key + ".fallbacks", Reason: "a model cannot be its own fallback"}
			case !named && !strings.Contains(fb, "/"):
				return &Error{Key: key + ".fallbacks", Reason: fmt.Sprintf("%q is neither a model of this section nor provider/model", fb)}
			}
		}
		if m.Thinking != nil && (m.Thinking.BudgetTokens < minThinkingTk || m.Thinking.BudgetTokens > 128000) {
			return &Error{Key: key + ".thinking.budgetTokens", Reason: fmt.Sprintf("must be between %d and 128000", minThinkingTk)}
		}
	}
	return nil
}

// MCP transports.
const (
	MCPStdio = "stdio"
	MCPHTTP  = "http"
	MCPSSE   = "sse"
)

// Transport is the server's transport: MCPStdio, MCPHTTP or MCPSSE.
func (s MCPServer) Transport() string {
	if s.Type != "" {
		return s.Type
	}
	if s.Command != "" {
		return MCPStdio
	}
	return MCPHTTP
}

// mcpServerNameRE: the name prefixes its tools' names (<name>__<tool>), so it
// has a tool name's charset, lower case, and no "__" (see validateMCP).
var mcpServerNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// ValidMCPServerName reports whether name can name an MCP server.
func ValidMCPServerName(name string) bool {
	return mcpServerNameRE.MatchString(name) && !strings.Contains(name, "__") && !strings.HasSuffix(name, "_")
}

// Auth modes.
const (
	AuthOff   = "off"   // no credential needed: only for a loopback HOST
	AuthToken = "token" // every API request presents an API token or a web session
)

// Auth is who may use the API.
type Auth struct {
	// Mode is AuthOff or AuthToken (AUTH). A non-loopback HOST with auth off
	// refuses to start unless `serve --insecure-no-auth` says so.
	Mode string `json:"mode"`
	// SecureCookies marks the web session cookie Secure on plain HTTP too,
	// for a daemon behind a TLS-terminating proxy (OPENINTERN_SECURE_COOKIES).
	SecureCookies bool `json:"secure_cookies"`
}

// Default returns the configuration with every setting at its default.
func Default() Config {
	return Config{
		Host:              "127.0.0.1",
		Port:              3000,
		DataDir:           "./data",
		LLMTimeout:        Duration(120 * time.Second),
		LLMMaxRetries:     3,
		EmbeddingProvider: EmbeddingLocal,
		EmbeddingTimeout:  Duration(30 * time.Second),
		MaxRunningAgents:  64,
		MaxStepsPerRun:    12,
		AgentIdleTimeout:  Duration(5 * time.Minute),
		SessionHistory:    20,
		MemoryRecall:      true,
		VectorIndexMB:     256,
		MaxBodyBytes:      1 << 20,
		ReadTimeout:       Duration(60 * time.Second),
		ShutdownTimeout:   Duration(10 * time.Second),
		LeaseTTL:          Duration(DefaultLeaseTTL),
		CommitTimeout:     Duration(10 * time.Second),
		Approvals:         Approvals{Timeout: Duration(DefaultApprovalTimeout)},
		LogLevel:          "info",
		Auth:              Auth{Mode: AuthOff},
		AuditRetention:    Duration(DefaultAuditRetention),

		RateLimitRPS:           50,
		RateLimitBurst:         100,
		MaxStreams:             2000,
		MaxStreamsPerScope:     100,
		MaxAgentsPerScope:      1000,
		MaxMemoryBytesPerScope: 1 << 30,
		IngestConcurrency:      2,
		Mineru:                 DefaultMineru(),
		Fetch:                  Fetch{Timeout: Duration(30 * time.Second), MaxBytes: 2 << 20},
		Shell:                  Shell{Timeout: Duration(50 * time.Second), CPUSeconds: 30, MemoryMB: 1024, MaxProcs: 128, MaxOutputBytes: 32 << 10},
		MCPCallTimeout:         Duration(60 * time.Second),
		Policy:                 Policy{Defaults: true, ScratchDir: policy.DefaultScratchDir},
		Skills:                 Skills{MaxBytes: 5 << 20},
		MCPIdleTimeout:         Duration(10 * time.Minute),
		MCPMaxServersPerScope:  20,
		Feishu:                 DefaultFeishu(),
	}
}

// Error names the setting that is wrong; cmd turns it into exit code 2.
type Error struct {
	Key    string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Reason) }

// envKeys maps environment variables to setters. OPENAI_API_KEY is handled apart
// because it only fills LLMAPIKey when LLM_API_KEY is absent; likewise the
// LLM key only fills EmbeddingAPIKey when no embedding key is set (see
// borrowedEmbeddingKey).
var envKeys = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{"HOST", func(c *Config, v string) error { c.Host = v; return nil }},
	{"PORT", func(c *Config, v string) error { return setInt(&c.Port, v) }},
	{"OPENINTERN_ALLOWED_HOSTS", func(c *Config, v string) error { c.AllowedHosts = SplitList(v); return nil }},
	{"DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"DATABASE_URL", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
	{"REDIS_URL", func(c *Config, v string) error { c.RedisURL = v; return nil }},
	{"OPENINTERN_NODE_ID", func(c *Config, v string) error { c.NodeID = strings.TrimSpace(v); return nil }},
	{"OPENINTERN_LEASE_TTL", func(c *Config, v string) error { return c.LeaseTTL.Set(v) }},
	{"OPENINTERN_ADVERTISE_ADDR", func(c *Config, v string) error { c.AdvertiseAddr = strings.TrimSpace(v); return nil }},
	{"LLM_PROVIDER", func(c *Config, v string) error { c.LLMProvider = v; return nil }},
	{"LLM_MODEL", func(c *Config, v string) error { c.LLMModel = v; return nil }},
	{"LLM_API_KEY", func(c *Config, v string) error { c.LLMAPIKey = v; return nil }},
	{"LLM_BASE_URL", func(c *Config, v string) error { c.LLMBaseURL = v; return nil }},
	{"LLM_TIMEOUT", func(c *Config, v string) error { return c.LLMTimeout.Set(v) }},
	{"LLM_MAX_RETRIES", func(c *Config, v string) error { return setInt(&c.LLMMaxRetries, v) }},
	{"GEMINI_API_KEY", func(c *Config, v string) error { c.GeminiAPIKey = v; return nil }},
	{"GEMINI_BASE_URL", func(c *Config, v string) error { c.GeminiBaseURL = v; return nil }},
	{"ANTHROPIC_API_KEY", func(c *Config, v string) error { c.AnthropicAPIKey = v; return nil }},
	{"ANTHROPIC_BASE_URL", func(c *Config, v string) error { c.AnthropicBaseURL = v; return nil }},
	{"EMBEDDING_PROVIDER", func(c *Config, v string) error { c.EmbeddingProvider = v; return nil }},
	{"EMBEDDING_MODEL", func(c *Config, v string) error { c.EmbeddingModel = v; return nil }},
	{"EMBEDDING_BASE_URL", func(c *Config, v string) error { c.EmbeddingBaseURL = v; return nil }},
	{"EMBEDDING_API_KEY", func(c *Config, v string) error { c.EmbeddingAPIKey = v; return nil }},
	{"EMBEDDING_DIM", func(c *Config, v string) error { return setInt(&c.EmbeddingDim, v) }},
	{"EMBEDDING_TIMEOUT", func(c *Config, v string) error { return c.EmbeddingTimeout.Set(v) }},
	{"OPENINTERN_MAX_RUNNING_AGENTS", func(c *Config, v string) error { return setInt(&c.MaxRunningAgents, v) }},
	{"OPENINTERN_MAX_STEPS", func(c *Config, v string) error { return setInt(&c.MaxStepsPerRun, v) }},
	{"OPENINTERN_AGENT_IDLE_TIMEOUT", func(c *Config, v string) error { return c.AgentIdleTimeout.Set(v) }},
	{"OPENINTERN_SESSION_HISTORY", func(c *Config, v string) error { return setInt(&c.SessionHistory, v) }},
	{"OPENINTERN_WORKSPACE", func(c *Config, v string) error { c.WorkspaceDir = v; return nil }},
	{"OPENINTERN_MEMORY_RECALL", func(c *Config, v string) error { return setBool(&c.MemoryRecall, v) }},
	{"OPENINTERN_PPROF", func(c *Config, v string) error { c.PprofAddr = strings.TrimSpace(v); return nil }},
	{"OPENINTERN_VECTOR_INDEX_MB", func(c *Config, v string) error { return setInt(&c.VectorIndexMB, v) }},
	{"OPENINTERN_MAX_BODY_BYTES", func(c *Config, v string) error { return setInt64(&c.MaxBodyBytes, v) }},
	{"OPENINTERN_READ_TIMEOUT", func(c *Config, v string) error { return c.ReadTimeout.Set(v) }},
	{"OPENINTERN_SHUTDOWN_TIMEOUT", func(c *Config, v string) error { return c.ShutdownTimeout.Set(v) }},
	{"OPENINTERN_COMMIT_TIMEOUT", func(c *Config, v string) error { return c.CommitTimeout.Set(v) }},
	{"OPENINTERN_APPROVAL_TIMEOUT", func(c *Config, v string) error { return c.Approvals.Timeout.Set(v) }},
	{"LOG_LEVEL", func(c *Config, v string) error { c.LogLevel = v; return nil }},
	{"AUTH", func(c *Config, v string) error { c.Auth.Mode = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{"OPENINTERN_SECURE_COOKIES", func(c *Config, v string) error { return setBool(&c.Auth.SecureCookies, v) }},
	{"OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE", func(c *Config, v string) error { return setInt(&c.MaxRunningPerScope, v) }},
	{"OPENINTERN_AUDIT_RETENTION", func(c *Config, v string) error { return c.AuditRetention.SetDays(v) }},
	{"OPENINTERN_RATE_LIMIT_RPS", func(c *Config, v string) error { return setFloat(&c.RateLimitRPS, v) }},
	{"OPENINTERN_RATE_LIMIT_BURST", func(c *Config, v string) error { return setInt(&c.RateLimitBurst, v) }},
	{"OPENINTERN_MAX_STREAMS", func(c *Config, v string) error { return setInt(&c.MaxStreams, v) }},
	{"OPENINTERN_MAX_STREAMS_PER_SCOPE", func(c *Config, v string) error { return setInt(&c.MaxStreamsPerScope, v) }},
	{"OPENINTERN_INGEST_CONCURRENCY", func(c *Config, v string) error { return setInt(&c.IngestConcurrency, v) }},
	{"OPENINTERN_MAX_AGENTS_PER_SCOPE", func(c *Config, v string) error { return setInt(&c.MaxAgentsPerScope, v) }},
	{"OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE", func(c *Config, v string) error { return c.MaxMemoryBytesPerScope.Set(v) }},
	{"OPENINTERN_FETCH_ALLOW", func(c *Config, v string) error { c.Fetch.Allow = SplitList(v); return nil }},
	{"OPENINTERN_FETCH_TIMEOUT", func(c *Config, v string) error { return c.Fetch.Timeout.Set(v) }},
	{"OPENINTERN_FETCH_MAX_BYTES", func(c *Config, v string) error { return setInt64(&c.Fetch.MaxBytes, v) }},
	{"OPENINTERN_SHELL", func(c *Config, v string) error { return setBool(&c.Shell.Enabled, v) }},
	{"OPENINTERN_SHELL_TIMEOUT", func(c *Config, v string) error { return c.Shell.Timeout.Set(v) }},
	{"OPENINTERN_SHELL_CPU_SECONDS", func(c *Config, v string) error { return setInt(&c.Shell.CPUSeconds, v) }},
	{"OPENINTERN_SHELL_MEMORY_MB", func(c *Config, v string) error { return setInt(&c.Shell.MemoryMB, v) }},
	{"OPENINTERN_SHELL_MAX_PROCS", func(c *Config, v string) error { return setInt(&c.Shell.MaxProcs, v) }},
	{"OPENINTERN_SHELL_MAX_OUTPUT", func(c *Config, v string) error { return setInt(&c.Shell.MaxOutputBytes, v) }},
	{"OPENINTERN_MCP_CALL_TIMEOUT", func(c *Config, v string) error { return c.MCPCallTimeout.Set(v) }},
	{"OPENINTERN_POLICY_DEFAULTS", func(c *Config, v string) error { return setBool(&c.Policy.Defaults, v) }},
	{"OPENINTERN_POLICY_ALLOW_HOSTS", func(c *Config, v string) error { c.Policy.AllowHosts = SplitList(v); return nil }},
	{"OPENINTERN_SKILLS_DIR", func(c *Config, v string) error { c.Skills.Dir = v; return nil }},
	{"OPENINTERN_SKILL_MAX_BYTES", func(c *Config, v string) error { return c.Skills.MaxBytes.Set(v) }},
	{"OPENINTERN_MCP_ALLOW", func(c *Config, v string) error { c.MCPAllow = SplitList(v); return nil }},
	{"OPENINTERN_MCP_IDLE_TIMEOUT", func(c *Config, v string) error { return c.MCPIdleTimeout.Set(v) }},
	{"OPENINTERN_MCP_MAX_SERVERS_PER_SCOPE", func(c *Config, v string) error { return setInt(&c.MCPMaxServersPerScope, v) }},
	{"OPENINTERN_SECRET_KEY", func(c *Config, v string) error { c.SecretKey = v; return nil }},
}

// DefaultAuditRetention keeps audit records for 90 days.
const DefaultAuditRetention = 90 * 24 * time.Hour

// SetDays parses a duration ("2160h") or a whole number of days ("90d").
func (d *Duration) SetDays(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return fmt.Errorf("not a number of days like 90d: %q", s)
		}
		*d = Duration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	return d.Set(s)
}

// Load builds the configuration: defaults < file < environment. path "" means
// DefaultFile if it exists; a path given explicitly must exist. lookupEnv is
// os.LookupEnv in production. Flags are applied afterwards by the caller, then
// Validate.
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	cfg := Default()
	explicit := path != ""
	if !explicit {
		path = DefaultFile
	}
	if err := cfg.loadFile(path, explicit); err != nil {
		return Config{}, err
	}
	for _, k := range envKeys {
		if v, ok := lookupEnv(k.name); ok && v != "" {
			if err := k.set(&cfg, v); err != nil {
				return Config{}, &Error{Key: k.name, Reason: err.Error()}
			}
		}
	}
	if err := cfg.loadMineruEnv(lookupEnv); err != nil {
		return Config{}, err
	}
	if err := cfg.Feishu.loadEnv(lookupEnv); err != nil {
		return Config{}, err
	}
	if cfg.GeminiAPIKey == "" {
		if v, ok := lookupEnv("GOOGLE_API_KEY"); ok {
			cfg.GeminiAPIKey = v
		}
	}
	if v, ok := lookupEnv("OPENAI_API_KEY"); ok && v != "" {
		cfg.OpenAIAPIKey = v
	}
	// OPENAI_API_KEY is OpenAI's: not borrowed for Gemini or Anthropic.
	if provider := strings.ToLower(strings.TrimSpace(cfg.LLMProvider)); cfg.LLMAPIKey == "" && provider != "gemini" && provider != "anthropic" {
		if v, ok := lookupEnv("OPENAI_API_KEY"); ok {
			cfg.LLMAPIKey = v
		}
	}
	for name, m := range cfg.Models {
		if m.APIKeyEnv != "" {
			m.APIKey, _ = lookupEnv(m.APIKeyEnv)
			cfg.Models[name] = m
		}
	}
	if cfg.EmbeddingAPIKey == "" {
		cfg.EmbeddingAPIKey = cfg.borrowedEmbeddingKey(lookupEnv)
	}
	return cfg, nil
}

func (c *Config) loadFile(path string, explicit bool) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return &Error{Key: "config file", Reason: err.Error()}
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return &Error{Key: path, Reason: err.Error()}
	}
	return nil
}

// Validate checks every setting and names the first bad one.
func (c *Config) Validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return &Error{Key: "PORT", Reason: fmt.Sprintf("must be between 0 and 65535, got %d", c.Port)}
	}
	if strings.TrimSpace(c.Host) == "" {
		return &Error{Key: "HOST", Reason: "must not be empty"}
	}
	for _, h := range c.AllowedHosts {
		if !hostNameRE.MatchString(h) {
			return &Error{Key: "OPENINTERN_ALLOWED_HOSTS", Reason: fmt.Sprintf("%q is not a host name (no scheme, port or path)", h)}
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return &Error{Key: "DATA_DIR", Reason: "must not be empty"}
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return &Error{Key: "DATABASE_URL", Reason: "must be a postgres:// or postgresql:// URL"}
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			return &Error{Key: "REDIS_URL", Reason: "must be a redis:// or rediss:// URL"}
		}
	}
	if c.LLMBaseURL != "" {
		u, err := url.Parse(c.LLMBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: "LLM_BASE_URL", Reason: "must be an http:// or https:// URL"}
		}
	}
	if c.GeminiBaseURL != "" {
		u, err := url.Parse(c.GeminiBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: "GEMINI_BASE_URL", Reason: "must be an http:// or https:// URL"}
		}
	}
	if err := c.validateEmbedding(); err != nil {
		return err
	}
	if err := c.validateModels(); err != nil {
		return err
	}
	switch {
	case c.LLMTimeout <= 0:
		return &Error{Key: "LLM_TIMEOUT", Reason: "must be positive"}
	case c.LLMMaxRetries < 0 || c.LLMMaxRetries > 10:
		return &Error{Key: "LLM_MAX_RETRIES", Reason: "must be between 0 and 10"}
	case c.MaxRunningAgents < 1 || c.MaxRunningAgents > 100000:
		return &Error{Key: "OPENINTERN_MAX_RUNNING_AGENTS", Reason: "must be between 1 and 100000"}
	case c.MaxRunningPerScope < 0 || c.MaxRunningPerScope > 100000:
		return &Error{Key: "OPENINTERN_MAX_RUNNING_AGENTS_PER_SCOPE", Reason: "must be between 0 (no cap) and 100000"}
	case c.MaxStepsPerRun < 1 || c.MaxStepsPerRun > 1000:
		return &Error{Key: "OPENINTERN_MAX_STEPS", Reason: "must be between 1 and 1000"}
	case c.AgentIdleTimeout < Duration(time.Second):
		return &Error{Key: "OPENINTERN_AGENT_IDLE_TIMEOUT", Reason: "must be at least 1s"}
	case c.SessionHistory < 0 || c.SessionHistory > 1000:
		return &Error{Key: "OPENINTERN_SESSION_HISTORY", Reason: "must be between 0 and 1000"}
	case c.VectorIndexMB < 0 || c.VectorIndexMB > 1<<20:
		return &Error{Key: "OPENINTERN_VECTOR_INDEX_MB", Reason: "must be between 0 and 1048576"}
	case c.MaxBodyBytes < 1024:
		return &Error{Key: "OPENINTERN_MAX_BODY_BYTES", Reason: "must be at least 1024"}
	case c.ReadTimeout < Duration(time.Second):
		return &Error{Key: "OPENINTERN_READ_TIMEOUT", Reason: "must be at least 1s"}
	case c.ShutdownTimeout < Duration(time.Second):
		return &Error{Key: "OPENINTERN_SHUTDOWN_TIMEOUT", Reason: "must be at least 1s"}
	case c.CommitTimeout < Duration(100*time.Millisecond):
		return &Error{Key: "OPENINTERN_COMMIT_TIMEOUT", Reason: "must be at least 100ms"}
	case c.Approvals.Timeout < Duration(time.Second):
		return &Error{Key: "OPENINTERN_APPROVAL_TIMEOUT", Reason: "must be at least 1s"}
	case c.AuditRetention < 0 || (c.AuditRetention > 0 && c.AuditRetention < Duration(time.Hour)):
		return &Error{Key: "OPENINTERN_AUDIT_RETENTION", Reason: "must be 0 (keep forever) or at least 1h"}
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Key: "LOG_LEVEL", Reason: fmt.Sprintf("must be debug, info, warn or error, got %q", c.LogLevel)}
	}
	if c.Auth.Mode != AuthOff && c.Auth.Mode != AuthToken {
		return &Error{Key: "AUTH", Reason: fmt.Sprintf("must be off or token, got %q", c.Auth.Mode)}
	}
	if err := c.validateTools(); err != nil {
		return err
	}
	if err := c.validatePolicy(); err != nil {
		return err
	}
	if err := c.validateMineru(); err != nil {
		return err
	}
	if err := c.Feishu.validate(); err != nil {
		return err
	}
	return c.validateMCP()
}

// maxToolTime is the tool router's limit on one call (tools.DefaultTimeout):
// a tool's own limit above it would never be reached.
const maxToolTime = Duration(60 * time.Second)

func (c *Config) validateTools() error {
	switch {
	case c.Fetch.Timeout < Duration(time.Second) || c.Fetch.Timeout > maxToolTime:
		return &Error{Key: "OPENINTERN_FETCH_TIMEOUT", Reason: "must be between 1s and 60s"}
	case c.Fetch.MaxBytes < 1024 || c.Fetch.MaxBytes > 64<<20:
		return &Error{Key: "OPENINTERN_FETCH_MAX_BYTES", Reason: "must be between 1024 and 67108864"}
	case c.Shell.Timeout < Duration(time.Second) || c.Shell.Timeout > maxToolTime:
		return &Error{Key: "OPENINTERN_SHELL_TIMEOUT", Reason: "must be between 1s and 60s"}
	case c.Shell.CPUSeconds < 1 || c.Shell.CPUSeconds > 3600:
		return &Error{Key: "OPENINTERN_SHELL_CPU_SECONDS", Reason: "must be between 1 and 3600"}
	case c.Shell.MemoryMB < 16 || c.Shell.MemoryMB > 1<<20:
		return &Error{Key: "OPENINTERN_SHELL_MEMORY_MB", Reason: "must be between 16 and 1048576"}
	case c.Shell.MaxProcs < 1 || c.Shell.MaxProcs > 100000:
		return &Error{Key: "OPENINTERN_SHELL_MAX_PROCS", Reason: "must be between 1 and 100000"}
	case c.Shell.MaxOutputBytes < 1024 || c.Shell.MaxOutputBytes > 16<<20:
		return &Error{Key: "OPENINTERN_SHELL_MAX_OUTPUT", Reason: "must be between 1024 and 16777216"}
	case c.Skills.MaxBytes < 1024 || c.Skills.MaxBytes > MaxSkillBytes:
		return &Error{Key: "OPENINTERN_SKILL_MAX_BYTES", Reason: fmt.Sprintf("must be between 1024 and %d", MaxSkillBytes)}
	}
	// The daemon parses the entries fully when it builds http_fetch; this
	// catches the common slip of writing a URL.
	for _, a := range c.Fetch.Allow {
		if strings.Contains(a, "://") || strings.ContainsAny(a, " \t") {
			return &Error{Key: "OPENINTERN_FETCH_ALLOW", Reason: fmt.Sprintf("%q is not a host name, host:port, IP address or CIDR (no scheme or path)", a)}
		}
	}
	return nil
}

func (c *Config) validatePolicy() error {
	if err := policy.Validate(c.Policy.Rules); err != nil {
		return &Error{Key: "policy.rules", Reason: err.Error()}
	}
	if _, err := policy.CheckScratchDir(c.Policy.ScratchDir); err != nil {
		return &Error{Key: "policy.scratchDir", Reason: err.Error()}
	}
	if _, err := tools.ParseHostAllowList(c.Policy.AllowHosts); err != nil {
		return &Error{Key: "OPENINTERN_POLICY_ALLOW_HOSTS", Reason: err.Error()}
	}
	return nil
}

func (c *Config) validateMCP() error {
	if c.MCPCallTimeout < Duration(time.Second) {
		return &Error{Key: "OPENINTERN_MCP_CALL_TIMEOUT", Reason: "must be at least 1s"}
	}
	if c.MCPIdleTimeout < Duration(time.Second) {
		return &Error{Key: "OPENINTERN_MCP_IDLE_TIMEOUT", Reason: "must be at least 1s"}
	}
	if c.MCPMaxServersPerScope < 1 || c.MCPMaxServersPerScope > 1000 {
		return &Error{Key: "OPENINTERN_MCP_MAX_SERVERS_PER_SCOPE", Reason: "must be between 1 and 1000"}
	}
	for _, a := range c.MCPAllow {
		if strings.Contains(a, "://") || strings.ContainsAny(a, " \t") {
			return &Error{Key: "OPENINTERN_MCP_ALLOW", Reason: fmt.Sprintf("%q is not a host name, host:port, IP address or CIDR (no scheme or path)", a)}
		}
	}
	for name, s := range c.MCPServers {
		key := "mcpServers." + name
		if !ValidMCPServerName(name) {
			return &Error{Key: key, Reason: "a server name is 1-32 of a-z 0-9 _ -, without \"__\" and not ending in _ (its tools are named <server>__<tool>)"}
		}
		switch s.Transport() {
		case MCPStdio:
			if s.Command == "" || s.URL != "" || len(s.Headers) > 0 {
				return &Error{Key: key, Reason: "a stdio server has a command (and args, env) and no url or headers"}
			}
		case MCPHTTP, MCPSSE:
			if s.URL == "" || s.Command != "" || len(s.Args) > 0 || len(s.Env) > 0 {
				return &Error{Key: key, Reason: "an http server has a url (and headers) and no command, args or env"}
			}
			u, err := url.Parse(s.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return &Error{Key: key + ".url", Reason: "must be an http:// or https:// URL"}
			}
		default:
			return &Error{Key: key + ".type", Reason: fmt.Sprintf("must be stdio, http or sse, got %q", s.Type)}
		}
	}
	return nil
}

func (c *Config) validateEmbedding() error {
	if c.EmbeddingBaseURL != "" {
		u, err := url.Parse(c.EmbeddingBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{Key: "EMBEDDING_BASE_URL", Reason: "must be an http:// or https:// URL"}
		}
	}
	if c.EmbeddingDim < 0 || c.EmbeddingDim > MaxEmbeddingDim {
		return &Error{Key: "EMBEDDING_DIM", Reason: fmt.Sprintf("must be between 1 and %d (pgvector's HNSW limit), got %d", MaxEmbeddingDim, c.EmbeddingDim)}
	}
	if c.EmbeddingTimeout <= 0 {
		return &Error{Key: "EMBEDDING_TIMEOUT", Reason: "must be positive"}
	}
	switch c.EmbeddingProvider {
	case EmbeddingLocal, "":
		// Settings of a remote model would be silently ignored: more likely a
		// forgotten EMBEDDING_PROVIDER=openai than intent.
		if c.EmbeddingModel != "" || c.EmbeddingBaseURL != "" {
			return &Error{Key: "EMBEDDING_PROVIDER", Reason: "is local, but EMBEDDING_MODEL or EMBEDDING_BASE_URL is set; set EMBEDDING_PROVIDER=openai to use that model, or unset them"}
		}
	case EmbeddingOpenAI:
		if c.EmbeddingModel == "" {
			return &Error{Key: "EMBEDDING_MODEL", Reason: "is required when EMBEDDING_PROVIDER is openai (e.g. text-embedding-3-small)"}
		}
		if !embeddingModelRE.MatchString(c.EmbeddingModel) {
			return &Error{Key: "EMBEDDING_MODEL", Reason: fmt.Sprintf("must be 1-93 of A-Z a-z 0-9 . _ : / -, got %q", c.EmbeddingModel)}
		}
		// The dimension is part of the stored vector's identity and sizes
		// its index, so it is stated rather than guessed from a first answer.
		if c.EmbeddingDim == 0 {
			return &Error{Key: "EMBEDDING_DIM", Reason: fmt.Sprintf("is required when EMBEDDING_PROVIDER is openai: the model's vector length, 1 to %d (text-embedding-3-small: 1536)", MaxEmbeddingDim)}
		}
	default:
		return &Error{Key: "EMBEDDING_PROVIDER", Reason: fmt.Sprintf("must be local or openai, got %q", c.EmbeddingProvider)}
	}
	return nil
}

// borrowedEmbeddingKey is the key the embeddings client uses when no
// embedding key is set. A key is only sent to the host it was issued for: the
// LLM key when embeddings go to the LLM's host, OPENAI_API_KEY when they go to
// OpenAI. Anything else gets no key rather than somebody else's.
func (c *Config) borrowedEmbeddingKey(lookupEnv func(string) (string, bool)) string {
	embedHost := endpointHost(c.EmbeddingEndpoint())
	if embedHost == "" {
		return ""
	}
	llmBase := c.LLMBaseURL
	if llmBase == "" && (c.LLMProvider == "" || strings.EqualFold(c.LLMProvider, "openai")) {
		llmBase = DefaultEmbeddingBaseURL
	}
	if c.LLMAPIKey != "" && endpointHost(llmBase) == embedHost {
		return c.LLMAPIKey
	}
	if v, ok := lookupEnv("OPENAI_API_KEY"); ok && embedHost == endpointHost(DefaultEmbeddingBaseURL) {
		return v
	}
	return ""
}

// endpointHost is the scheme and host of a base URL, "" when it has none.
func endpointHost(base string) string {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// EmbeddingEndpoint is the base URL the openai embedding provider posts to.
func (c *Config) EmbeddingEndpoint() string {
	if c.EmbeddingBaseURL != "" {
		return c.EmbeddingBaseURL
	}
	return DefaultEmbeddingBaseURL
}

// Workspace is the directory read_file may read.
func (c *Config) Workspace() string {
	if c.WorkspaceDir != "" {
		return c.WorkspaceDir
	}
	return c.DataDir + "/workspace"
}

// Redacted returns a copy safe to print: secrets are masked.
func (c Config) Redacted() Config {
	if c.LLMAPIKey != "" {
		c.LLMAPIKey = "****"
	}
	if c.EmbeddingAPIKey != "" {
		c.EmbeddingAPIKey = "****"
	}
	if c.GeminiAPIKey != "" {
		c.GeminiAPIKey = "****"
	}
	if c.SecretKey != "" {
		c.SecretKey = "****"
	}
	if c.AnthropicAPIKey != "" {
		c.AnthropicAPIKey = "****"
	}
	if c.OpenAIAPIKey != "" {
		c.OpenAIAPIKey = "****"
	}
	if c.Mineru.APIKey != "" {
		c.Mineru.APIKey = "****"
	}
	c.DatabaseURL = redactURL(c.DatabaseURL)
	c.RedisURL = redactURL(c.RedisURL)
	c.Feishu = c.Feishu.redacted()
	if c.MCPServers != nil {
		servers := make(map[string]MCPServer, len(c.MCPServers))
		for name, s := range c.MCPServers {
			s.Env, s.Headers = maskValues(s.Env), maskValues(s.Headers)
			s.URL = redactURL(s.URL)
			servers[name] = s
		}
		c.MCPServers = servers
	}
	return c
}

// maskValues keeps the keys (what is set) and hides the values (secrets).
func maskValues(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = "****"
	}
	return out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "****")
	}
	return u.String()
}

// Duration is a time.Duration written as "90s" or "5m" in JSON and the environment.
type Duration time.Duration

// Set parses a Go duration string ("500ms", "2m").
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration like 30s or 5m: %q", s)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// Type names the flag value type for help output.
func (d *Duration) Type() string { return "duration" }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return d.Set(s)
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// hostNameRE is a DNS name or an IP address as the Host header carries it, without a port.
var hostNameRE = regexp.MustCompile(`^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[?[0-9A-Fa-f:.]+\]?)$`)

// SplitList splits a comma-separated setting, dropping blanks.
func SplitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not an integer: %q", v)
	}
	*dst = n
	return nil
}

func setBool(dst *bool, v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "on", "yes":
		*dst = true
	case "0", "false", "off", "no":
		*dst = false
	default:
		return fmt.Errorf("not a boolean (on/off, true/false): %q", v)
	}
	return nil
}

func setInt64(dst *int64, v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %q", v)
	}
	*dst = n
	return nil
}

func (c *Config) validateLimits() error {
	switch {
	case c.RateLimitRPS < 0 || math.IsNaN(c.RateLimitRPS) || math.IsInf(c.RateLimitRPS, 0):
		return &Error{Key: "OPENINTERN_RATE_LIMIT_RPS", Reason: "must be a number of requests per second, 0 for no limit"}
	case c.RateLimitRPS > 0 && c.RateLimitBurst < 1:
		return &Error{Key: "OPENINTERN_RATE_LIMIT_BURST", Reason: "must be at least 1 (set OPENINTERN_RATE_LIMIT_RPS=0 to turn the limit off)"}
	case c.MaxStreams < 0:
		return &Error{Key: "OPENINTERN_MAX_STREAMS", Reason: "must be 0 (no limit) or more"}
	case c.MaxStreamsPerScope < 0:
		return &Error{Key: "OPENINTERN_MAX_STREAMS_PER_SCOPE", Reason: "must be 0 (no limit) or more"}
	case c.MaxAgentsPerScope < 0:
		return &Error{Key: "OPENINTERN_MAX_AGENTS_PER_SCOPE", Reason: "must be 0 (no limit) or more"}
	case c.MaxMemoryBytesPerScope < 0:
		return &Error{Key: "OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE", Reason: "must be 0 (no limit) or more"}
	case c.IngestConcurrency < 1 || c.IngestConcurrency > 64:
		return &Error{Key: "OPENINTERN_INGEST_CONCURRENCY", Reason: "must be from 1 to 64"}
	}
	return nil
}

func setFloat(dst *float64, v string) error {
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", v)
	}
	*dst = n
	return nil
}

// Bytes is a size written as a number of bytes or with a unit: "1GiB",
// "500MB", "64KiB" (KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024).
type Bytes int64

var bytesRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*$`)

var byteUnits = map[string]float64{
	"": 1, "B": 1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// Set parses a size.
func (b *Bytes) Set(s string) error {
	m := bytesRE.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("not a size like 1GiB, 500MB or 1048576: %q", s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return fmt.Errorf("not a size like 1GiB, 500MB or 1048576: %q", s)
	}
	v := n * byteUnits[m[2]]
	if v >= math.MaxInt64 {
		return fmt.Errorf("size too large: %q", s)
	}
	*b = Bytes(v)
	return nil
}

func (b Bytes) String() string { return strconv.FormatInt(int64(b), 10) }

// Type names the flag value type for help output.
func (b *Bytes) Type() string { return "bytes" }

// UnmarshalJSON accepts a number of bytes or a string with a unit.
func (b *Bytes) UnmarshalJSON(raw []byte) error {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return b.Set(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("size must be a number of bytes or a string like \"1GiB\"")
	}
	*b = Bytes(n)
	return nil
}
