package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Errors of resolving a model name (see Router.CheckModel).
var (
	// ErrUnknownModel: the name has an unknown provider or names no model entry.
	ErrUnknownModel = errors.New("llm: unknown model")
	// ErrModelUnavailable: the provider is known but cannot be used as
	// configured (for example it has no API key).
	ErrModelUnavailable = errors.New("llm: model unavailable")
)

// ModelEntry is a named model of the configuration ("models" in the config
// file), which agents and roles name instead of provider/model.
type ModelEntry struct {
	Provider string
	Model    string
	// BaseURL and APIKey replace the provider's own settings when set.
	BaseURL string
	APIKey  string
	// Fallbacks are tried in order when this model fails with ErrUnavailable
	// after its retries (5xx, overload, timeout, network): entry names or
	// provider/model. A 4xx (429 included: a rate limit is the account's,
	// not the server's, and a fallback would hide it) is never failed over.
	Fallbacks []string
	// ThinkingBudget turns on extended thinking (anthropic).
	ThinkingBudget int
}

// RouterConfig configures a Router.
type RouterConfig struct {
	// Default is the default provider and model: a request without a model,
	// or with a plain model name, goes to it. Its Timeout and MaxRetries
	// apply to every provider.
	Default Config
	// Providers are the settings (APIKey, BaseURL) of the other providers a
	// provider/model name may pick, by provider name.
	Providers map[string]Config
	// Models are the named entries.
	Models map[string]ModelEntry
	// New builds a provider; llm.New when nil.
	New func(Config, *slog.Logger) (Provider, error)
	// Logger; discarded when nil.
	Logger *slog.Logger
}

// Target is a resolved model: which provider answers, with which model.
type Target struct {
	// Name is what the caller asked for ("" for the default).
	Name     string
	Provider string
	Model    string
	// Canonical names the target so that it resolves to the same provider
	// and model later: provider/model, or the entry's name.
	Canonical string
	Fallbacks []string
	config    Config
}

// Label is "provider/model".
func (t Target) Label() string { return t.Provider + "/" + t.Model }

// Router is a Provider that sends each request to the provider its model
// names: "provider/model" ("anthropic/claude-sonnet-4-5"), a named entry of
// RouterConfig.Models, or a plain model name for the default provider.
// Clients are made once per provider configuration and reused. A named
// entry's fallbacks are tried after a failure with ErrUnavailable.
type Router struct {
	cfg         RouterConfig
	defaultName string
	log         *slog.Logger

	mu      sync.Mutex
	clients map[string]Provider
}

var _ Provider = (*Router)(nil)

// selfHosted providers serve models whose names often contain a slash
// ("meta-llama/Llama-3-8B"): with one as default, a name whose prefix is no
// provider is a plain model name.
var selfHosted = []string{"openai-compatible", "ollama", "vllm", "offline"}

// NewRouter checks cfg and returns a Router. Entries must name known
// providers, and their fallbacks must resolve.
func NewRouter(cfg RouterConfig) (*Router, error) {
	r := &Router{cfg: cfg, log: cfg.Logger, clients: map[string]Provider{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.cfg.New == nil {
		r.cfg.New = New
	}
	r.defaultName = strings.ToLower(strings.TrimSpace(cfg.Default.Provider))
	if r.defaultName == "" {
		if cfg.Default.APIKey != "" || cfg.Default.BaseURL != "" {
			r.defaultName = "openai"
		} else {
			r.defaultName = "offline"
		}
	}
	r.cfg.Default.Provider = r.defaultName
	// The default must work: it is what every agent without a model uses.
	if _, err := r.client(Target{Provider: r.defaultName, config: r.cfg.Default}); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(cfg.Models) {
		e := cfg.Models[name]
		if !slices.Contains(Providers(), strings.ToLower(e.Provider)) {
			return nil, fmt.Errorf("llm: model %q: unknown provider %q (known: %s)", name, e.Provider, strings.Join(Providers(), ", "))
		}
		for _, fb := range e.Fallbacks {
			if _, err := r.Resolve(fb); err != nil {
				return nil, fmt.Errorf("llm: model %q: fallback %q: %w", name, fb, err)
			}
		}
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Name is the default provider's name.
func (r *Router) Name() string { return r.defaultName }

// DefaultModel is the default provider's configured model ("" when it has
// none of its own).
func (r *Router) DefaultModel() string { return r.cfg.Default.Model }

// Resolve says which provider and model a name selects.
func (r *Router) Resolve(name string) (Target, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return r.providerTarget(name, r.defaultName, r.cfg.Default.Model), nil
	}
	if e, ok := r.cfg.Models[name]; ok {
		t := r.providerTarget(name, strings.ToLower(e.Provider), e.Model)
		t.Canonical, t.Fallbacks = name, e.Fallbacks
		if e.BaseURL != "" {
			t.config.BaseURL = e.BaseURL
		}
		if e.APIKey != "" {
			t.config.APIKey = e.APIKey
		}
		t.config.ThinkingBudget = e.ThinkingBudget
		return t, nil
	}
	if prefix, model, ok := strings.Cut(name, "/"); ok {
		prefix = strings.ToLower(prefix)
		if slices.Contains(Providers(), prefix) {
			if model == "" {
				return Target{}, fmt.Errorf("%w: %q names no model after the provider", ErrUnknownModel, name)
			}
			return r.providerTarget(name, prefix, model), nil
		}
		if !slices.Contains(selfHosted, r.defaultName) {
			return Target{}, fmt.Errorf("%w: %q: unknown provider %q (known: %s) and no model entry of that name",
				ErrUnknownModel, name, prefix, strings.Join(Providers(), ", "))
		}
	}
	return r.providerTarget(name, r.defaultName, name), nil
}

// providerTarget is model on provider with the provider's own settings.
func (r *Router) providerTarget(name, provider, model string) Target {
	cfg := Config{Provider: provider}
	if provider == r.defaultName {
		cfg = r.cfg.Default
		if model == "" {
			model = cfg.Model
		}
	} else if c, ok := r.cfg.Providers[provider]; ok {
		cfg = c
		cfg.Provider = provider
	}
	cfg.Model = model
	cfg.Timeout, cfg.MaxRetries = r.cfg.Default.Timeout, r.cfg.Default.MaxRetries
	canonical := provider + "/" + model
	if model == "" {
		canonical = "" // the default provider's own default model
	}
	return Target{Name: name, Provider: provider, Model: model, Canonical: canonical, config: cfg}
}

// Canonical is the name that later resolves to the provider and model name
// resolves to now (for a run that must resume where it started).
func (r *Router) Canonical(name string) (string, error) {
	t, err := r.Resolve(name)
	if err != nil {
		return "", err
	}
	return t.Canonical, nil
}

// CheckModel reports whether a model name can be used: ErrUnknownModel or
// ErrModelUnavailable (wrapped, with the reason) when not.
func (r *Router) CheckModel(name string) error {
	t, err := r.Resolve(name)
	if err != nil {
		return err
	}
	_, err = r.client(t)
	return err
}

// client returns the provider of t's configuration, made on first use.
func (r *Router) client(t Target) (Provider, error) {
	c := t.config
	key := strings.Join([]string{c.Provider, c.BaseURL, c.APIKey, strconv.Itoa(c.ThinkingBudget)}, "\x00")
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.clients[key]; ok {
		return p, nil
	}
	p, err := r.cfg.New(c, r.log)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrModelUnavailable, t.Label(), err)
	}
	r.clients[key] = p
	return p, nil
}

// Targets lists the default and every named entry, for a health check.
func (r *Router) Targets() []Target {
	out := []Target{r.providerTarget("", r.defaultName, r.cfg.Default.Model)}
	for _, name := range sortedKeys(r.cfg.Models) {
		t, err := r.Resolve(name)
		if err == nil {
			out = append(out, t)
		}
	}
	return out
}

// CompleteTarget sends req to one target only, without fallbacks.
func (r *Router) CompleteTarget(ctx context.Context, t Target, req Request, onToken TokenFunc) (Response, error) {
	p, err := r.client(t)
	if err != nil {
		return Response{}, err
	}
	req.Model = t.Model
	resp, err := p.Complete(ctx, req, onToken)
	if err == nil {
		resp.Provider = t.Provider
		if resp.Model == "" {
			resp.Model = t.Model
		}
	}
	return resp, err
}

// Complete implements Provider: it resolves req.Model and, when the model
// fails with ErrUnavailable, tries its fallbacks in order. The response
// names the provider and model that answered, the model asked first
// (FallbackFrom) and the failed attempts.
func (r *Router) Complete(ctx context.Context, req Request, onToken TokenFunc) (Response, error) {
	first, err := r.Resolve(req.Model)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	chain := []Target{first}
	for _, fb := range first.Fallbacks {
		t, err := r.Resolve(fb)
		if err != nil {
			r.log.Warn("model fallback cannot be resolved; skipped", "model", first.Name, "fallback", fb, "error", err)
			continue
		}
		chain = append(chain, t)
	}
	var failed []FailedAttempt
	for i, t := range chain {
		resp, err := r.CompleteTarget(ctx, t, req, onToken)
		if err == nil {
			if i > 0 {
				resp.FallbackFrom = first.Label()
				resp.Failed = failed
			}
			return resp, nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrUnavailable) || i == len(chain)-1 {
			if len(failed) > 0 {
				err = fmt.Errorf("%w (fallbacks failed before: %s)", err, describe(failed))
			}
			return Response{}, err
		}
		failed = append(failed, FailedAttempt{Provider: t.Provider, Model: t.Model, Error: err.Error()})
		r.log.Warn("model failed; trying its fallback", "model", t.Label(), "fallback", chain[i+1].Label(), "error", err)
	}
	return Response{}, fmt.Errorf("%w: no model to try", ErrBadRequest) // not reached: chain is never empty
}

func describe(failed []FailedAttempt) string {
	parts := make([]string, len(failed))
	for i, f := range failed {
		parts[i] = f.Provider + "/" + f.Model + ": " + f.Error
	}
	return strings.Join(parts, "; ")
}
