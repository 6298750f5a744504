// Package minerutest is a local server speaking MinerU's v4 wire format
// (https://mineru.net/api/v4): tasks from a URL (POST /extract/task, GET
// /extract/task/{id}), uploads (POST /file-urls/batch, a PUT to the URL it
// hands out, GET /extract-results/batch/{id}) and result zips (full.md and a
// content list with page_idx per block). It "parses" a PDF with poppler's
// pdftotext, one text block per paragraph, and takes a line like "Part 2:
// Tools", "Chapter 7: Weather" or "Section 3: Ice" (no closing period) for a
// heading of level 1, 2 or 3, as MinerU's layout model marks headings.
package minerutest

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a fake MinerU. Its fields are safe to set before the first request.
type Server struct {
	*httptest.Server
	APIKey string
	// PollsBeforeDone is how many polls of a task answer pending or running
	// before it is done (or failed).
	PollsBeforeDone int
	// FailIf fails a task whose URL or file name contains it, with FailMsg.
	FailIf  string
	FailMsg string
	// Transient makes the next n API calls answer 503 (retries are tested).
	Transient int

	mu       sync.Mutex
	tasks    map[string]*task
	batches  map[string]*task // by batch id; one file each
	created  int
	uploads  int
	leaked   []string // requests to upload or download URLs that carried the API key
	seq      int
	requests []string
}

type task struct {
	id, name, url string
	pdf           []byte
	uploaded      bool
	polls         int
	zip           []byte
	err           string
}

// New starts a server; it stops when the test ends.
func New(t testing.TB) *Server {
	s := &Server{APIKey: "test-mineru-key-" + fmt.Sprint(time.Now().UnixNano()), PollsBeforeDone: 2,
		FailMsg: "failed to read the file: the PDF is damaged", tasks: map[string]*task{}, batches: map[string]*task{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v4/extract/task", s.api(s.createTask))
	mux.HandleFunc("GET /api/v4/extract/task/{id}", s.api(s.getTask))
	mux.HandleFunc("POST /api/v4/file-urls/batch", s.api(s.createBatch))
	mux.HandleFunc("GET /api/v4/extract-results/batch/{id}", s.api(s.getBatch))
	mux.HandleFunc("PUT /oss/upload/{id}", s.upload)
	mux.HandleFunc("GET /cdn/{id}/result.zip", s.download)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// BaseURL is the v4 API's base.
func (s *Server) BaseURL() string { return s.URL + "/api/v4" }

// SetPollsBeforeDone changes PollsBeforeDone while requests may run.
func (s *Server) SetPollsBeforeDone(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.PollsBeforeDone = n
}

// SetTransient makes the next n API calls answer 503.
func (s *Server) SetTransient(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Transient = n
}

// Created is how many tasks (URL tasks and upload batches) were created.
func (s *Server) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// Uploads is how many files were PUT.
func (s *Server) Uploads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploads
}

// Leaked lists requests to the storage URLs that carried an Authorization
// header: the API key must go only to the API.
func (s *Server) Leaked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.leaked...)
}

// Requests lists the API requests seen ("METHOD path").
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func reply(w http.ResponseWriter, status int, code any, msg string, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "msg": msg, "trace_id": "trace-test", "data": data})
}

func (s *Server) api(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		transient := s.Transient > 0
		if transient {
			s.Transient--
		}
		s.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+s.APIKey {
			reply(w, http.StatusUnauthorized, "A0202", "Token error", nil)
			return
		}
		if transient {
			reply(w, http.StatusServiceUnavailable, -500, "service busy", nil)
			return
		}
		h(w, r)
	}
}

func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%04d-%d", prefix, s.seq, time.Now().UnixNano()%1e6)
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL          string `json:"url"`
		ModelVersion string `json:"model_version"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.URL == "" {
		reply(w, http.StatusOK, -10002, "url is required", nil)
		return
	}
	if req.ModelVersion != "" && req.ModelVersion != "pipeline" && req.ModelVersion != "vlm" && req.ModelVersion != "MinerU-HTML" {
		reply(w, http.StatusOK, -10002, "bad model_version", nil)
		return
	}
	// MinerU fetches the URL at once (here: before answering, simply).
	resp, err := http.Get(req.URL) //nolint:gosec,noctx // a test server fetching the test's URL
	var pdf []byte
	if err == nil {
		pdf, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			pdf = nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created++
	tk := &task{id: s.newID("task"), url: req.URL, pdf: pdf, uploaded: true}
	if pdf == nil {
		tk.err = "failed to download the file"
	}
	s.tasks[tk.id] = tk
	reply(w, http.StatusOK, 0, "ok", map[string]string{"task_id": tk.id})
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Files []struct {
			Name   string `json:"name"`
			DataID string `json:"data_id"`
		} `json:"files"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Files) != 1 || req.Files[0].Name == "" {
		reply(w, http.StatusOK, -10002, "files: one file with a name is required here", nil)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created++
	id := s.newID("batch")
	s.batches[id] = &task{id: id, name: req.Files[0].Name}
	reply(w, http.StatusOK, 0, "ok", map[string]any{"batch_id": id,
		"file_urls": []string{s.URL + "/oss/upload/" + id + "?Expires=9999999999&Signature=c2VjcmV0LXNpZ25hdHVyZQ"}})
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if r.Header.Get("Authorization") != "" {
		s.leaked = append(s.leaked, "PUT "+r.URL.Path)
	}
	tk := s.batches[r.PathValue("id")]
	s.mu.Unlock()
	if tk == nil || r.URL.Query().Get("Signature") == "" {
		http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
		return
	}
	// Presigned PUTs are signed without a Content-Type; one sent breaks the signature.
	if r.Header.Get("Content-Type") != "" {
		http.Error(w, "<Error><Code>SignatureDoesNotMatch</Code></Error>", http.StatusForbidden)
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	tk.pdf, tk.uploaded = data, true
	s.uploads++
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// state advances a task by one poll and says where it is.
func (s *Server) state(tk *task) map[string]any {
	out := map[string]any{"task_id": tk.id, "data_id": "", "file_name": tk.name, "err_msg": "", "full_zip_url": ""}
	if !tk.uploaded {
		out["state"] = "waiting-file"
		return out
	}
	tk.polls++
	pages := bytes.Count(tk.pdf, []byte("/Type /Page "))
	switch {
	case tk.polls == 1 && s.PollsBeforeDone > 0:
		out["state"] = "pending"
	case tk.polls <= s.PollsBeforeDone:
		out["state"] = "running"
		out["extract_progress"] = map[string]any{"extracted_pages": pages * (tk.polls - 1) / max(s.PollsBeforeDone, 1),
			"total_pages": pages, "start_time": time.Now().Format("2006-01-02 15:04:05")}
	case tk.err != "" || (s.FailIf != "" && (strings.Contains(tk.url, s.FailIf) || strings.Contains(tk.name, s.FailIf))):
		out["state"] = "failed"
		if tk.err == "" {
			tk.err = s.FailMsg
		}
		out["err_msg"] = tk.err
	default:
		if tk.zip == nil {
			z, err := resultZip(tk.pdf)
			if err != nil {
				out["state"], out["err_msg"] = "failed", err.Error()
				return out
			}
			tk.zip = z
		}
		out["state"] = "done"
		out["full_zip_url"] = s.URL + "/cdn/" + tk.id + "/result.zip"
	}
	return out
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := s.tasks[r.PathValue("id")]
	if tk == nil {
		reply(w, http.StatusOK, -60012, "task not found", nil)
		return
	}
	reply(w, http.StatusOK, 0, "ok", s.state(tk))
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := s.batches[r.PathValue("id")]
	if tk == nil {
		reply(w, http.StatusOK, -60012, "batch not found", nil)
		return
	}
	reply(w, http.StatusOK, 0, "ok", map[string]any{"batch_id": tk.id, "extract_result": []any{s.state(tk)}})
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if r.Header.Get("Authorization") != "" {
		s.leaked = append(s.leaked, "GET "+r.URL.Path)
	}
	id := r.PathValue("id")
	tk := s.tasks[id]
	if tk == nil {
		tk = s.batches[id]
	}
	s.mu.Unlock()
	if tk == nil || tk.zip == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	_, _ = w.Write(tk.zip)
}

// Block is one content list entry as MinerU writes it.
type Block struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	TextLevel int    `json:"text_level,omitempty"`
	PageIdx   int    `json:"page_idx"`
}

var headingRE = regexp.MustCompile(`^(Part|Chapter|Section) [0-9A-Za-z]+\b[^.]*$`)

// Blocks reads a PDF into content list blocks with pdftotext.
func Blocks(pdf []byte) ([]Block, error) {
	f, err := os.CreateTemp("", "minerutest-*.pdf")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(pdf); err != nil {
		return nil, err
	}
	_ = f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pdftotext", "-enc", "UTF-8", "-q", f.Name(), "-").Output()
	if err != nil {
		return nil, fmt.Errorf("pdftotext: %w", err)
	}
	var blocks []Block
	for i, page := range strings.Split(string(out), "\f") {
		var para []string
		flush := func() {
			if len(para) > 0 {
				blocks = append(blocks, Block{Type: "text", Text: strings.Join(para, " "), PageIdx: i})
				para = nil
			}
		}
		for _, line := range strings.Split(page, "\n") {
			line = strings.TrimSpace(line)
			switch {
			case line == "":
				flush()
			case headingRE.MatchString(line):
				flush()
				level := map[string]int{"Part": 1, "Chapter": 2, "Section": 3}[strings.Fields(line)[0]]
				blocks = append(blocks, Block{Type: "text", Text: line, TextLevel: level, PageIdx: i})
			default:
				para = append(para, line)
			}
		}
		flush()
	}
	return blocks, nil
}

func resultZip(pdf []byte) ([]byte, error) {
	blocks, err := Blocks(pdf)
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("no text found")
	}
	var md strings.Builder
	for _, b := range blocks {
		if b.TextLevel > 0 {
			md.WriteString(strings.Repeat("#", b.TextLevel) + " ")
		}
		md.WriteString(b.Text + "\n\n")
	}
	list, err := json.Marshal(blocks)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string][]byte{
		"full.md": []byte(md.String()), "3f2a9c_content_list.json": list, "layout.json": []byte(`{"pdf_info":[]}`),
	} {
		w, err := zw.Create(name)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
