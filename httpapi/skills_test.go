package httpapi

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// archiveFile is one entry of a test archive.
type archiveFile struct{ name, body string }

func zipBytes(t testing.TB, files ...archiveFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// multipartFile is a multipart body with data as its field "file".
func multipartFile(filename string, data []byte) (body, contentType string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile("file", filename)
	_, _ = w.Write(data)
	_ = mw.Close()
	return buf.String(), mw.FormDataContentType()
}

func skillMD(name, desc string) string {
	return "---\nname: " + name + "\ndescription: " + desc + "\nallowed-tools: read_file, Bash\n---\n# " + name + "\nDo the thing.\n"
}

// skillUpload is the multipart body of a tar of a skill called name.
func skillUpload(name string) (body, contentType string) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []archiveFile{{name + "/SKILL.md", skillMD(name, "Test skill "+name+".")}, {name + "/ref.md", "reference"}} {
		_ = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(f.body))
	}
	_ = tw.Close()
	return multipartFile(name+".tar", buf.Bytes())
}

func uploadReq(path string, filename string, data []byte) request {
	body, ct := multipartFile(filename, data)
	return request{method: http.MethodPost, path: path, body: body, header: map[string]string{"Content-Type": ct}}
}

// TestSkillsAPI: a zip uploads, lists and shows (body, files, the tools the
// daemon lacks); a second upload of the name is 409 unless ?replace=true;
// hostile and malformed archives are 4xx with a code; another scope sees
// nothing; delete removes it; grants name existing skills only.
func TestSkillsAPI(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			zipped := zipBytes(t, archiveFile{"SKILL.md", skillMD("pdf-forms", "Fill PDF forms.")}, archiveFile{"scripts/fill.py", "print('x')"})
			r := h.must(http.StatusCreated, uploadReq("/api/skills", "pdf.zip", zipped)).json(t)
			if r["name"] != "pdf-forms" || r["source"] != "uploaded" || r["files_count"] != float64(1) || fmt.Sprint(r["unknown_tools"]) != "[read_file Bash]" {
				t.Fatalf("upload answer: %v", r)
			}
			h.wantError(http.StatusConflict, "skill_exists", uploadReq("/api/skills", "pdf.zip", zipped))
			h.must(http.StatusCreated, uploadReq("/api/skills?replace=true", "pdf.zip", zipped))
			h.wantError(http.StatusBadRequest, "invalid_query", uploadReq("/api/skills?replace=maybe", "pdf.zip", zipped))

			list := h.must(http.StatusOK, request{method: http.MethodGet, path: "/api/skills"}).json(t)["skills"].([]any)
			if len(list) != 1 || list[0].(map[string]any)["name"] != "pdf-forms" || list[0].(map[string]any)["body"] != nil {
				t.Fatalf("list: %v", list)
			}
			got := h.must(http.StatusOK, request{method: http.MethodGet, path: "/api/skills/pdf-forms"}).json(t)
			files, _ := json.Marshal(got["files"])
			if !strings.Contains(got["body"].(string), "Do the thing.") || string(files) != `[{"path":"scripts/fill.py","size":10}]` {
				t.Fatalf("get: %v", got)
			}
			// Another scope sees none of it.
			other := map[string]string{"x-org-id": "o2"}
			h.wantError(http.StatusNotFound, "not_found", request{method: http.MethodGet, path: "/api/skills/pdf-forms", header: other})
			h.wantError(http.StatusNotFound, "not_found", request{method: http.MethodDelete, path: "/api/skills/pdf-forms", header: other})
			if l := h.must(http.StatusOK, request{method: http.MethodGet, path: "/api/skills", header: other}).json(t)["skills"].([]any); len(l) != 0 {
				t.Fatalf("other scope's list: %v", l)
			}

			bad := map[string]struct {
				data   []byte
				status int
				code   string
			}{
				"dotdot":       {zipBytes(t, archiveFile{"SKILL.md", skillMD("a", "d")}, archiveFile{"../x", "x"}), http.StatusBadRequest, "invalid_skill"},
				"no SKILL.md":  {zipBytes(t, archiveFile{"README.md", "x"}), http.StatusBadRequest, "invalid_skill"},
				"bad name":     {zipBytes(t, archiveFile{"SKILL.md", skillMD("Bad_Name", "d")}), http.StatusBadRequest, "invalid_skill"},
				"not archive":  {[]byte("plain text"), http.StatusBadRequest, "invalid_skill"},
				"nul":          {zipBytes(t, archiveFile{"SKILL.md", skillMD("a", "d\x00")}), http.StatusBadRequest, "invalid_skill"},
				"over the cap": {zipBytes(t, archiveFile{"SKILL.md", skillMD("a", "d")}, archiveFile{"big", strings.Repeat("a", 3<<20)}), http.StatusRequestEntityTooLarge, "skill_too_large"},
			}
			for what, b := range bad {
				t.Run(what, func(t *testing.T) { h.wantError(b.status, b.code, uploadReq("/api/skills", "x.zip", b.data)) })
			}
			h.wantError(http.StatusBadRequest, "missing_file", request{method: http.MethodPost, path: "/api/skills",
				body: "--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--x--\r\n", header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}})
			h.wantError(http.StatusUnsupportedMediaType, "", request{method: http.MethodPost, path: "/api/skills", body: `{"name":"x"}`})
			h.wantError(http.StatusUnsupportedMediaType, "", request{method: http.MethodPost, path: "/api/skills", body: "x", header: map[string]string{"Content-Type": "text/plain"}})
			// The raw archive as the body works as well as a form.
			raw := zipBytes(t, archiveFile{"raw-skill/SKILL.md", skillMD("raw-skill", "Sent raw.")})
			r = h.must(http.StatusCreated, request{method: http.MethodPost, path: "/api/skills", body: string(raw), header: map[string]string{"Content-Type": "application/zip"}}).json(t)
			if r["name"] != "raw-skill" || r["skill_id"] != "raw-skill" {
				t.Fatalf("raw upload: %v", r)
			}
			h.wantError(http.StatusBadRequest, "invalid_skill", request{method: http.MethodPost, path: "/api/skills", body: "not a zip", header: map[string]string{"Content-Type": "application/zip"}})
			h.must(http.StatusNoContent, request{method: http.MethodDelete, path: "/api/skills/raw-skill"})

			// Grants: an agent and a role may name existing skills only.
			h.must(http.StatusCreated, request{method: http.MethodPost, path: "/api/agents", body: `{"agent_id":"ag","name":"A","skills":["pdf-forms"]}`})
			h.wantError(http.StatusBadRequest, "unknown_skill", request{method: http.MethodPost, path: "/api/agents", body: `{"agent_id":"ag2","name":"A","skills":["nope"]}`})
			h.wantError(http.StatusBadRequest, "invalid_agent", request{method: http.MethodPatch, path: "/api/agents/ag", body: `{"skills":["Not A Name"]}`})
			a := h.must(http.StatusOK, request{method: http.MethodPatch, path: "/api/agents/ag", body: `{"name":"B"}`}).json(t)
			if fmt.Sprint(a["skills"]) != "[pdf-forms]" {
				t.Fatalf("agent skills after a patch without them: %v", a["skills"])
			}
			role := h.must(http.StatusCreated, request{method: http.MethodPost, path: "/api/roles", body: `{"role_id":"w","name":"W","skills":["pdf-forms"]}`}).json(t)
			if fmt.Sprint(role["skills"]) != "[pdf-forms]" {
				t.Fatalf("role skills: %v", role["skills"])
			}
			h.wantError(http.StatusBadRequest, "unknown_skill", request{method: http.MethodPut, path: "/api/roles/w", body: `{"skills":["nope"]}`})

			h.must(http.StatusNoContent, request{method: http.MethodDelete, path: "/api/skills/pdf-forms"})
			h.wantError(http.StatusNotFound, "not_found", request{method: http.MethodGet, path: "/api/skills/pdf-forms"})
			h.wantError(http.StatusNotFound, "not_found", request{method: http.MethodDelete, path: "/api/skills/pdf-forms"})
			h.wantError(http.StatusNotFound, "not_found", request{method: http.MethodGet, path: "/api/skills/..%2Fetc"})
		})
	}
}
