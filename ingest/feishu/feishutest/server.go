// Package feishutest is a local server speaking the Feishu open platform's
// wire format, for tests: the tenant access token of an internal app (with
// expiry), docx documents (metadata and blocks, paged), wiki node trees
// (paged, to any depth) and drive folders (paged), with injectable rate
// limits (HTTP 429 with the reset header, and code 99991400) and token
// invalidation.
package feishutest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Doc is a docx document: a title, a revision and sections (a level-2
// heading each, then a paragraph).
type Doc struct {
	Title    string
	Revision int64
	Sections []Section
	// EditTime is what its wiki node and drive entry say (Unix seconds).
	EditTime int64
}

// Section of a Doc.
type Section struct {
	Heading string
	Text    string
}

// Node is a wiki node; ObjToken names a Doc when ObjType is "docx".
type Node struct {
	Token    string
	ObjToken string
	ObjType  string
	Title    string
	Parent   string // "" for the space's top level
}

// File is a drive entry: a docx (Token names a Doc) or a folder.
type File struct {
	Token string
	Name  string
	Type  string
}

// Server is the fake open platform. Its methods are safe while it serves.
type Server struct {
	AppID, AppSecret string
	// TokenExpire is the expire (seconds) a token is granted with; default 7200.
	TokenExpire int
	// PageSize caps every page, to make paging happen with few items; default 7.
	PageSize int

	URL string
	srv *httptest.Server

	mu      sync.Mutex
	docs    map[string]*Doc
	nodes   map[string][]Node // space id → nodes
	folders map[string][]File // folder token → entries
	tokens  map[string]bool   // tokens granted and still valid
	issued  int

	limit429, limitCode atomic.Int64
	failDoc             map[string]bool

	// Counters of what was asked.
	TokenGrants, BlockReads, Requests, RateLimited atomic.Int64
	// BadAuth counts requests with a missing or invalid token.
	BadAuth atomic.Int64
	// OnBlocks, when set, is called before a document's blocks are served.
	OnBlocks func(docToken string)
}

// New starts a server; Close it when done.
func New(appID, appSecret string) *Server {
	s := &Server{AppID: appID, AppSecret: appSecret, TokenExpire: 7200, PageSize: 7,
		docs: map[string]*Doc{}, nodes: map[string][]Node{}, folders: map[string][]File{}, tokens: map[string]bool{},
		failDoc: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// PutDoc adds or replaces a document.
func (s *Server) PutDoc(token string, d Doc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := d
	s.docs[token] = &c
}

// DeleteDoc removes a document (its node or drive entry stays, as a
// dangling one does).
func (s *Server) DeleteDoc(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.docs, token)
}

// EditDoc changes a document's text and moves its revision and edit time on.
func (s *Server) EditDoc(token, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.docs[token]
	d.Revision++
	d.EditTime++
	d.Sections = append(slices.Clone(d.Sections), Section{Heading: "Edit", Text: text})
}

// AddNode adds a wiki node to a space.
func (s *Server) AddNode(space string, n Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[space] = append(s.nodes[space], n)
}

// RemoveNode deletes a wiki node (not its children) and its document.
func (s *Server) RemoveNode(space, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[space] = slices.DeleteFunc(s.nodes[space], func(n Node) bool {
		if n.Token == token {
			delete(s.docs, n.ObjToken)
			return true
		}
		return false
	})
}

// AddFile adds an entry to a drive folder.
func (s *Server) AddFile(folder string, f File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.folders[folder] = append(s.folders[folder], f)
}

// RateLimit429 answers the next n API requests 429 with the reset header.
func (s *Server) RateLimit429(n int) { s.limit429.Store(int64(n)) }

// RateLimitCode answers the next n API requests with code 99991400.
func (s *Server) RateLimitCode(n int) { s.limitCode.Store(int64(n)) }

// ExpireTokens invalidates every token granted so far (code 99991663 on use).
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]bool{}
}

// FailDoc makes a document's blocks answer an error (code 1770002, 404).
func (s *Server) FailDoc(token string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failDoc[token] = fail
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func reply(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "success", "data": data})
}

func fail(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "msg": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	if r.URL.Path == "/open-apis/auth/v3/tenant_access_token/internal" && r.Method == http.MethodPost {
		s.auth(w, r)
		return
	}
	if s.limit429.Add(-1) >= 0 {
		s.RateLimited.Add(1)
		w.Header().Set("X-Ogw-Ratelimit-Limit", "100")
		w.Header().Set("X-Ogw-Ratelimit-Reset", "0.05")
		fail(w, http.StatusTooManyRequests, 99991400, "request trigger frequency limit")
		return
	}
	if s.limitCode.Add(-1) >= 0 {
		s.RateLimited.Add(1)
		fail(w, http.StatusBadRequest, 99991400, "request trigger frequency limit")
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	valid := ok && s.tokens[tok]
	s.mu.Unlock()
	if !valid {
		s.BadAuth.Add(1)
		fail(w, http.StatusBadRequest, 99991663, "Invalid access token for authorization. Please make a request with token attached.")
		return
	}
	path := r.URL.Path
	switch {
	case r.Method != http.MethodGet:
		fail(w, http.StatusMethodNotAllowed, 1, "method not allowed")
	case strings.HasPrefix(path, "/open-apis/docx/v1/documents/") && strings.HasSuffix(path, "/blocks"):
		s.blocks(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/open-apis/docx/v1/documents/"), "/blocks"))
	case strings.HasPrefix(path, "/open-apis/docx/v1/documents/"):
		s.document(w, strings.TrimPrefix(path, "/open-apis/docx/v1/documents/"))
	case strings.HasPrefix(path, "/open-apis/wiki/v2/spaces/") && strings.HasSuffix(path, "/nodes"):
		s.wikiNodes(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/open-apis/wiki/v2/spaces/"), "/nodes"))
	case path == "/open-apis/drive/v1/files":
		s.driveFiles(w, r)
	default:
		fail(w, http.StatusNotFound, 404, "not found")
	}
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AppID     string `json:"app_id"`
		AppSecret string `json:"app_secret"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.AppID != s.AppID || in.AppSecret != s.AppSecret {
		fail(w, http.StatusBadRequest, 10014, "app secret invalid")
		return
	}
	s.mu.Lock()
	s.issued++
	tok := fmt.Sprintf("t-fake-%d", s.issued)
	s.tokens[tok] = true
	s.mu.Unlock()
	s.TokenGrants.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{"code": 0, "msg": "ok", "tenant_access_token": tok, "expire": s.TokenExpire})
}

func (s *Server) document(w http.ResponseWriter, token string) {
	s.mu.Lock()
	d, ok := s.docs[token]
	var c Doc
	if ok {
		c = *d
	}
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, 1770002, "not found")
		return
	}
	reply(w, map[string]any{"document": map[string]any{"document_id": token, "revision_id": c.Revision, "title": c.Title}})
}

// page cuts n items at the request's page_token (an offset) by the smaller
// of page_size and the server's PageSize.
func (s *Server) page(r *http.Request, n int) (from, to int, next string) {
	size := s.PageSize
	if ps, err := strconv.Atoi(r.URL.Query().Get("page_size")); err == nil && ps > 0 && ps < size {
		size = ps
	}
	from, _ = strconv.Atoi(r.URL.Query().Get("page_token"))
	from = min(max(from, 0), n)
	to = min(from+size, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next
}

func text(s string) map[string]any {
	return map[string]any{"elements": []any{map[string]any{"text_run": map[string]any{"content": s}}}}
}

func (s *Server) blocks(w http.ResponseWriter, r *http.Request, token string) {
	if s.OnBlocks != nil {
		s.OnBlocks(token)
	}
	s.mu.Lock()
	d, ok := s.docs[token]
	var c Doc
	if ok {
		c = *d
	}
	failing := s.failDoc[token]
	s.mu.Unlock()
	if !ok || failing {
		fail(w, http.StatusNotFound, 1770002, "not found")
		return
	}
	s.BlockReads.Add(1)
	all := []any{map[string]any{"block_id": token, "block_type": 1, "page": text(c.Title)}}
	for i, sec := range c.Sections {
		all = append(all,
			map[string]any{"block_id": fmt.Sprintf("h%d", i), "parent_id": token, "block_type": 4, "heading2": text(sec.Heading)},
			map[string]any{"block_id": fmt.Sprintf("p%d", i), "parent_id": token, "block_type": 2, "text": text(sec.Text)})
	}
	from, to, next := s.page(r, len(all))
	reply(w, map[string]any{"items": all[from:to], "has_more": next != "", "page_token": next})
}

func (s *Server) wikiNodes(w http.ResponseWriter, r *http.Request, space string) {
	parent := r.URL.Query().Get("parent_node_token")
	s.mu.Lock()
	var level []Node
	hasChild := map[string]bool{}
	for _, n := range s.nodes[space] {
		hasChild[n.Parent] = true
		if n.Parent == parent {
			level = append(level, n)
		}
	}
	items := make([]any, 0, len(level))
	for _, n := range level {
		edit := int64(0)
		if d := s.docs[n.ObjToken]; d != nil {
			edit = d.EditTime
		}
		items = append(items, map[string]any{"space_id": space, "node_token": n.Token, "obj_token": n.ObjToken, "obj_type": n.ObjType,
			"parent_node_token": n.Parent, "node_type": "origin", "title": n.Title, "has_child": hasChild[n.Token],
			"obj_create_time": "1700000000", "obj_edit_time": strconv.FormatInt(edit, 10)})
	}
	_, known := s.nodes[space]
	s.mu.Unlock()
	if !known {
		fail(w, http.StatusNotFound, 131005, "not found")
		return
	}
	from, to, next := s.page(r, len(items))
	reply(w, map[string]any{"items": items[from:to], "has_more": next != "", "page_token": next})
}

func (s *Server) driveFiles(w http.ResponseWriter, r *http.Request) {
	folder := r.URL.Query().Get("folder_token")
	s.mu.Lock()
	entries, known := s.folders[folder]
	files := make([]any, 0, len(entries))
	for _, f := range entries {
		mod := int64(0)
		if d := s.docs[f.Token]; d != nil {
			mod = d.EditTime
		}
		files = append(files, map[string]any{"token": f.Token, "name": f.Name, "type": f.Type, "parent_token": folder,
			"url": s.URL + "/" + f.Type + "/" + f.Token, "created_time": "1700000000", "modified_time": strconv.FormatInt(mod, 10)})
	}
	s.mu.Unlock()
	if !known {
		fail(w, http.StatusNotFound, 1061007, "file has been delete")
		return
	}
	from, to, next := s.page(r, len(files))
	reply(w, map[string]any{"files": files[from:to], "has_more": next != "", "next_page_token": next})
}
