package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/openintern/openintern/store"
)

func testContext(req *http.Request) (*gin.Context, *httptest.ResponseRecorder) {
	gin.SetMode(gin.ReleaseMode)
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = req
	return c, w
}

// hasNUL reports whether a decoded JSON value holds NUL in a key or a string.
func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case []any:
		for _, e := range v {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// wantJSONError fails unless the recorder holds a 4xx JSON error.
func wantJSONError(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	var e apiError
	if w.Code < 400 || w.Code >= 500 || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Code == "" {
		t.Fatalf("not a 4xx JSON error: %d %q", w.Code, w.Body.String())
	}
}

// FuzzBindJSON: any body is either decoded (a JSON object of known fields
// with no NUL anywhere) or refused with a 4xx JSON error; never a panic.
func FuzzBindJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","tools":["read_file"]}`, `{"name":"a\u0000"}`, `{"n\u0000":1}`, `{"name":"C:\\u0000"}`, `null`, `[]`,
		`{"name":"a"} x`, `{"name":"a"} }`, `{"name":"a"}]`, "{}\n\t ", `{"bogus":1}`, `{"name":`, ``, `{"system_prompt":"\u0000","name":"x"}`, `{"tools":["\u0000"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/api/agents", strings.NewReader(string(body)))
		c, w := testContext(req)
		var dst agentBody
		ok := bindJSON(c, &dst)
		var generic any
		validJSON := json.Unmarshal(body, &generic) == nil
		if ok {
			if !validJSON {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			if _, isObject := generic.(map[string]any); !isObject {
				t.Fatalf("accepted a non-object %q", body)
			}
			if hasNUL(generic) {
				t.Fatalf("accepted NUL in %q", body)
			}
			return
		}
		wantJSONError(t, w)
		if validJSON {
			field, found := jsonNUL(body)
			if found != hasNUL(generic) {
				t.Fatalf("jsonNUL(%q) = %q, %v; the decoded value says %v", body, field, found, hasNUL(generic))
			}
		}
	})
}

// FuzzLastEventID: the resume cursor is a non-negative event id or a 400.
func FuzzLastEventID(f *testing.F) {
	for _, s := range []string{"", "0", "42", "-1", "+7", "007", "9223372036854775807", "9223372036854775808", "1e3", " 1", "x"} {
		f.Add(s, "")
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		req := httptest.NewRequest("GET", "/api/runs/x/stream", nil)
		req.URL.RawQuery = url.Values{"cursor": {query}}.Encode()
		req.Header.Set("Last-Event-ID", header)
		c, _ := testContext(req)
		n, err := lastEventID(c)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("negative cursor %d from %q / %q", n, header, query)
		}
		v := firstOf(c.GetHeader("Last-Event-ID"), query)
		if v == "" {
			if n != 0 {
				t.Fatalf("no cursor gave %d", n)
			}
			return
		}
		if want, perr := strconv.ParseInt(v, 10, 64); perr != nil || want != n {
			t.Fatalf("cursor %q read as %d", v, n)
		}
	})
}

// FuzzScope: the scope middleware either sets a scope of well-formed ids
// (from headers, else body, else query) or answers a 4xx JSON error.
func FuzzScope(f *testing.F) {
	f.Add("o1", "u1", "", `{}`, "")
	f.Add("", "", "", `{"org_id":"o","user_id":"u","project_id":"p"}`, "")
	f.Add("", "", "", `{"org_id":1}`, "org_id=o&user_id=u")
	f.Add("o 1", "u", "", ``, "")
	f.Add("", "u", "", `{"org_id":"o\u0000"}`, "")
	f.Add("", "", "", `not json`, "org_id=o%00&user_id=u")
	f.Add("o", "u", strings.Repeat("p", 129), ``, "")
	s := New(Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.Fuzz(func(t *testing.T, org, user, project, body, query string) {
		req := httptest.NewRequest("POST", "/api/agents", strings.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"x-org-id": org, "x-user-id": user, "x-project-id": project} {
			if v != "" && !strings.ContainsAny(v, "\x00\r\n") {
				req.Header.Set(k, v)
			}
		}
		c, w := testContext(req)
		s.scope(c)
		v, set := c.Get(scopeKey)
		if !set {
			wantJSONError(t, w)
			return
		}
		sc := v.(store.Scope)
		for _, id := range []string{sc.OrgID, sc.UserID} {
			if !scopeIDPattern.MatchString(id) {
				t.Fatalf("scope %+v accepted", sc)
			}
		}
		if sc.ProjectID != "" && !scopeIDPattern.MatchString(sc.ProjectID) {
			t.Fatalf("scope %+v accepted", sc)
		}
		// The handler still gets the whole body.
		rest, _ := io.ReadAll(c.Request.Body)
		if string(rest) != body {
			t.Fatalf("body after scope %q, want %q", rest, body)
		}
	})
}
