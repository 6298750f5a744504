package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Mineru configures PDF ingestion through MinerU's v4 API (the mineru
// section of the config file, or MINERU_*): the tool mineru_ingest_pdf and
// POST /api/memories/ingest with mode mineru. Off unless enabled with an
// API key.
type Mineru struct {
	Enabled             bool   `json:"enabled"`             // MINERU_ENABLED
	Mode                string `json:"mode"`                // MINERU_MODE: v4 (the only one)
	APIKey              string `json:"apiKey"`              // MINERU_API_KEY
	BaseURL             string `json:"baseUrl"`             // MINERU_BASE_URL
	TimeoutMs           int    `json:"timeoutMs"`           // MINERU_TIMEOUT_MS: one HTTP request
	MaxRetries          int    `json:"maxRetries"`          // MINERU_MAX_RETRIES
	PollIntervalMs      int    `json:"pollIntervalMs"`      // MINERU_POLL_INTERVAL_MS
	MaxPollAttempts     int    `json:"maxPollAttempts"`     // MINERU_MAX_POLL_ATTEMPTS
	DefaultModelVersion string `json:"defaultModelVersion"` // MINERU_DEFAULT_MODEL_VERSION: pipeline, vlm or MinerU-HTML
}

// DefaultMineru is the seed's example without its key, off.
func DefaultMineru() Mineru {
	return Mineru{Mode: "v4", BaseURL: "https://mineru.net/api/v4", TimeoutMs: 20000, MaxRetries: 3,
		PollIntervalMs: 3000, MaxPollAttempts: 120, DefaultModelVersion: "pipeline"}
}

var mineruEnv = []struct {
	name string
	set  func(m *Mineru, v string) error
}{
	{"MINERU_ENABLED", func(m *Mineru, v string) error { return setBool(&m.Enabled, v) }},
	{"MINERU_MODE", func(m *Mineru, v string) error { m.Mode = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{"MINERU_API_KEY", func(m *Mineru, v string) error { m.APIKey = v; return nil }},
	{"MINERU_BASE_URL", func(m *Mineru, v string) error { m.BaseURL = v; return nil }},
	{"MINERU_TIMEOUT_MS", func(m *Mineru, v string) error { return setInt(&m.TimeoutMs, v) }},
	{"MINERU_MAX_RETRIES", func(m *Mineru, v string) error { return setInt(&m.MaxRetries, v) }},
	{"MINERU_POLL_INTERVAL_MS", func(m *Mineru, v string) error { return setInt(&m.PollIntervalMs, v) }},
	{"MINERU_MAX_POLL_ATTEMPTS", func(m *Mineru, v string) error { return setInt(&m.MaxPollAttempts, v) }},
	{"MINERU_DEFAULT_MODEL_VERSION", func(m *Mineru, v string) error { m.DefaultModelVersion = v; return nil }},
}

func (c *Config) loadMineruEnv(lookupEnv func(string) (string, bool)) error {
	for _, k := range mineruEnv {
		if v, ok := lookupEnv(k.name); ok && v != "" {
			if err := k.set(&c.Mineru, v); err != nil {
				return &Error{Key: k.name, Reason: err.Error()}
			}
		}
	}
	return nil
}

func (c *Config) validateMineru() error {
	m := c.Mineru
	if !m.Enabled {
		return nil
	}
	switch {
	case m.Mode != "v4":
		return &Error{Key: "MINERU_MODE", Reason: fmt.Sprintf("must be v4, got %q", m.Mode)}
	case strings.TrimSpace(m.APIKey) == "":
		return &Error{Key: "MINERU_API_KEY", Reason: "is required when MinerU is enabled"}
	case m.TimeoutMs < 1000 || m.TimeoutMs > 600000:
		return &Error{Key: "MINERU_TIMEOUT_MS", Reason: "must be between 1000 and 600000"}
	case m.MaxRetries < 0 || m.MaxRetries > 10:
		return &Error{Key: "MINERU_MAX_RETRIES", Reason: "must be between 0 and 10"}
	case m.PollIntervalMs < 100 || m.PollIntervalMs > 600000:
		return &Error{Key: "MINERU_POLL_INTERVAL_MS", Reason: "must be between 100 and 600000"}
	case m.MaxPollAttempts < 1 || m.MaxPollAttempts > 100000:
		return &Error{Key: "MINERU_MAX_POLL_ATTEMPTS", Reason: "must be between 1 and 100000"}
	case m.DefaultModelVersion != "pipeline" && m.DefaultModelVersion != "vlm" && m.DefaultModelVersion != "MinerU-HTML":
		return &Error{Key: "MINERU_DEFAULT_MODEL_VERSION", Reason: fmt.Sprintf("must be pipeline, vlm or MinerU-HTML, got %q", m.DefaultModelVersion)}
	}
	u, err := url.Parse(m.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return &Error{Key: "MINERU_BASE_URL", Reason: "must be an http(s) URL like https://mineru.net/api/v4"}
	}
	return nil
}
