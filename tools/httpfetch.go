package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/openintern/openintern/llm"
)

// Defaults of http_fetch.
const (
	DefaultFetchTimeout      = 30 * time.Second
	DefaultFetchMaxBytes     = 2 << 20
	DefaultFetchMaxRedirects = 5
	fetchMaxRequestBody      = 256 << 10
)

// fetchHeaderAllow are the request headers a model may set; anything that
// carries credentials or changes routing (Authorization, Cookie, Host,
// X-Forwarded-*) is not among them.
var fetchHeaderAllow = map[string]bool{
	"Accept": true, "Accept-Language": true, "Content-Type": true, "User-Agent": true,
	"If-None-Match": true, "If-Modified-Since": true, "Cache-Control": true,
}

// FetchConfig configures http_fetch.
type FetchConfig struct {
	Timeout      time.Duration // whole call: connect, redirects, body; default DefaultFetchTimeout
	MaxBytes     int64         // response body bytes read; default DefaultFetchMaxBytes
	MaxRedirects int           // default DefaultFetchMaxRedirects; negative: none followed
	// Allow lists what may be fetched although its address is blocked: host
	// names ("intranet.example", "*.corp.example"), host:port, IP addresses
	// and CIDRs ("10.1.0.0/16").
	Allow []string
	// Resolver looks host names up; nil is net.DefaultResolver.
	Resolver *net.Resolver
}

// HTTPFetch is the built-in http_fetch tool.
type HTTPFetch struct {
	cfg    FetchConfig
	allow  fetchAllowList
	client *http.Client
	// afterCheck, when set, sees every address that passed the check just
	// before it is connected to; an error aborts that connection. Tests use
	// it to count dials and to keep public addresses from being reached.
	afterCheck func(ap netip.AddrPort) error
	// dialCheckOnly turns off the early refusal of address literals (tests
	// prove the dial check alone stops them).
	dialCheckOnly bool
}

var _ Tool = (*HTTPFetch)(nil)

// ErrBlockedAddress is the cause of a dial http_fetch refused.
var ErrBlockedAddress = errors.New("blocked address")

// NewHTTPFetch returns an http_fetch tool; it fails on a bad allow-list entry.
func NewHTTPFetch(cfg FetchConfig) (*HTTPFetch, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultFetchTimeout
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultFetchMaxBytes
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultFetchMaxRedirects
	}
	allow, err := parseFetchAllow(cfg.Allow)
	if err != nil {
		return nil, fmt.Errorf("http_fetch allow-list: %w", err)
	}
	t := &HTTPFetch{cfg: cfg, allow: allow}
	transport := &http.Transport{
		// Never a proxy from the environment: a proxy would dial for us and
		// the address check below would only ever see the proxy.
		Proxy:                  nil,
		DialContext:            t.dial,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		// Each call gets fresh connections: a kept-alive connection would
		// skip the dial, and with it the check, for a host that was allowed
		// under different circumstances.
		DisableKeepAlives: true,
	}
	t.client = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > max(cfg.MaxRedirects, 0) {
				return fmt.Errorf("stopped after %d redirects", len(via)-1)
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %q URL refused (only http and https)", req.URL.Scheme)
			}
			if req.URL.User != nil {
				return fmt.Errorf("redirect to a URL with a user name or password refused")
			}
			canonicalIPv4Host(req.URL)
			if why := literalBlocked(req.URL, t.allow); why != "" && !t.dialCheckOnly {
				return fmt.Errorf("redirect to %s refused: %s", req.URL.Redacted(), why)
			}
			return nil
		},
	}
	return t, nil
}

// dial connects to addr, checking in the socket's Control hook each address
// the dialer actually connects to (after DNS, for every redirect and every
// address it tries), so what is checked is what is reached.
func (t *HTTPFetch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	hostAllowed := t.allow.host(host, port)
	d := net.Dialer{
		Timeout:  t.cfg.Timeout,
		Resolver: t.cfg.Resolver,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot parse %q", ErrBlockedAddress, address)
			}
			if !hostAllowed && !t.allow.addr(ap) {
				if why := BlockedAddr(ap.Addr()); why != "" {
					return fmt.Errorf("%w: %s is %s", ErrBlockedAddress, ap.Addr().WithZone(""), why)
				}
			}
			if t.afterCheck != nil {
				return t.afterCheck(ap)
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, addr)
}

// literalBlocked judges a URL whose host is an address (in any spelling a
// browser accepts) before anything is dialled, for a clear message; the
// dial check stays the guarantee.
func literalBlocked(u *url.URL, allow fetchAllowList) string {
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if allow.host(host, port) {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		var ok bool
		if ip, ok = ParseIPv4Number(host); !ok {
			return ""
		}
	}
	var portNum uint16
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		portNum = uint16(n)
	}
	ap := netip.AddrPortFrom(ip.WithZone("").Unmap(), portNum)
	if allow.addr(ap) {
		return ""
	}
	if why := BlockedAddr(ip); why != "" {
		return fmt.Sprintf("%s is %s", ip.WithZone("").Unmap(), why)
	}
	return ""
}

var httpFetchParams = json.RawMessage(fmt.Sprintf(`{
  "type": "object",
  "properties": {
    "url": {"type": "string", "minLength": 1, "maxLength": 8192,
      "description": "An http:// or https:// URL."},
    "method": {"type": "string", "enum": ["GET", "POST"],
      "description": "GET (default) or POST."},
    "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1024},
      "description": "Request headers; only Accept, Accept-Language, Content-Type, User-Agent, If-None-Match, If-Modified-Since and Cache-Control may be set."},
    "body": {"type": "string", "maxLength": %d,
      "description": "Request body, for POST only (set Content-Type in headers, e.g. application/json)."}
  },
  "required": ["url"],
  "additionalProperties": false
}`, fetchMaxRequestBody))

// Spec describes http_fetch.
func (t *HTTPFetch) Spec() llm.ToolSpec {
	return llm.ToolSpec{
		Name: "http_fetch",
		Description: "Fetch a web page or API over HTTP(S) with GET or POST. The result gives the status, the final " +
			"URL after redirects and the content type, then the content: readable text for HTML (scripts and styles " +
			"dropped, links shown as [text](url)), JSON and other text as is. " +
			fmt.Sprintf("At most %d KiB of a response are read and the call takes at most %s; up to %d redirects are followed. ",
				t.cfg.MaxBytes>>10, t.cfg.Timeout, max(t.cfg.MaxRedirects, 0)) +
			"Addresses on the local machine or private networks (loopback, 10/8, 192.168/16, link-local, cloud metadata, ...) " +
			"are refused unless the operator allow-listed them. Binary content is not shown.",
		Parameters: httpFetchParams,
	}
}

type httpFetchArgs struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body"`
}

// Run fetches the URL.
func (t *HTTPFetch) Run(ctx context.Context, call Call) (Result, error) {
	var args httpFetchArgs
	if err := json.Unmarshal(call.Args, &args); err != nil {
		return errorResult("invalid arguments: %v", err), nil
	}
	if args.Method == "" {
		args.Method = http.MethodGet
	}
	u, bad := checkFetchURL(args.URL)
	if bad != "" {
		return errorResult("%s", bad), nil
	}
	if why := literalBlocked(u, t.allow); why != "" && !t.dialCheckOnly {
		return errorResult("refused to fetch %s: %s", u.Redacted(), why), nil
	}
	if args.Body != nil && args.Method != http.MethodPost {
		return errorResult("body is only sent with POST"), nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if args.Body != nil {
		body = strings.NewReader(*args.Body)
	}
	req, err := http.NewRequestWithContext(ctx, args.Method, u.String(), body)
	if err != nil {
		return errorResult("cannot build the request: %v", err), nil
	}
	req.Header.Set("User-Agent", "OpenIntern-http_fetch/1")
	req.Header.Set("Accept", "text/html,application/json,text/plain;q=0.9,*/*;q=0.5")
	names := make([]string, 0, len(args.Headers))
	for k := range args.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		canon := http.CanonicalHeaderKey(k)
		if !fetchHeaderAllow[canon] {
			return errorResult("header %q may not be set; allowed: Accept, Accept-Language, Content-Type, User-Agent, If-None-Match, If-Modified-Since, Cache-Control", k), nil
		}
		v := args.Headers[k]
		if strings.ContainsAny(v, "\r\n\x00") {
			return errorResult("header %q has a line break or NUL in its value", k), nil
		}
		req.Header.Set(canon, v)
	}

	resp, err := t.client.Do(req)
	if err != nil {
		return errorResult("fetch %s failed: %s", u.Redacted(), fetchErrText(err, ctx, t.cfg.Timeout)), nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, t.cfg.MaxBytes+1))
	if err != nil {
		return errorResult("fetch %s: reading the response failed after %d bytes: %s", u.Redacted(), len(data), fetchErrText(err, ctx, t.cfg.Timeout)), nil
	}
	cut := int64(len(data)) > t.cfg.MaxBytes
	if cut {
		data = data[:t.cfg.MaxBytes]
	}
	return t.render(ctx, resp, data, cut), nil
}

// checkFetchURL parses a model-given URL; bad explains a refusal.
func checkFetchURL(raw string) (*url.URL, string) {
	if strings.ContainsAny(raw, "\x00\r\n\t ") {
		return nil, "url contains whitespace, a line break or NUL"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Sprintf("url is not valid: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Sprintf("url scheme %q is not supported; use http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, "url has no host"
	}
	// Credentials in a URL would be sent to the host; it also confuses
	// readers about which host is meant (http://example.com@127.0.0.1/).
	if u.User != nil {
		return nil, "url may not contain a user name or password (user@host)"
	}
	canonicalIPv4Host(u)
	u.Fragment = ""
	return u, ""
}

// canonicalIPv4Host rewrites a host in a numeric IPv4 spelling
// ("2130706433", "0x7f.1") to its dotted form, so what is shown, checked and
// dialled agree (Go's resolver would otherwise look such a name up in DNS,
// while a browser or the C library reads it as an address).
func canonicalIPv4Host(u *url.URL) {
	if ip, ok := ParseIPv4Number(u.Hostname()); ok && net.ParseIP(u.Hostname()) == nil {
		if p := u.Port(); p != "" {
			u.Host = net.JoinHostPort(ip.String(), p)
		} else {
			u.Host = ip.String()
		}
	}
}

func fetchErrText(err error, ctx context.Context, timeout time.Duration) string {
	switch {
	case errors.Is(err, ErrBlockedAddress):
		var why string
		for e := err; e != nil; e = errors.Unwrap(e) {
			if strings.HasPrefix(e.Error(), ErrBlockedAddress.Error()+":") {
				why = strings.TrimPrefix(e.Error(), ErrBlockedAddress.Error()+": ")
			}
		}
		if why == "" {
			why = err.Error()
		}
		return "refused: " + why + " (only public addresses may be fetched)"
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// render writes the result: a header of status, final URL and type, then the content.
func (t *HTTPFetch) render(ctx context.Context, resp *http.Response, data []byte, cut bool) Result {
	ctype := resp.Header.Get("Content-Type")
	media, _, _ := mime.ParseMediaType(ctype)
	if media == "" {
		media = http.DetectContentType(data)
		media, _, _ = mime.ParseMediaType(media)
	}
	var head strings.Builder
	fmt.Fprintf(&head, "status: %s\nurl: %s\ncontent-type: %s\n", resp.Status, resp.Request.URL.Redacted(), orNone(ctype))
	if cut {
		fmt.Fprintf(&head, "[the response is longer than %d bytes; only its start was read]\n", t.cfg.MaxBytes)
	}
	var body string
	switch {
	case media == "text/html" || media == "application/xhtml+xml":
		body = HTMLText(data, resp.Request.URL)
	case isTextMedia(media) || (utf8.Valid(trimPartialRune(data)) && bytes.IndexByte(data, 0) < 0):
		body = strings.ToValidUTF8(string(data), "\uFFFD")
	default:
		return Result{Content: head.String() + fmt.Sprintf("[binary content of %d bytes not shown]\n", len(data)), IsError: resp.StatusCode >= 400}
	}
	budget := max(MaxResultBytes(ctx)-head.Len()-120, 256)
	if len(body) > budget {
		body = cutUTF8(body, budget) + fmt.Sprintf("\n[content truncated: showing %d of %d bytes]", budget, len(body))
	}
	return Result{Content: head.String() + "\n" + body, IsError: resp.StatusCode >= 400}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func isTextMedia(m string) bool {
	return strings.HasPrefix(m, "text/") || m == "application/json" || strings.HasSuffix(m, "+json") ||
		m == "application/xml" || strings.HasSuffix(m, "+xml") || m == "application/javascript" ||
		m == "application/x-ndjson" || m == "application/yaml"
}

// htmlSkip are elements whose content is not readable text.
var htmlSkip = map[string]bool{
	"script": true, "style": true, "noscript": true, "template": true, "svg": true,
	"iframe": true, "object": true, "canvas": true,
}

// htmlBlock are elements that start a new line.
var htmlBlock = map[string]bool{
	"p": true, "div": true, "br": true, "li": true, "tr": true, "h1": true, "h2": true, "h3": true,
	"h4": true, "h5": true, "h6": true, "section": true, "article": true, "header": true, "footer": true,
	"nav": true, "main": true, "aside": true, "ul": true, "ol": true, "table": true, "pre": true,
	"blockquote": true, "hr": true, "title": true, "dt": true, "dd": true, "form": true, "figcaption": true,
}

// HTMLText turns HTML into readable text: the text of the page with scripts,
// styles and similar dropped, one line per block, links as [text](url)
// resolved against base.
func HTMLText(data []byte, base *url.URL) string {
	z := html.NewTokenizer(bytes.NewReader(data))
	var out strings.Builder
	skip := 0
	var linkHref string
	var linkText strings.Builder
	inLink := false
	pre := 0 // inside <pre>, line breaks are the text's own
	newline := func() {
		s := out.String()
		if s != "" && !strings.HasSuffix(s, "\n") {
			out.WriteByte('\n')
		}
	}
	write := func(s string) {
		if inLink {
			linkText.WriteString(s)
			return
		}
		out.WriteString(s)
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return tidyText(out.String())
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if htmlSkip[tag] && tt == html.StartTagToken {
				skip++
				continue
			}
			if skip > 0 {
				continue
			}
			if htmlBlock[tag] {
				newline()
			}
			if tag == "pre" && tt == html.StartTagToken {
				pre++
			}
			if tag == "a" && hasAttr {
				for {
					k, v, more := z.TagAttr()
					if string(k) == "href" {
						linkHref = resolveLink(string(v), base)
					}
					if !more {
						break
					}
				}
				inLink = linkHref != ""
				linkText.Reset()
			}
			if tag == "img" && hasAttr {
				for {
					k, v, more := z.TagAttr()
					if string(k) == "alt" && strings.TrimSpace(string(v)) != "" {
						write("[image: " + strings.TrimSpace(string(v)) + "]")
					}
					if !more {
						break
					}
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if htmlSkip[tag] {
				if skip > 0 {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			if tag == "pre" && pre > 0 {
				pre--
			}
			if tag == "a" && inLink {
				text := strings.Join(strings.Fields(linkText.String()), " ")
				if text == "" {
					text = linkHref
				}
				out.WriteString("[" + text + "](" + linkHref + ")")
				inLink = false
				linkHref = ""
			}
			if htmlBlock[tag] {
				newline()
			}
		case html.TextToken:
			if skip > 0 {
				continue
			}
			text := string(z.Text())
			if pre == 0 {
				text = strings.ReplaceAll(text, "\n", " ")
			}
			write(text)
		}
	}
}

func resolveLink(href string, base *url.URL) string {
	href = strings.TrimSpace(href)
	if href == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(strings.ToLower(href), "javascript:") {
		return ""
	}
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	return u.String()
}

// tidyText collapses runs of spaces within lines and drops empty lines.
func tidyText(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line == "" {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
