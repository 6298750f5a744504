package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Feishu configures the Feishu (Lark) connectors: the internal app whose
// tenant access token reads documents, and how syncs are paced. The seed's
// keys, in agent.config.json's "feishu" object; each has a FEISHU_* variable.
type Feishu struct {
	Enabled   bool   `json:"enabled"`   // FEISHU_ENABLED
	AppID     string `json:"appId"`     // FEISHU_APP_ID
	AppSecret string `json:"appSecret"` // FEISHU_APP_SECRET
	BaseURL   string `json:"baseUrl"`   // FEISHU_BASE_URL (https://open.feishu.cn; Lark: https://open.larksuite.com)
	// TimeoutMs bounds one request to the open platform (FEISHU_TIMEOUT_MS).
	TimeoutMs int `json:"timeoutMs"`
	// MaxRetries is how often a rate-limited or failed request is retried
	// (FEISHU_MAX_RETRIES; 0: none).
	MaxRetries int `json:"maxRetries"`
	// PollIntervalMs is how often every enabled connector is synced
	// (FEISHU_POLL_INTERVAL_MS; 0: only when asked over the API).
	PollIntervalMs int `json:"pollIntervalMs"`
}

// DefaultFeishu are the seed's defaults, disabled.
func DefaultFeishu() Feishu {
	return Feishu{BaseURL: "https://open.feishu.cn", TimeoutMs: 20000, MaxRetries: 3, PollIntervalMs: 120000}
}

// Ready reports whether syncs can run: enabled, with the app's credentials.
func (f Feishu) Ready() bool { return f.Enabled && f.AppID != "" && f.AppSecret != "" }

var feishuEnv = []struct {
	name string
	set  func(f *Feishu, v string) error
}{
	{"FEISHU_ENABLED", func(f *Feishu, v string) error { return setBool(&f.Enabled, v) }},
	{"FEISHU_APP_ID", func(f *Feishu, v string) error { f.AppID = v; return nil }},
	{"FEISHU_APP_SECRET", func(f *Feishu, v string) error { f.AppSecret = v; return nil }},
	{"FEISHU_BASE_URL", func(f *Feishu, v string) error { f.BaseURL = v; return nil }},
	{"FEISHU_TIMEOUT_MS", func(f *Feishu, v string) error { return setInt(&f.TimeoutMs, v) }},
	{"FEISHU_MAX_RETRIES", func(f *Feishu, v string) error { return setInt(&f.MaxRetries, v) }},
	{"FEISHU_POLL_INTERVAL_MS", func(f *Feishu, v string) error { return setInt(&f.PollIntervalMs, v) }},
}

func (f *Feishu) loadEnv(lookupEnv func(string) (string, bool)) error {
	for _, k := range feishuEnv {
		if v, ok := lookupEnv(k.name); ok && v != "" {
			if err := k.set(f, v); err != nil {
				return &Error{Key: k.name, Reason: err.Error()}
			}
		}
	}
	return nil
}

func (f Feishu) validate() error {
	u, err := url.Parse(f.BaseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return &Error{Key: "FEISHU_BASE_URL", Reason: "must be an http(s) URL"}
	case f.TimeoutMs < 100 || f.TimeoutMs > 600000:
		return &Error{Key: "FEISHU_TIMEOUT_MS", Reason: "must be from 100 to 600000"}
	case f.MaxRetries < 0 || f.MaxRetries > 20:
		return &Error{Key: "FEISHU_MAX_RETRIES", Reason: "must be from 0 to 20"}
	case f.PollIntervalMs != 0 && (f.PollIntervalMs < 10000 || f.PollIntervalMs > 7*24*3600*1000):
		return &Error{Key: "FEISHU_POLL_INTERVAL_MS", Reason: "must be 0 (no polling) or from 10000 (10 s) to a week"}
	case f.Enabled && (strings.TrimSpace(f.AppID) == "" || f.AppSecret == ""):
		return &Error{Key: "FEISHU_APP_ID", Reason: fmt.Sprintf("feishu is enabled: %s and FEISHU_APP_SECRET are required", "FEISHU_APP_ID")}
	}
	return nil
}

func (f Feishu) redacted() Feishu {
	if f.AppSecret != "" {
		f.AppSecret = "****"
	}
	return f
}
