// Package web is OpenIntern's web console: plain HTML, CSS and JavaScript
// modules embedded in the binary and served by the daemon on the API's port.
// There is no build step: the files under static/ are what the browser runs.
//
// Pages are client-side routes of one document (index.html). Mount registers
// the page paths, the static files and a fallback that serves the document for
// other browser navigations while every /api path keeps the API's JSON errors.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed static
var staticFS embed.FS

// Pages are the console's routes; each serves index.html.
var Pages = []string{
	"/", "/agents", "/runs", "/trace/:runId", "/orchestrator",
	"/blackboard", "/blackboard/:groupId", "/memory", "/jobs", "/approvals", "/skills", "/signin",
}

const (
	// versionPlaceholder in index.html is replaced by the assets' content hash,
	// so a new binary's assets never mix with a cached old set.
	versionPlaceholder = "__ASSET_VERSION__"
	immutableCache     = "public, max-age=31536000, immutable"
	revalidateCache    = "no-cache"
	contentSecurity    = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".json":  "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".txt":   "text/plain; charset=utf-8",
	".woff2": "font/woff2",
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// site is the loaded set of embedded files.
type site struct {
	version string
	index   asset
	files   map[string]asset // by path under static/, e.g. "js/app.js"
}

func load() (*site, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s := &site{files: map[string]asset{}}
	var names []string
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			ct = "application/octet-stream"
		}
		s.files[p] = asset{body: body, contentType: ct, etag: etagOf(body)}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(s.files[n].body)
	}
	s.version = hex.EncodeToString(h.Sum(nil))[:12]
	idx, ok := s.files["index.html"]
	if !ok {
		return nil, fs.ErrNotExist
	}
	body := bytes.ReplaceAll(idx.body, []byte(versionPlaceholder), []byte(s.version))
	s.index = asset{body: body, contentType: idx.contentType, etag: etagOf(body)}
	return s, nil
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// Mount adds the console to the API's engine: the pages, /static/* and a
// fallback for other browser navigations. /api/*, /healthz and /readyz are
// untouched, and unknown /api paths still get the API's JSON 404.
func Mount(engine *gin.Engine) {
	s, err := load()
	if err != nil {
		// The files are compiled in; failing to read them is a build defect.
		panic("web: embedded console files: " + err.Error())
	}
	for _, p := range Pages {
		engine.GET(p, s.serveIndex)
		engine.HEAD(p, s.serveIndex)
	}
	engine.GET("/static/*filepath", s.serveStatic)
	engine.HEAD("/static/*filepath", s.serveStatic)
	engine.NoRoute(s.noRoute)
}

func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

func (s *site) serveIndex(c *gin.Context) {
	h := c.Writer.Header()
	securityHeaders(h)
	h.Set("Content-Security-Policy", contentSecurity)
	h.Set("X-Frame-Options", "DENY")
	write(c, s.index, revalidateCache)
}

// serveStatic serves /static/<version>/<file> as immutable and
// /static/<file> (or an outdated version) with revalidation.
func (s *site) serveStatic(c *gin.Context) {
	p := strings.TrimPrefix(c.Param("filepath"), "/")
	cache := revalidateCache
	if first, rest, ok := strings.Cut(p, "/"); ok && isVersion(first) {
		p = rest
		if first == s.version {
			cache = immutableCache
		}
	}
	a, ok := s.files[p]
	if !ok || p == "index.html" || strings.Contains(p, "..") {
		c.Header("Cache-Control", "no-store")
		notFound(c)
		return
	}
	securityHeaders(c.Writer.Header())
	write(c, a, cache)
}

// isVersion reports whether a path segment looks like an asset version.
func isVersion(seg string) bool {
	if len(seg) != 12 {
		return false
	}
	for _, r := range seg {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

func write(c *gin.Context, a asset, cache string) {
	h := c.Writer.Header()
	h.Set("Cache-Control", cache)
	h.Set("ETag", a.etag)
	h.Set("Content-Type", a.contentType)
	if match := c.GetHeader("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		c.Status(http.StatusNotModified)
		return
	}
	if c.Request.Method == http.MethodHead {
		h.Set("Content-Length", strconv.Itoa(len(a.body)))
		c.Status(http.StatusOK)
		return
	}
	c.Data(http.StatusOK, a.contentType, a.body)
}

func etagMatches(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || strings.TrimPrefix(v, "W/") == etag {
			return true
		}
	}
	return false
}

// noRoute serves the console for browser navigations to unknown pages (the
// page itself says "not found") and the API's JSON 404 for everything else.
func (s *site) noRoute(c *gin.Context) {
	p := c.Request.URL.Path
	isPage := (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead) &&
		!strings.HasPrefix(p, "/api/") && p != "/api" && !strings.HasPrefix(p, "/static/") &&
		strings.Contains(c.GetHeader("Accept"), "text/html")
	if isPage {
		h := c.Writer.Header()
		securityHeaders(h)
		h.Set("Content-Security-Policy", contentSecurity)
		h.Set("Cache-Control", revalidateCache)
		c.Data(http.StatusNotFound, s.index.contentType, s.index.body)
		return
	}
	notFound(c)
}

// notFound is the API's JSON 404, so that every client sees one error shape.
func notFound(c *gin.Context) {
	c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": gin.H{
		"code": "not_found", "message": "no such route: " + c.Request.Method + " " + c.Request.URL.Path,
	}})
}
