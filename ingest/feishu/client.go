// Package feishu syncs documents of the Feishu (Lark) open platform into
// archival memory: a client of its wire format (tenant access token, docx
// documents and blocks, wiki node trees, drive folders) and the feishu_sync
// job kind that runs a connector's sync incrementally.
package feishu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openintern/openintern/internal/httpretry"
)

// Feishu's error codes the client acts on.
const (
	// CodeRateLimited is the open platform's frequency limit.
	CodeRateLimited = 99991400
	// CodeTokenInvalid and CodeTokenExpired say the tenant access token
	// must be taken again.
	CodeTokenInvalid = 99991663
	CodeTokenExpired = 99991677
	codeTokenMissing = 99991661
)

// RateLimitResetHeader is the header in which Feishu says how many seconds
// until its rate limit resets.
const RateLimitResetHeader = "X-Ogw-Ratelimit-Reset"

// Config configures a Client.
type Config struct {
	BaseURL   string // e.g. https://open.feishu.cn
	AppID     string
	AppSecret string
	// Timeout bounds each HTTP request; default 20 s.
	Timeout time.Duration
	// MaxRetries is how often a failed request is retried (rate limited,
	// 5xx, network); default 3, -1 none.
	MaxRetries int
	// RetryBase is the first backoff (doubling per retry); default 500 ms.
	RetryBase time.Duration
	// MaxWait caps a single wait, also a rate limit's reset; default 30 s.
	MaxWait    time.Duration
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Client speaks the Feishu open platform's wire format with a tenant access
// token of an internal app, taken on first use and again before it expires
// or when Feishu says it is invalid. Neither the app secret nor a token is
// ever put in an error or a log line.
type Client struct {
	cfg  Config
	base string
	http *http.Client
	log  *slog.Logger

	mu     sync.Mutex
	token  string
	expiry time.Time
}

// NewClient checks cfg and fills its defaults.
func NewClient(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("feishu: baseUrl must be an http(s) URL")
	}
	if cfg.AppID == "" || cfg.AppSecret == "" {
		return nil, errors.New("feishu: appId and appSecret are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 3
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, base: u.String(), http: cfg.HTTPClient, log: cfg.Logger}, nil
}

// WebURL is where a person opens a document of kind ("docx", "wiki") and
// token: the open platform's host without its "open." (open.feishu.cn →
// feishu.cn). It is the source a document's memories cite.
func (c *Client) WebURL(kind, token string) string {
	return strings.Replace(c.base, "://open.", "://", 1) + "/" + kind + "/" + token
}

// APIError is a reply of Feishu with a non-zero code.
type APIError struct {
	Status int
	Code   int
	Msg    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("feishu: code %d: %s (HTTP %d)", e.Code, e.Msg, e.Status)
}

// ErrNotFound marks a document or folder Feishu says is gone or not shared
// with the app: the item's fault, not the sync's.
var ErrNotFound = errors.New("feishu: not found or not shared with the app")

// envelope is every reply's outer shape.
type envelope struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

func (c *Client) tenantToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Taken again a few minutes before it expires, so a request never
	// carries a token that runs out on its way.
	if c.token != "" && time.Now().Before(c.expiry) {
		return c.token, nil
	}
	body, _ := json.Marshal(map[string]string{"app_id": c.cfg.AppID, "app_secret": c.cfg.AppSecret})
	var out struct {
		Code   int    `json:"code"`
		Msg    string `json:"msg"`
		Token  string `json:"tenant_access_token"`
		Expire int    `json:"expire"`
	}
	status, _, err := c.send(ctx, http.MethodPost, "/open-apis/auth/v3/tenant_access_token/internal", nil, body, "", &out)
	if err != nil {
		return "", fmt.Errorf("feishu: tenant access token: %w", err)
	}
	if out.Code != 0 || out.Token == "" {
		return "", fmt.Errorf("feishu: tenant access token: %w", &APIError{Status: status, Code: out.Code, Msg: out.Msg})
	}
	life := time.Duration(out.Expire) * time.Second
	margin := min(5*time.Minute, life/4)
	c.token, c.expiry = out.Token, time.Now().Add(life-margin)
	return c.token, nil
}

func (c *Client) dropToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// send makes one HTTP request and decodes a JSON reply into out.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte, token string, out any) (int, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, &transientError{err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, resp.Header, &transientError{err: err}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		var env envelope
		_ = json.Unmarshal(data, &env)
		return resp.StatusCode, resp.Header, &transientError{err: &APIError{Status: resp.StatusCode, Code: env.Code, Msg: env.Msg},
			wait: rateLimitWait(resp.Header)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("feishu: %s %s: HTTP %d, not JSON", method, path, resp.StatusCode)
	}
	return resp.StatusCode, resp.Header, nil
}

// scrubURLError keeps what a transport error says without its URL's query,
// which never holds a secret today but could hold a page token.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// transientError is a failure worth a retry; wait is what the server asked for.
type transientError struct {
	err  error
	wait time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// rateLimitWait reads Feishu's reset header (seconds), else Retry-After.
func rateLimitWait(h http.Header) time.Duration {
	if v := strings.TrimSpace(h.Get(RateLimitResetHeader)); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			return time.Duration(s * float64(time.Second))
		}
	}
	return httpretry.After(h)
}

// get calls an API with the tenant token, retrying what is worth it, and
// decodes data into out.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var wait time.Duration
			var te *transientError
			if errors.As(last, &te) {
				wait = te.wait
			}
			d := httpretry.Backoff(attempt-1, c.cfg.RetryBase, c.cfg.MaxWait, wait)
			c.log.Info("feishu: retrying", "path", path, "attempt", attempt, "wait", d, "err", last)
			if err := httpretry.Sleep(ctx, d); err != nil {
				return err
			}
		}
		token, err := c.tenantToken(ctx)
		if err != nil {
			var te *transientError
			if !errors.As(err, &te) || attempt >= c.cfg.MaxRetries {
				return err
			}
			last = err
			continue
		}
		var env envelope
		status, h, err := c.send(ctx, http.MethodGet, path, q, nil, token, &env)
		if err != nil {
			var te *transientError
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.As(err, &te) || attempt >= c.cfg.MaxRetries {
				return fmt.Errorf("feishu: GET %s: %w", path, err)
			}
			last = err
			continue
		}
		switch env.Code {
		case 0:
			if err := json.Unmarshal(env.Data, out); err != nil {
				return fmt.Errorf("feishu: GET %s: bad data: %w", path, err)
			}
			return nil
		case CodeRateLimited:
			last = &transientError{err: &APIError{Status: status, Code: env.Code, Msg: env.Msg}, wait: rateLimitWait(h)}
		case CodeTokenInvalid, CodeTokenExpired, codeTokenMissing:
			c.dropToken(token)
			last = &transientError{err: &APIError{Status: status, Code: env.Code, Msg: env.Msg}}
		default:
			apiErr := &APIError{Status: status, Code: env.Code, Msg: env.Msg}
			if status == http.StatusNotFound || status == http.StatusForbidden {
				return fmt.Errorf("feishu: GET %s: %w: %w", path, ErrNotFound, apiErr)
			}
			return fmt.Errorf("feishu: GET %s: %w", path, apiErr)
		}
		if attempt >= c.cfg.MaxRetries {
			return fmt.Errorf("feishu: GET %s: %w", path, last)
		}
	}
}

// DocMeta is a docx document's metadata.
type DocMeta struct {
	DocumentID string `json:"document_id"`
	RevisionID int64  `json:"revision_id"`
	Title      string `json:"title"`
}

// Document reads a docx document's metadata.
func (c *Client) Document(ctx context.Context, id string) (DocMeta, error) {
	var out struct {
		Document DocMeta `json:"document"`
	}
	err := c.get(ctx, "/open-apis/docx/v1/documents/"+url.PathEscape(id), nil, &out)
	return out.Document, err
}

// TextElement is a run of a block's text.
type TextElement struct {
	TextRun *struct {
		Content string `json:"content"`
	} `json:"text_run,omitempty"`
	MentionDoc *struct {
		Title string `json:"title"`
	} `json:"mention_doc,omitempty"`
}

// BlockText is the text of a text-like block.
type BlockText struct {
	Elements []TextElement `json:"elements"`
}

// Block is one block of a docx document, with the text-like kinds decoded.
type Block struct {
	BlockID   string     `json:"block_id"`
	ParentID  string     `json:"parent_id"`
	BlockType int        `json:"block_type"`
	Page      *BlockText `json:"page,omitempty"`
	Text      *BlockText `json:"text,omitempty"`
	Heading1  *BlockText `json:"heading1,omitempty"`
	Heading2  *BlockText `json:"heading2,omitempty"`
	Heading3  *BlockText `json:"heading3,omitempty"`
	Heading4  *BlockText `json:"heading4,omitempty"`
	Heading5  *BlockText `json:"heading5,omitempty"`
	Heading6  *BlockText `json:"heading6,omitempty"`
	Heading7  *BlockText `json:"heading7,omitempty"`
	Heading8  *BlockText `json:"heading8,omitempty"`
	Heading9  *BlockText `json:"heading9,omitempty"`
	Bullet    *BlockText `json:"bullet,omitempty"`
	Ordered   *BlockText `json:"ordered,omitempty"`
	Code      *BlockText `json:"code,omitempty"`
	Quote     *BlockText `json:"quote,omitempty"`
	Todo      *BlockText `json:"todo,omitempty"`
}

// Blocks reads every block of a docx document (its latest revision), page by page.
func (c *Client) Blocks(ctx context.Context, id string) ([]Block, error) {
	var all []Block
	pageToken := ""
	for {
		q := url.Values{"page_size": {"500"}, "document_revision_id": {"-1"}}
		if pageToken != "" {
			q.Set("page_token", pageToken)
		}
		var out struct {
			Items     []Block `json:"items"`
			HasMore   bool    `json:"has_more"`
			PageToken string  `json:"page_token"`
		}
		if err := c.get(ctx, "/open-apis/docx/v1/documents/"+url.PathEscape(id)+"/blocks", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Items...)
		if !out.HasMore || out.PageToken == "" {
			return all, nil
		}
		pageToken = out.PageToken
	}
}

// WikiNode is a node of a wiki space.
type WikiNode struct {
	SpaceID     string `json:"space_id"`
	NodeToken   string `json:"node_token"`
	ObjToken    string `json:"obj_token"`
	ObjType     string `json:"obj_type"`
	ParentToken string `json:"parent_node_token"`
	Title       string `json:"title"`
	HasChild    bool   `json:"has_child"`
	ObjEditTime string `json:"obj_edit_time"`
}

// WikiNodes lists the children of parent (the space's top level when
// empty), page by page.
func (c *Client) WikiNodes(ctx context.Context, spaceID, parent string) ([]WikiNode, error) {
	var all []WikiNode
	pageToken := ""
	for {
		q := url.Values{"page_size": {"50"}}
		if parent != "" {
			q.Set("parent_node_token", parent)
		}
		if pageToken != "" {
			q.Set("page_token", pageToken)
		}
		var out struct {
			Items     []WikiNode `json:"items"`
			HasMore   bool       `json:"has_more"`
			PageToken string     `json:"page_token"`
		}
		if err := c.get(ctx, "/open-apis/wiki/v2/spaces/"+url.PathEscape(spaceID)+"/nodes", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Items...)
		if !out.HasMore || out.PageToken == "" {
			return all, nil
		}
		pageToken = out.PageToken
	}
}

// DriveFile is an entry of a drive folder.
type DriveFile struct {
	Token        string `json:"token"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	URL          string `json:"url"`
	ModifiedTime string `json:"modified_time"`
}

// DriveFiles lists a drive folder's entries, page by page.
func (c *Client) DriveFiles(ctx context.Context, folder string) ([]DriveFile, error) {
	var all []DriveFile
	pageToken := ""
	for {
		q := url.Values{"folder_token": {folder}, "page_size": {"200"}}
		if pageToken != "" {
			q.Set("page_token", pageToken)
		}
		var out struct {
			Files         []DriveFile `json:"files"`
			HasMore       bool        `json:"has_more"`
			NextPageToken string      `json:"next_page_token"`
		}
		if err := c.get(ctx, "/open-apis/drive/v1/files", q, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Files...)
		if !out.HasMore || out.NextPageToken == "" {
			return all, nil
		}
		pageToken = out.NextPageToken
	}
}
