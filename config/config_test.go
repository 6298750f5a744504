package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLayering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"port": 4000, "data_dir": "/from/file", "llm_model": "file-model", "agent_idle_timeout": "90s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(map[string]string{"PORT": "5000", "OPENAI_API_KEY": "sk-openai"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 5000 {
		t.Errorf("env should beat file: port %d", cfg.Port)
	}
	if cfg.DataDir != "/from/file" || cfg.LLMModel != "file-model" {
		t.Errorf("file values lost: %+v", cfg)
	}
	if time.Duration(cfg.AgentIdleTimeout) != 90*time.Second {
		t.Errorf("idle timeout %s", cfg.AgentIdleTimeout)
	}
	if cfg.LLMAPIKey != "sk-openai" {
		t.Errorf("OPENAI_API_KEY should fill the key when LLM_API_KEY is absent")
	}
	if cfg.MaxStepsPerRun != Default().MaxStepsPerRun {
		t.Errorf("defaults lost")
	}
	cfg, _ = Load(path, env(map[string]string{"LLM_API_KEY": "sk-llm", "OPENAI_API_KEY": "sk-openai"}))
	if cfg.LLMAPIKey != "sk-llm" {
		t.Errorf("LLM_API_KEY must win over OPENAI_API_KEY")
	}
}

func TestMissingDefaultFileIsFineButExplicitIsNot(t *testing.T) {
	t.Chdir(t.TempDir())
	if _, err := Load("", env(nil)); err != nil {
		t.Fatalf("no default file: %v", err)
	}
	if _, err := Load("nope.json", env(nil)); err == nil {
		t.Fatal("a missing explicit config file must fail")
	}
}

func TestBadValuesNameTheKey(t *testing.T) {
	cases := map[string]map[string]string{
		"PORT":                          {"PORT": "abc"},
		"OPENINTERN_AGENT_IDLE_TIMEOUT": {"OPENINTERN_AGENT_IDLE_TIMEOUT": "soon"},
		"OPENINTERN_READ_TIMEOUT":       {"OPENINTERN_READ_TIMEOUT": "soon"},
		"OPENINTERN_APPROVAL_TIMEOUT":   {"OPENINTERN_APPROVAL_TIMEOUT": "later"},
	}
	for key, e := range cases {
		_, err := Load("", env(e))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%v: err %v, want key %s", e, err, key)
		}
	}
	invalid := map[string]func(*Config){
		"PORT":                          func(c *Config) { c.Port = 70000 },
		"DATABASE_URL":                  func(c *Config) { c.DatabaseURL = "mysql://x" },
		"REDIS_URL":                     func(c *Config) { c.RedisURL = "http://x" },
		"LLM_BASE_URL":                  func(c *Config) { c.LLMBaseURL = "localhost:11434" },
		"OPENINTERN_MAX_RUNNING_AGENTS": func(c *Config) { c.MaxRunningAgents = 0 },
		"OPENINTERN_MAX_STEPS":          func(c *Config) { c.MaxStepsPerRun = 0 },
		"OPENINTERN_VECTOR_INDEX_MB":    func(c *Config) { c.VectorIndexMB = -1 },
		"LOG_LEVEL":                     func(c *Config) { c.LogLevel = "loud" },
		"OPENINTERN_READ_TIMEOUT":       func(c *Config) { c.ReadTimeout = Config{}.ReadTimeout },
		"OPENINTERN_ALLOWED_HOSTS":      func(c *Config) { c.AllowedHosts = []string{"http://x"} },
		"OPENINTERN_APPROVAL_TIMEOUT":   func(c *Config) { c.Approvals.Timeout = Duration(time.Millisecond) },
	}
	for key, mutate := range invalid {
		c := Default()
		mutate(&c)
		err := c.Validate()
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%s: err %v", key, err)
		}
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// The approval timeout comes from the file (approvals.timeout) or the
// environment, which wins; it defaults to a day.
func TestApprovalTimeout(t *testing.T) {
	if Default().Approvals.Timeout != Duration(24*time.Hour) {
		t.Fatalf("default %s", Default().Approvals.Timeout)
	}
	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"approvals": {"timeout": "2h"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil || cfg.Approvals.Timeout != Duration(2*time.Hour) {
		t.Fatalf("from file: %v %s", err, cfg.Approvals.Timeout)
	}
	cfg, err = Load(path, env(map[string]string{"OPENINTERN_APPROVAL_TIMEOUT": "15m"}))
	if err != nil || cfg.Approvals.Timeout != Duration(15*time.Minute) {
		t.Fatalf("from env: %v %s", err, cfg.Approvals.Timeout)
	}
}

func TestUnknownFileKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(path, []byte(`{"prot": 1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, env(nil))
	if err == nil || !strings.Contains(err.Error(), "prot") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := Default()
	c.LLMAPIKey = "sk-secret"
	c.DatabaseURL = "postgres://u:pw@host/db"
	r := c.Redacted()
	if strings.Contains(r.LLMAPIKey+r.DatabaseURL, "secret") || strings.Contains(r.DatabaseURL, "pw") {
		t.Fatalf("not redacted: %+v", r)
	}
	if c.LLMAPIKey != "sk-secret" {
		t.Fatal("Redacted changed the original")
	}
}

func TestEmbeddingSettings(t *testing.T) {
	d := Default()
	if d.EmbeddingProvider != EmbeddingLocal || d.EmbeddingDim != 0 {
		t.Fatalf("default embedder: provider %q dim %d, want local with its own dimension", d.EmbeddingProvider, d.EmbeddingDim)
	}

	path := filepath.Join(t.TempDir(), "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"embedding_provider": "openai", "embedding_model": "file-model", "embedding_dim": 256,
		"embedding_base_url": "http://127.0.0.1:1/v1", "embedding_timeout": "5s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(map[string]string{"EMBEDDING_MODEL": "text-embedding-3-small", "EMBEDDING_DIM": "1536", "LLM_API_KEY": "sk-llm"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.EmbeddingProvider != EmbeddingOpenAI || cfg.EmbeddingModel != "text-embedding-3-small" || cfg.EmbeddingDim != 1536 {
		t.Errorf("env should beat file: %q %q %d", cfg.EmbeddingProvider, cfg.EmbeddingModel, cfg.EmbeddingDim)
	}
	if cfg.EmbeddingEndpoint() != "http://127.0.0.1:1/v1" || time.Duration(cfg.EmbeddingTimeout) != 5*time.Second {
		t.Errorf("file values lost: %q %s", cfg.EmbeddingEndpoint(), cfg.EmbeddingTimeout)
	}
	if cfg.EmbeddingAPIKey != "" {
		t.Errorf("the LLM key (for OpenAI) must not go to another embeddings host, got %q", cfg.EmbeddingAPIKey)
	}

	keys := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"EMBEDDING_API_KEY": "sk-emb", "LLM_API_KEY": "sk-llm", "OPENAI_API_KEY": "sk-openai"}, "sk-emb"},
		{map[string]string{"LLM_API_KEY": "sk-llm", "OPENAI_API_KEY": "sk-openai"}, "sk-llm"},
		{map[string]string{"OPENAI_API_KEY": "sk-openai"}, "sk-openai"},
		{nil, ""},
		// The LLM key goes along only to the LLM's own host.
		{map[string]string{"LLM_API_KEY": "sk-local", "LLM_BASE_URL": "http://127.0.0.1:9/v1", "EMBEDDING_BASE_URL": "http://127.0.0.1:9/v1"}, "sk-local"},
		{map[string]string{"LLM_API_KEY": "sk-local", "LLM_BASE_URL": "http://127.0.0.1:9/v1", "EMBEDDING_BASE_URL": "http://127.0.0.1:7/v1"}, ""},
		{map[string]string{"LLM_API_KEY": "sk-llm", "EMBEDDING_BASE_URL": "https://embed.example.com/v1"}, ""},
		{map[string]string{"LLM_PROVIDER": "deepseek", "LLM_API_KEY": "sk-deepseek"}, ""},
		{map[string]string{"LLM_PROVIDER": "deepseek", "LLM_API_KEY": "sk-deepseek", "OPENAI_API_KEY": "sk-openai"}, "sk-openai"},
	}
	for _, k := range keys {
		cfg, err := Load("", env(k.env))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.EmbeddingAPIKey != k.want {
			t.Errorf("%v: embedding key %q, want %q", k.env, cfg.EmbeddingAPIKey, k.want)
		}
	}

	cfg = Default()
	cfg.EmbeddingProvider = EmbeddingOpenAI
	cfg.EmbeddingModel = "m"
	cfg.EmbeddingDim = 8
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.EmbeddingEndpoint() != DefaultEmbeddingBaseURL {
		t.Errorf("openai without a base URL posts to %q", cfg.EmbeddingEndpoint())
	}
	local := Default()
	local.EmbeddingDim = 64
	if err := local.Validate(); err != nil {
		t.Fatalf("local with a hashed dimension: %v", err)
	}
}

func TestBadEmbeddingValuesNameTheKey(t *testing.T) {
	for key, e := range map[string]map[string]string{
		"EMBEDDING_DIM":     {"EMBEDDING_DIM": "wide"},
		"EMBEDDING_TIMEOUT": {"EMBEDDING_TIMEOUT": "later"},
	} {
		_, err := Load("", env(e))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%v: err %v, want key %s", e, err, key)
		}
	}
	openai := func(c *Config) {
		c.EmbeddingProvider, c.EmbeddingModel, c.EmbeddingDim = EmbeddingOpenAI, "text-embedding-3-small", 1536
	}
	large := Default()
	openai(&large)
	large.EmbeddingModel, large.EmbeddingDim = "text-embedding-3-large", 3072
	if err := large.Validate(); err != nil {
		t.Errorf("text-embedding-3-large (3072 dimensions) should be accepted: %v", err)
	}
	invalid := []struct {
		key    string
		mutate func(*Config)
	}{
		{"EMBEDDING_PROVIDER", func(c *Config) { c.EmbeddingProvider = "cohere" }},
		{"EMBEDDING_MODEL", func(c *Config) { openai(c); c.EmbeddingModel = "" }},
		{"EMBEDDING_MODEL", func(c *Config) { openai(c); c.EmbeddingModel = "bad'name" }},
		{"EMBEDDING_DIM", func(c *Config) { openai(c); c.EmbeddingDim = 0 }},
		{"EMBEDDING_DIM", func(c *Config) { openai(c); c.EmbeddingDim = 4001 }},
		{"EMBEDDING_DIM", func(c *Config) { c.EmbeddingDim = -1 }},
		{"EMBEDDING_BASE_URL", func(c *Config) { openai(c); c.EmbeddingBaseURL = "127.0.0.1:11434/v1" }},
		{"EMBEDDING_BASE_URL", func(c *Config) { openai(c); c.EmbeddingBaseURL = "ftp://host/v1" }},
		{"EMBEDDING_TIMEOUT", func(c *Config) { openai(c); c.EmbeddingTimeout = 0 }},
		// A model for the local provider is a forgotten EMBEDDING_PROVIDER=openai.
		{"EMBEDDING_PROVIDER", func(c *Config) { c.EmbeddingModel = "text-embedding-3-small" }},
	}
	for _, tc := range invalid {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%+v: err %v, want key %s", c, err, tc.key)
		}
	}
}

func TestRedactedHidesEmbeddingKey(t *testing.T) {
	c := Default()
	c.EmbeddingAPIKey = "sk-emb-secret"
	if r := c.Redacted(); strings.Contains(r.EmbeddingAPIKey, "secret") {
		t.Fatalf("embedding key not redacted: %q", r.EmbeddingAPIKey)
	}
}

func TestAllowedHostsLayering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"allowed_hosts": ["file.example"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(nil))
	if err != nil || len(cfg.AllowedHosts) != 1 || cfg.AllowedHosts[0] != "file.example" {
		t.Fatalf("file: %v %v", cfg.AllowedHosts, err)
	}
	cfg, err = Load(path, env(map[string]string{"OPENINTERN_ALLOWED_HOSTS": " a.example, ,b.local ,::1"}))
	if err != nil || strings.Join(cfg.AllowedHosts, "|") != "a.example|b.local|::1" {
		t.Fatalf("env should replace the file's list: %q %v", cfg.AllowedHosts, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"http://a.example", "a.example:80", "a.example/x", "a b"} {
		cfg.AllowedHosts = []string{bad}
		var ce *Error
		if err := cfg.Validate(); !errors.As(err, &ce) || ce.Key != "OPENINTERN_ALLOWED_HOSTS" {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestToolSettings(t *testing.T) {
	cfg := Default()
	if cfg.Shell.Enabled {
		t.Fatal("the shell must be off by default")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.config.json")
	if err := os.WriteFile(path, []byte(`{"fetch": {"allow": ["intranet.example"], "timeout": "10s"}, "shell": {"enabled": false, "memory_mb": 256}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, env(map[string]string{
		"OPENINTERN_FETCH_ALLOW": "10.0.0.0/8, 127.0.0.1:8080", "OPENINTERN_SHELL": "on", "OPENINTERN_SHELL_TIMEOUT": "20s",
		"OPENINTERN_FETCH_MAX_BYTES": "4096", "OPENINTERN_SHELL_MAX_OUTPUT": "2048", "OPENINTERN_SHELL_CPU_SECONDS": "5",
		"OPENINTERN_SHELL_MAX_PROCS": "64",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Fetch{Allow: []string{"10.0.0.0/8", "127.0.0.1:8080"}, Timeout: Duration(10 * time.Second), MaxBytes: 4096}
	if strings.Join(cfg.Fetch.Allow, ",") != strings.Join(want.Allow, ",") || cfg.Fetch.Timeout != want.Timeout || cfg.Fetch.MaxBytes != want.MaxBytes {
		t.Errorf("fetch: %+v, want %+v", cfg.Fetch, want)
	}
	if !cfg.Shell.Enabled || cfg.Shell.Timeout != Duration(20*time.Second) || cfg.Shell.MemoryMB != 256 ||
		cfg.Shell.MaxOutputBytes != 2048 || cfg.Shell.CPUSeconds != 5 || cfg.Shell.MaxProcs != 64 {
		t.Errorf("shell: %+v", cfg.Shell)
	}

	for key, vars := range map[string]map[string]string{
		"OPENINTERN_FETCH_TIMEOUT":     {"OPENINTERN_FETCH_TIMEOUT": "2m"},
		"OPENINTERN_FETCH_MAX_BYTES":   {"OPENINTERN_FETCH_MAX_BYTES": "10"},
		"OPENINTERN_FETCH_ALLOW":       {"OPENINTERN_FETCH_ALLOW": "http://intranet.example/"},
		"OPENINTERN_SHELL":             {"OPENINTERN_SHELL": "maybe"},
		"OPENINTERN_SHELL_TIMEOUT":     {"OPENINTERN_SHELL_TIMEOUT": "0s"},
		"OPENINTERN_SHELL_CPU_SECONDS": {"OPENINTERN_SHELL_CPU_SECONDS": "0"},
		"OPENINTERN_SHELL_MEMORY_MB":   {"OPENINTERN_SHELL_MEMORY_MB": "1"},
		"OPENINTERN_SHELL_MAX_PROCS":   {"OPENINTERN_SHELL_MAX_PROCS": "0"},
		"OPENINTERN_SHELL_MAX_OUTPUT":  {"OPENINTERN_SHELL_MAX_OUTPUT": "5"},
	} {
		cfg, err := Load(filepath.Join(dir, "agent.config.json"), env(vars))
		if err == nil {
			err = cfg.Validate()
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != key {
			t.Errorf("%v: err = %v, want one naming %s", vars, err, key)
		}
	}
}
