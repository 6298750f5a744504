// Package mineru turns PDFs into citable text with MinerU's v4 API
// (https://mineru.net/api/v4): a task made from a URL, or a file uploaded to
// a URL the API hands out; the task is polled until it is done, and its
// result zip gives the Markdown (full.md) and the content list, whose blocks
// carry their page numbers. The kind mineru_pdf runs it as a durable job.
package mineru

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/openintern/openintern/internal/httpretry"
)

// Defaults of Config.
const (
	DefaultBaseURL         = "https://mineru.net/api/v4"
	DefaultModelVersion    = "pipeline"
	DefaultTimeout         = 20 * time.Second
	DefaultMaxRetries      = 3
	DefaultPollInterval    = 3 * time.Second
	DefaultMaxPollAttempts = 120
	// MaxZipBytes bounds a result zip (MinerU takes PDFs up to 200 MB and
	// 600 pages; their Markdown and JSON are far smaller).
	MaxZipBytes = 256 << 20
	// maxAPIBytes bounds an API answer.
	maxAPIBytes = 4 << 20
)

// Config configures a Client. APIKey is required.
type Config struct {
	BaseURL string
	APIKey  string
	// Timeout bounds one HTTP request (an upload or a download included).
	Timeout time.Duration
	// MaxRetries is how often a request that failed for a passing reason
	// (network, 429, 5xx) is retried.
	MaxRetries int
	// PollInterval is the wait between two looks at a task's state, and
	// MaxPollAttempts how many looks a task gets before it counts as stuck.
	PollInterval    time.Duration
	MaxPollAttempts int
	ModelVersion    string
	HTTPClient      *http.Client
	Logger          *slog.Logger
	// RetryBase is the first backoff between retries (default 500 ms).
	RetryBase time.Duration
}

// Client speaks MinerU's v4 API. Its API key goes only to BaseURL: the
// upload and download URLs the API hands out are another host's (object
// storage), and get no Authorization header.
type Client struct {
	cfg  Config
	base *url.URL
	hc   *http.Client
	log  *slog.Logger
}

// ErrConfig marks a Client that cannot be made from its Config.
var ErrConfig = errors.New("mineru: bad configuration")

// New checks cfg and fills its defaults.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: baseUrl %q is not an http(s) URL", ErrConfig, cfg.BaseURL)
	}
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, fmt.Errorf("%w: apiKey is required", ErrConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollAttempts <= 0 {
		cfg.MaxPollAttempts = DefaultMaxPollAttempts
	}
	if cfg.ModelVersion == "" {
		cfg.ModelVersion = DefaultModelVersion
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, base: u, hc: hc, log: log}, nil
}

// PollInterval is the configured wait between polls.
func (c *Client) PollInterval() time.Duration { return c.cfg.PollInterval }

// MaxPollAttempts is the configured number of polls a task gets.
func (c *Client) MaxPollAttempts() int { return c.cfg.MaxPollAttempts }

// ModelVersion is the model used when a call names none.
func (c *Client) ModelVersion() string { return c.cfg.ModelVersion }

// Task states as MinerU reports them.
const (
	StatePending    = "pending"
	StateRunning    = "running"
	StateConverting = "converting"
	StateWaitFile   = "waiting-file"
	StateDone       = "done"
	StateFailed     = "failed"
)

// Status is a task's state.
type Status struct {
	State          string
	FullZipURL     string
	ErrMsg         string
	ExtractedPages int
	TotalPages     int
}

// TaskError is a task MinerU reports failed, with its err_msg.
type TaskError struct {
	ID      string
	Message string
}

func (e *TaskError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no reason given"
	}
	return fmt.Sprintf("mineru: task %s failed: %s", e.ID, msg)
}

// APIError is an answer with a non-zero code, or an HTTP error status.
type APIError struct {
	Status int
	Code   string
	Msg    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("mineru: api error (http %d, code %s): %s", e.Status, e.Code, e.Msg)
}

// TaskOptions are a task's choices; zero values are MinerU's defaults.
type TaskOptions struct {
	ModelVersion string
	IsOCR        bool
	DataID       string
	Language     string
}

// CreateURLTask asks MinerU to fetch and parse the PDF at pdfURL; the task id.
func (c *Client) CreateURLTask(ctx context.Context, pdfURL string, o TaskOptions) (string, error) {
	body := map[string]any{"url": pdfURL, "model_version": c.model(o), "is_ocr": o.IsOCR}
	if o.DataID != "" {
		body["data_id"] = o.DataID
	}
	if o.Language != "" {
		body["language"] = o.Language
	}
	var out struct {
		TaskID string `json:"task_id"`
	}
	if err := c.api(ctx, http.MethodPost, "/extract/task", body, &out); err != nil {
		return "", fmt.Errorf("mineru: create task: %w", err)
	}
	if out.TaskID == "" {
		return "", errors.New("mineru: create task: the answer has no task_id")
	}
	return out.TaskID, nil
}

type progressJSON struct {
	ExtractedPages int `json:"extracted_pages"`
	TotalPages     int `json:"total_pages"`
}

type stateJSON struct {
	State           string       `json:"state"`
	FullZipURL      string       `json:"full_zip_url"`
	ErrMsg          string       `json:"err_msg"`
	ExtractProgress progressJSON `json:"extract_progress"`
}

func (s stateJSON) status() Status {
	return Status{State: s.State, FullZipURL: s.FullZipURL, ErrMsg: s.ErrMsg,
		ExtractedPages: s.ExtractProgress.ExtractedPages, TotalPages: s.ExtractProgress.TotalPages}
}

// TaskStatus reads a URL task's state.
func (c *Client) TaskStatus(ctx context.Context, taskID string) (Status, error) {
	var out stateJSON
	if err := c.api(ctx, http.MethodGet, "/extract/task/"+url.PathEscape(taskID), nil, &out); err != nil {
		return Status{}, fmt.Errorf("mineru: task %s: %w", taskID, err)
	}
	return out.status(), nil
}

// RequestUpload asks for a URL to upload one file to; MinerU starts the
// task once the file arrived. The batch id, and the upload URL.
func (c *Client) RequestUpload(ctx context.Context, name string, o TaskOptions) (batchID, uploadURL string, err error) {
	file := map[string]any{"name": name, "is_ocr": o.IsOCR}
	if o.DataID != "" {
		file["data_id"] = o.DataID
	}
	body := map[string]any{"files": []any{file}, "model_version": c.model(o)}
	if o.Language != "" {
		body["language"] = o.Language
	}
	var out struct {
		BatchID  string   `json:"batch_id"`
		FileURLs []string `json:"file_urls"`
	}
	if err := c.api(ctx, http.MethodPost, "/file-urls/batch", body, &out); err != nil {
		return "", "", fmt.Errorf("mineru: request an upload URL: %w", err)
	}
	if out.BatchID == "" || len(out.FileURLs) != 1 {
		return "", "", fmt.Errorf("mineru: request an upload URL: the answer has batch_id %q and %d file URLs, want one", out.BatchID, len(out.FileURLs))
	}
	return out.BatchID, out.FileURLs[0], nil
}

// Upload PUTs the file to the URL RequestUpload gave. No Content-Type and
// no Authorization: the URL is presigned for a bare PUT.
func (c *Client) Upload(ctx context.Context, uploadURL string, data []byte) error {
	err := c.retry(ctx, "upload", func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return c.hc.Do(req)
	}, func(resp *http.Response) error { return nil })
	if err != nil {
		return fmt.Errorf("mineru: upload: %w", err)
	}
	return nil
}

// BatchStatus reads the state of the file dataID (or the batch's only file).
func (c *Client) BatchStatus(ctx context.Context, batchID, fileName string) (Status, error) {
	var out struct {
		ExtractResult []struct {
			stateJSON
			FileName string `json:"file_name"`
			DataID   string `json:"data_id"`
		} `json:"extract_result"`
	}
	if err := c.api(ctx, http.MethodGet, "/extract-results/batch/"+url.PathEscape(batchID), nil, &out); err != nil {
		return Status{}, fmt.Errorf("mineru: batch %s: %w", batchID, err)
	}
	for _, r := range out.ExtractResult {
		if len(out.ExtractResult) == 1 || r.FileName == fileName {
			return r.status(), nil
		}
	}
	// A batch whose file has not arrived yet may list nothing.
	return Status{State: StateWaitFile}, nil
}

// Result is what a finished task gave: its Markdown and, when the zip has
// one, the content list (blocks with their pages).
type Result struct {
	Markdown string
	Blocks   []Block
}

// Block is one entry of MinerU's content list.
type Block struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	TextLevel int    `json:"text_level"`
	PageIdx   int    `json:"page_idx"`
	// Tables and images carry their text elsewhere.
	TableBody     string   `json:"table_body"`
	TableCaption  []string `json:"table_caption"`
	ImageCaption  []string `json:"image_caption"`
	TableFootnote []string `json:"table_footnote"`
}

// Download fetches the result zip and reads full.md and the content list.
func (c *Client) Download(ctx context.Context, zipURL string) (Result, error) {
	var data []byte
	err := c.retry(ctx, "download", func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, zipURL, nil)
		if err != nil {
			return nil, err
		}
		return c.hc.Do(req)
	}, func(resp *http.Response) error {
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxZipBytes+1))
		if err != nil {
			return err
		}
		if len(b) > MaxZipBytes {
			return fmt.Errorf("the result zip is larger than %d bytes", MaxZipBytes)
		}
		data = b
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("mineru: download the result: %w", err)
	}
	return ReadZip(data)
}

// ReadZip reads a result zip: full.md (or the only .md) and
// *content_list.json.
func ReadZip(data []byte) (Result, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return Result{}, fmt.Errorf("mineru: the result is not a zip: %w", err)
	}
	var res Result
	var md, list *zip.File
	for _, f := range zr.File {
		base := f.Name[strings.LastIndex(f.Name, "/")+1:]
		switch {
		case base == "full.md":
			md = f
		case md == nil && strings.HasSuffix(base, ".md"):
			md = f
		case base == "content_list.json" || strings.HasSuffix(base, "_content_list.json"):
			list = f
		}
	}
	if md == nil {
		return Result{}, errors.New("mineru: the result zip has no full.md")
	}
	b, err := readZipFile(md)
	if err != nil {
		return Result{}, err
	}
	res.Markdown = string(b)
	if list != nil {
		b, err := readZipFile(list)
		if err != nil {
			return Result{}, err
		}
		if err := json.Unmarshal(b, &res.Blocks); err != nil {
			return Result{}, fmt.Errorf("mineru: %s: %w", list.Name, err)
		}
	}
	return res, nil
}

func readZipFile(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > MaxZipBytes {
		return nil, fmt.Errorf("mineru: %s is larger than %d bytes", f.Name, MaxZipBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("mineru: %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxZipBytes+1))
	if err != nil {
		return nil, fmt.Errorf("mineru: %s: %w", f.Name, err)
	}
	if len(b) > MaxZipBytes {
		return nil, fmt.Errorf("mineru: %s is larger than %d bytes", f.Name, MaxZipBytes)
	}
	return b, nil
}

func (c *Client) model(o TaskOptions) string {
	if o.ModelVersion != "" {
		return o.ModelVersion
	}
	return c.cfg.ModelVersion
}

// envelope is every API answer: code 0 is success.
type envelope struct {
	Code    json.RawMessage `json:"code"`
	Msg     string          `json:"msg"`
	TraceID string          `json:"trace_id"`
	Data    json.RawMessage `json:"data"`
}

// api calls the API with the key and decodes data into out.
func (c *Client) api(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	u := c.base.String() + path
	return c.retry(ctx, method+" "+path, func(ctx context.Context) (*http.Response, error) {
		var r io.Reader
		if payload != nil {
			r = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, r)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return c.hc.Do(req)
	}, func(resp *http.Response) error {
		var env envelope
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIBytes)).Decode(&env); err != nil {
			return fmt.Errorf("unreadable answer: %w", err)
		}
		code := strings.Trim(string(env.Code), `"`)
		if code != "0" && code != "200" {
			return permanent{&APIError{Status: resp.StatusCode, Code: code, Msg: env.Msg}}
		}
		if out != nil && len(env.Data) > 0 {
			if err := json.Unmarshal(env.Data, out); err != nil {
				return permanent{fmt.Errorf("unreadable data: %w", err)}
			}
		}
		return nil
	})
}

// permanent wraps a decode outcome that a retry would not change.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retry runs one request, retrying network errors, 429 and 5xx with backoff
// up to MaxRetries times; read handles a 2xx answer. Errors never carry a
// URL's query (presigned URLs hold credentials) or the API key.
func (c *Client) retry(ctx context.Context, what string, do func(context.Context) (*http.Response, error), read func(*http.Response) error) error {
	var last error
	for attempt := 0; ; attempt++ {
		var retryAfter time.Duration
		err := func() error {
			rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			defer cancel()
			resp, err := do(rctx)
			if err != nil {
				return scrub(err)
			}
			defer func() {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				_ = resp.Body.Close()
			}()
			if resp.StatusCode/100 != 2 {
				retryAfter = httpretry.After(resp.Header)
				msg := apiMessage(resp)
				e := &APIError{Status: resp.StatusCode, Msg: msg}
				if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
					return e
				}
				return permanent{e}
			}
			if err := read(resp); err != nil {
				return scrub(err)
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		last = err
		if attempt >= c.cfg.MaxRetries {
			return fmt.Errorf("%s: %w (after %d attempts)", what, last, attempt+1)
		}
		d := httpretry.Backoff(attempt, c.cfg.RetryBase, 30*time.Second, retryAfter)
		c.log.Debug("mineru: retrying", "what", what, "attempt", attempt+1, "wait", d, "err", last)
		if err := httpretry.Sleep(ctx, d); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// apiMessage is an error answer's msg, or its status text.
func apiMessage(resp *http.Response) string {
	var env envelope
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &env) == nil && env.Msg != "" {
		return env.Msg
	}
	return http.StatusText(resp.StatusCode)
}

// scrub drops the URL from a *url.Error: presigned upload and download URLs
// carry signatures in their query.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		where := "the server"
		if perr == nil {
			where = u.Scheme + "://" + u.Host + u.Path
		}
		return fmt.Errorf("%s %s: %w", ue.Op, where, ue.Err)
	}
	return err
}
